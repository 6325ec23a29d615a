"""Static and dynamic units (paper 002, ch. 3, eq. 3.1 to 3.3): what a layer's units share
between videos that have only their appearance, or only their dynamics, in common.

A *dynamic pair* is one video in two looks (same dynamics, other appearance), a *static
pair* one look with its frames in two shuffled orders (same frames, other dynamics). For
each unit i (a channel after global average pooling) and factor F, s_F^i is the Pearson
correlation over all pairs of F between the unit's value in the first and in the second
video of a pair (eq. 3.2): a Gaussian lower bound on their mutual information.

Layer-wise (eq. 3.1): S_F is the mean of s_F^i over the layer's N units, and
N_F = softmax(S_static, S_dynamic, S_identical)_F * N with S_identical = 1 (the same
video twice correlates perfectly). The paper's formula writes S_F as a sum over units,
but with hundreds of units the softmax of sums is one-hot, and its S_identical = 1 "for
all layers" only fits a mean: the mean is what makes N_F a graded count.

Unit-wise (eq. 3.3): a unit is static when s_static > lambda and s_dynamic <= lambda,
dynamic the other way round, joint when both exceed lambda and residual when neither
does. A unit whose value never varies has no correlation (NaN): residual.
Pure numpy.
"""

from __future__ import annotations

import numpy as np

FACTORS = ("static", "dynamic")
CLASSES = ("static", "dynamic", "joint", "residual")
S_IDENTICAL = 1.0


def unit_correlations(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """s_F^i (eq. 3.2): Pearson correlation over pairs (axis 0) of every unit, (P, ...)
    twice to (...). NaN for a unit constant in either video of the pairs."""
    a = np.asarray(first, np.float64)
    b = np.asarray(second, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired features differ in shape: {a.shape} vs {b.shape}")
    if len(a) < 3:
        raise ValueError(f"a correlation over pairs needs 3 pairs or more, got {len(a)}")
    a = a - a.mean(0)
    b = b - b.mean(0)
    norms = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, (a * b).sum(0) / norms, np.nan)


def layer_metric(s_static: np.ndarray, s_dynamic: np.ndarray) -> dict[str, np.ndarray]:
    """Eq. 3.1 over the last axis (units): S_F (the mean correlation) and N_F (the share
    of the softmax over static, dynamic and identical, times the number of units)."""
    n_units = np.shape(s_static)[-1]
    scores = np.stack(
        [
            np.nanmean(s_static, axis=-1),
            np.nanmean(s_dynamic, axis=-1),
            np.full(np.shape(s_static)[:-1], S_IDENTICAL),
        ]
    )
    shares = np.exp(scores) / np.exp(scores).sum(0)
    return {
        "S_static": scores[0],
        "S_dynamic": scores[1],
        "N_static": shares[0] * n_units,
        "N_dynamic": shares[1] * n_units,
        "N_identical": shares[2] * n_units,
    }


def unit_classes(s_static: np.ndarray, s_dynamic: np.ndarray, lam: float = 0.5) -> np.ndarray:
    """Eq. 3.3: each unit's class as an index into :data:`CLASSES`."""
    static = np.nan_to_num(np.asarray(s_static, np.float64), nan=-np.inf) > lam
    dynamic = np.nan_to_num(np.asarray(s_dynamic, np.float64), nan=-np.inf) > lam
    return np.select([static & dynamic, static, dynamic], [2, 0, 1], default=3).astype(np.int64)


def class_counts(classes: np.ndarray) -> dict[str, np.ndarray]:
    """Units per class over the last axis of :func:`unit_classes`' output."""
    return {name: (classes == k).sum(-1) for k, name in enumerate(CLASSES)}


def bias(s_static: np.ndarray, s_dynamic: np.ndarray) -> np.ndarray:
    """s_dynamic - s_static: above 0 leans to dynamics, below to appearance (NaN: 0)."""
    return np.nan_to_num(np.asarray(s_dynamic, np.float64) - np.asarray(s_static, np.float64))


def removal_order(s_static: np.ndarray, s_dynamic: np.ndarray, factor: str) -> np.ndarray:
    """Units of one layer, the most biased toward ``factor`` first (for §3.5.1's removal)."""
    if factor not in FACTORS:
        raise ValueError(f"factor must be one of {FACTORS}, got {factor!r}")
    lean = bias(s_static, s_dynamic)
    return np.argsort(-lean if factor == "dynamic" else lean, kind="stable")


def shuffle_pairs(n_frames: int, pairs: int, rng: np.random.Generator) -> np.ndarray:
    """(pairs, 2, n_frames) frame orders: two different random orders per static pair,
    neither the original order."""
    if n_frames < 3:
        raise ValueError(f"shuffling needs 3 frames or more, got {n_frames}")
    orders = np.empty((pairs, 2, n_frames), np.int64)
    identity = np.arange(n_frames)
    for p in range(pairs):
        while True:
            first, second = rng.permutation(n_frames), rng.permutation(n_frames)
            if not (
                np.array_equal(first, second)
                or np.array_equal(first, identity)
                or np.array_equal(second, identity)
            ):
                break
        orders[p] = first, second
    return orders


def restyle(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another look for a clip (T, H, W, 3) uint8 without stylized copies: its hue
    rotated by a quarter to three quarters of a turn, saturation and brightness curve
    redrawn, and one static texture of smooth noise laid over every frame. The transform
    is drawn once per clip, so it adds no flicker; it changes colour and texture but not
    shapes or edges, which a learned video stylization (the paper's) also redraws: an
    approximation, documented as one."""
    from scipy.ndimage import gaussian_filter
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(np.asarray(frames))
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(0.25, 0.75)) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 1)
    hsv[..., 2] = hsv[..., 2] ** rng.uniform(0.5, 2.0)
    rgb = hsv2rgb(hsv)
    height, width = rgb.shape[1:3]
    texture = gaussian_filter(rng.normal(size=(height, width, 3)), (2, 2, 0))
    texture *= rng.uniform(0.05, 0.15) / (texture.std() + 1e-9)
    return np.clip(np.rint((rgb + texture) * 255), 0, 255).astype(np.uint8)
