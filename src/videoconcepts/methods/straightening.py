"""Geometry of representation trajectories: step distances, turning angles, curvature.

A video is a trajectory z_0, ..., z_{T-1} of per-time-step representations (a layer's
tokens at one time slice, flattened; or the frames' pixels). The perceptual
straightening hypothesis says natural videos trace straighter paths deep in a network
than in pixel space; ReStraV (paper 001) detects generated video from the same geometry.
As in ReStraV's reference code: d_t = ||z_{t+1} - z_t||, theta_t the angle in degrees
between consecutive steps (arccos of their cosine), curvature the mean angle, and the
21-number vector of a trajectory d[0:7], theta[0:6], then mean, min, max and population
variance of d and of theta.

This greedy estimate of curvature is biased upward by noise in the representation (a
noisy straight path has angles above 0): compare curvatures against the frame-shuffled
null of the same trajectories (:func:`shuffled_curvature`), never as absolute values.
Pure numpy, batched over videos.
"""

from __future__ import annotations

import numpy as np

# ReStraV's vector: the first 7 distances and 6 angles, then 4 statistics of each.
RESTRAV_DISTANCES = 7
RESTRAV_ANGLES = 6
RESTRAV_SIZE = RESTRAV_DISTANCES + RESTRAV_ANGLES + 8


def steps(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances (..., T-1) and turning angles in degrees (..., T-2) of trajectories
    ``z`` (..., T, D). A zero-length step has no direction: its angles are NaN."""
    z = np.asarray(z, dtype=np.float64)
    if z.shape[-2] < 3:
        raise ValueError(f"a trajectory needs 3 points or more for an angle, got {z.shape[-2]}")
    delta = np.diff(z, axis=-2)
    distances = np.linalg.norm(delta, axis=-1)
    dots = np.einsum("...i,...i->...", delta[..., :-1, :], delta[..., 1:, :])
    norms = distances[..., :-1] * distances[..., 1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, dots / norms, np.nan)
    angles = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return distances, angles


def curvature(z: np.ndarray) -> np.ndarray:
    """Mean turning angle (degrees) of each trajectory (..., T, D)."""
    return np.nanmean(steps(z)[1], axis=-1)


def shuffled_orders(n_steps: int, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """``permutations`` random orders of ``n_steps`` time steps, (permutations, n_steps)."""
    return np.argsort(rng.random((permutations, n_steps)), axis=1)


def shuffled_curvature(z: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Mean curvature of trajectories (..., T, D) with their time steps in each of the
    given orders (P, T), averaged over the orders: the null of a representation whose
    time order carried nothing. Pass one video's layers together to shuffle them alike."""
    return np.mean([curvature(z[..., order, :]) for order in orders], axis=0)


def restrav_vector(distances: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """ReStraV's 21 numbers per trajectory from its distances (..., T-1) and angles
    (..., T-2); needs 8 time steps or more."""
    if distances.shape[-1] < RESTRAV_DISTANCES or angles.shape[-1] < RESTRAV_ANGLES:
        raise ValueError(
            f"ReStraV's vector needs {RESTRAV_DISTANCES + 1} time steps or more, got "
            f"{distances.shape[-1] + 1}"
        )

    def stats(x: np.ndarray) -> list[np.ndarray]:
        return [np.nanmean(x, -1), np.nanmin(x, -1), np.nanmax(x, -1), np.nanvar(x, -1)]

    parts = [distances[..., :RESTRAV_DISTANCES], angles[..., :RESTRAV_ANGLES]]
    parts += [s[..., None] for s in stats(distances) + stats(angles)]
    return np.concatenate(parts, axis=-1)


def frame_bins(frames: np.ndarray, n_steps: int) -> np.ndarray:
    """Pixel trajectories (V, n_steps, H*W*3) in [0, 1]: frames (V, T, H, W, 3) uint8
    averaged over consecutive runs of frames, one per time step of the token grid (a
    VideoMAE tubelet spans 2 frames; runs differ by one frame where T / n_steps is not
    whole)."""
    n_videos, n_frames = frames.shape[:2]
    if not 1 <= n_steps <= n_frames:
        raise ValueError(f"{n_frames} frames cannot make {n_steps} time steps")
    flat = frames.reshape(n_videos, n_frames, -1).astype(np.float32)
    runs = np.array_split(np.arange(n_frames), n_steps)
    return np.stack([flat[:, run].mean(axis=1) for run in runs], axis=1) / 255.0
