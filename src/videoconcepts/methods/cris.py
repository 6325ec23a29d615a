"""CRIS (Concept Randomized Importance Sampling): mask sampling and the importance estimator.

K random unit subsets are drawn once from the seed (each unit masked independently with
probability ``mask_ratio``). A unit's importance is the mean score over the masks that
kept it minus the mean over the masks that removed it, averaged over the videos it
appears in and counted as zero elsewhere (:func:`cris_estimate`), so a unit present in
no video scores exactly zero.

The standard error of :func:`cris_estimate` covers mask noise with the videos fixed;
:func:`video_bootstrap` resamples the videos to say whether other videos would give the
same importance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CrisSettings:
    """How CRIS draws its masks: ``num_masks`` subsets, each unit masked independently
    with probability ``mask_ratio``; shards may stop once split-half stability reaches
    ``stop_when_stable``."""

    num_masks: int
    mask_ratio: float
    seed: int
    stop_when_stable: float | None


def sample_masks(n_masks: int, n_units: int, ratio: float, seed: int) -> np.ndarray:
    """(n_masks, n_units) bool: each unit masked independently with probability ``ratio``.

    Independent draws keep the estimator unbiased: with a fixed count per mask (the
    reference code's ``random.sample``), masking one unit makes masking any other less
    likely, and every unit inherits a spurious share of the important units' effect.
    """
    return np.random.default_rng(seed).random((n_masks, n_units)) < ratio


def batch_ranges(n_masks: int, batch_size: int, n_shards: int, shard: int) -> range:
    """Mask indices of one shard: whole batches, split as evenly as possible."""
    n_batches = -(-n_masks // batch_size)
    batches = np.array_split(np.arange(n_batches), n_shards)[shard]
    if len(batches) == 0:
        return range(0)
    return range(int(batches[0]) * batch_size, min(n_masks, (int(batches[-1]) + 1) * batch_size))


def cris_estimate(
    scores: np.ndarray, masks: np.ndarray, presence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Importance and standard error of each unit.

    ``scores`` (V, K) per video and mask, ``masks`` (K, U) bool, ``presence`` (V, U).
    Per mask, a unit's value is the video-mean score over the videos it appears in (zero
    elsewhere); importance is the mean value over masks keeping the unit minus the mean
    over masks removing it, with the Welch standard error of that difference.
    """
    n_videos = scores.shape[0]
    values = presence.T.astype(np.float64) @ scores.astype(np.float64) / n_videos  # (U, K)
    removed = masks.T
    out, var = [], []
    for group in (~removed, removed):
        n = group.sum(1)
        mean = np.where(group, values, 0).sum(1) / np.maximum(n, 1)
        sq = np.where(group, (values - mean[:, None]) ** 2, 0).sum(1)
        out.append(mean)
        var.append(sq / np.maximum(n - 1, 1) / np.maximum(n, 1))
    return out[0] - out[1], np.sqrt(var[0] + var[1])


def video_effects(scores: np.ndarray, masks: np.ndarray, presence: np.ndarray) -> np.ndarray:
    """(V, U) each video's share of the importance: its mean score over the masks keeping
    the unit minus its mean over the masks removing it, 0 where the unit is absent.

    The estimator is linear in the videos, so the mean over videos is exactly
    :func:`cris_estimate`'s importance.
    """
    scores = scores.astype(np.float64)
    kept, removed = (~masks).astype(np.float64), masks.astype(np.float64)
    kept_mean = scores @ kept / np.maximum(kept.sum(0), 1)
    removed_mean = scores @ removed / np.maximum(removed.sum(0), 1)
    return np.where(presence, kept_mean - removed_mean, 0.0)


def video_bootstrap(
    effects: np.ndarray, n_replicates: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video-bootstrap 95 % percentile interval (low, high) and standard error per unit.

    ``effects`` (V, U) from :func:`video_effects`. Each replicate draws V videos with
    replacement; it is a multinomial count per video, so a replicate's importance is one
    weighted mean of the rows, never a rerun of the estimator.
    """
    n_videos = effects.shape[0]
    rng = np.random.default_rng([seed, 1])  # a stream apart from sample_masks(seed)
    weights = rng.multinomial(n_videos, np.full(n_videos, 1 / n_videos), size=n_replicates)
    replicates = weights @ effects / n_videos  # (B, U)
    low, high = np.percentile(replicates, [2.5, 97.5], axis=0)
    return low, high, replicates.std(axis=0, ddof=1)


def half_importances(
    scores: np.ndarray, masks: np.ndarray, presence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Importance from the even-numbered masks and from the odd-numbered ones."""
    even, odd = (cris_estimate(scores[:, i::2], masks[i::2], presence)[0] for i in (0, 1))
    return even, odd


def split_half_stability(scores: np.ndarray, masks: np.ndarray, presence: np.ndarray) -> float:
    """Spearman rank correlation of importance from even- vs odd-numbered masks."""
    present = presence.any(0)
    if present.sum() < 2 or scores.shape[1] < 4:
        return float("nan")
    even, odd = half_importances(scores, masks, presence)
    return float(pd.Series(even[present]).corr(pd.Series(odd[present]), method="spearman"))
