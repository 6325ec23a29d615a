"""CRIS (Concept Randomized Importance Sampling): mask sampling and the importance estimators.

K random unit subsets are drawn once from the seed (each unit masked independently with
probability ``mask_ratio``). A unit's importance in one video is the change in the score
when the unit is kept instead of removed, averaged over the random masks of the others;
the importance is its mean over the videos, counted as zero where the unit is absent, so a
unit present in no video scores exactly zero. Two estimators of that same quantity
(``cris.estimator``):

- ``difference`` (:func:`difference_estimate`): the mean score over the masks that kept
  the unit minus the mean over the masks that removed it. Every other unit's effect is
  noise in that difference.
- ``regression`` (:func:`regression_estimate`): per video, least squares of the score on
  the kept indicators of the units present in it (with an intercept and a ridge that
  matters only where the units approach the masks, :func:`ridge_penalty`); the unit's
  coefficient is its effect in that video. The masks are independent draws, so the
  population coefficient equals the difference of conditional means even with
  interactions; the other units' additive effects are fitted instead of left in the
  noise. On the demo's scores its standard errors are 1.6x smaller: the difference
  needs 2.6x the masks for the same precision (``benchmarks/cris_estimators.py``).

Both estimators are linear in the videos (a (V, U) table of per-video effects whose mean
is the importance, :data:`VIDEO_EFFECTS`), and both standard errors cover mask noise
with the videos fixed; :func:`video_bootstrap` resamples the videos to say whether other
videos would give the same importance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, cho_solve

Estimator = Literal["regression", "difference"]


@dataclass(frozen=True)
class CrisSettings:
    """How CRIS draws its masks: ``num_masks`` subsets, each unit masked independently
    with probability ``mask_ratio``; shards may stop once split-half stability under
    ``estimator`` reaches ``stop_when_stable``."""

    num_masks: int
    mask_ratio: float
    seed: int
    stop_when_stable: float | None
    estimator: Estimator


# A video right on fewer masks than this is one CRIS cannot rank concepts on (see below).
FRAGILE_BELOW = 0.25


def fragile_videos(
    scores: np.ndarray, baseline: np.ndarray, below: float = FRAGILE_BELOW
) -> np.ndarray:
    """Videos a 0/1 metric (correctness) scores right unmasked but right under fewer than
    ``below`` of the (V, K) CRIS ``scores``' masks. There nearly every mask breaks the
    video, so a concept's kept and removed means are both near 0 and CRIS calls it
    unimportant, although removing it alone may break the video: the demo TimeSformer
    has 7 of 18 such videos at mask ratio 0.5 and loses the negative-order fidelity check
    to occlusion there, and wins it at 0.25. Many such videos call for a smaller
    ``cris.mask_ratio``."""
    return (np.asarray(baseline) > 0.5) & (np.asarray(scores).mean(axis=1) < below)


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


def difference_estimate(
    scores: np.ndarray, masks: np.ndarray, presence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Importance and standard error of each unit by the difference of means.

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


def difference_effects(scores: np.ndarray, masks: np.ndarray, presence: np.ndarray) -> np.ndarray:
    """(V, U) each video's share of the importance: its mean score over the masks keeping
    the unit minus its mean over the masks removing it, 0 where the unit is absent.

    The estimator is linear in the videos, so the mean over videos is exactly
    :func:`difference_estimate`'s importance.
    """
    scores = scores.astype(np.float64)
    kept, removed = (~masks).astype(np.float64), masks.astype(np.float64)
    kept_mean = scores @ kept / np.maximum(kept.sum(0), 1)
    removed_mean = scores @ removed / np.maximum(removed.sum(0), 1)
    return np.where(presence, kept_mean - removed_mean, 0.0)


def ridge_penalty(n_units: int, n_masks: int, masked_share: float) -> float:
    """The regression's ridge on the centred kept indicators: ``p (1 - p) K (n / K)^4``.

    The centred Gram's diagonal is about ``K p (1 - p)``, so each coefficient shrinks by
    a factor of about ``1 + (n / K)^4``: 0.01 % at one unit per ten masks, 6 % at one per
    two (where least squares alone has doubled its variance), half where the units equal
    the masks, and a finite answer past them.
    """
    return masked_share * (1 - masked_share) * n_masks * (n_units / n_masks) ** 4


def regression_fit(
    scores: np.ndarray, masks: np.ndarray, presence: np.ndarray, stderr: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(V, U) per-video coefficients (0 where absent) and, if ``stderr``, the (U,)
    standard error of their mean over videos (zeros otherwise).

    Each video regresses its centred scores on the centred kept indicators of its units
    (the intercept, unpenalised). The Gram is formed once; videos with the same presence
    share one Cholesky factorisation. The error is linear in the residuals, so the standard
    error sums, per mask, every video's residual times its influence on the coefficient:
    the videos share the masks, so their residuals are not independent, and a mask is one
    cluster. Residuals are scaled by ``sqrt(K / dof)`` for the degrees of freedom the fit
    used. It covers the variance; the ridge's small shrinkage is not in it.
    """
    scores = scores.astype(np.float64)
    n_videos, n_masks = scores.shape
    kept = (~masks).astype(np.float64)
    centred = kept - kept.mean(0)
    gram = centred.T @ centred
    centred_scores = scores - scores.mean(1, keepdims=True)
    cross = centred.T @ centred_scores.T  # (U, V)
    share = float(masks.mean())
    effects = np.zeros(presence.shape)
    errors = np.zeros((n_masks, presence.shape[1]))  # per mask, its share of each error
    if share in (0.0, 1.0):  # every mask alike: nothing varies to fit
        return effects, errors[0]
    patterns, group = np.unique(presence, axis=0, return_inverse=True)
    for g, pattern in enumerate(patterns):
        units, videos = np.flatnonzero(pattern), np.flatnonzero(group.ravel() == g)
        if len(units) == 0:
            continue
        block = gram[np.ix_(units, units)]
        penalty = ridge_penalty(len(units), n_masks, share) * np.eye(len(units))
        factor = cho_factor(block + penalty)
        beta = cho_solve(factor, cross[np.ix_(units, videos)])  # (n, videos)
        effects[np.ix_(videos, units)] = beta.T
        if stderr:
            inverse = cho_solve(factor, np.eye(len(units)))
            dof = n_masks - 1 - float(np.sum(inverse * block))  # K - 1 - trace of the hat
            residuals = centred_scores[videos].T - centred[:, units] @ beta  # (K, videos)
            influence = centred[:, units] @ inverse  # (K, n)
            scale = np.sqrt(n_masks / dof)
            errors[:, units] += influence * (scale * residuals.sum(1, keepdims=True))
    return effects, np.sqrt((errors**2).sum(0)) / n_videos


def regression_estimate(
    scores: np.ndarray, masks: np.ndarray, presence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Importance and standard error of each unit by per-video regression: the mean over
    videos of each video's coefficient (:func:`regression_fit`), absent counted as zero."""
    effects, stderr = regression_fit(scores, masks, presence, stderr=True)
    return effects.mean(0), stderr


def regression_effects(scores: np.ndarray, masks: np.ndarray, presence: np.ndarray) -> np.ndarray:
    """(V, U) each video's coefficient, 0 where the unit is absent; their mean over videos
    is :func:`regression_estimate`'s importance."""
    return regression_fit(scores, masks, presence, stderr=False)[0]


Estimate = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
Effects = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
ESTIMATES: dict[Estimator, Estimate] = {
    "difference": difference_estimate,
    "regression": regression_estimate,
}
VIDEO_EFFECTS: dict[Estimator, Effects] = {
    "difference": difference_effects,
    "regression": regression_effects,
}


def video_bootstrap(
    effects: np.ndarray, n_replicates: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video-bootstrap 95 % percentile interval (low, high) and standard error per unit.

    ``effects`` (V, U) from either estimator's :data:`VIDEO_EFFECTS`. Each replicate draws
    V videos with replacement; it is a multinomial count per video, so a replicate's
    importance is one weighted mean of the rows, never a rerun of the estimator.
    """
    n_videos = effects.shape[0]
    rng = np.random.default_rng([seed, 1])  # a stream apart from sample_masks(seed)
    weights = rng.multinomial(n_videos, np.full(n_videos, 1 / n_videos), size=n_replicates)
    replicates = weights @ effects / n_videos  # (B, U)
    low, high = np.percentile(replicates, [2.5, 97.5], axis=0)
    return low, high, replicates.std(axis=0, ddof=1)


def half_importances(
    scores: np.ndarray, masks: np.ndarray, presence: np.ndarray, estimator: Estimator
) -> tuple[np.ndarray, np.ndarray]:
    """Importance from the even-numbered masks and from the odd-numbered ones (the mean of
    the video effects: no standard error, which the regression's costs most of its time)."""
    effects = VIDEO_EFFECTS[estimator]
    even, odd = (effects(scores[:, i::2], masks[i::2], presence).mean(0) for i in (0, 1))
    return even, odd


def split_half_stability(
    scores: np.ndarray, masks: np.ndarray, presence: np.ndarray, estimator: Estimator
) -> float:
    """Spearman rank correlation of importance from even- vs odd-numbered masks; NaN
    where it is undefined (under 4 masks, under 2 present units, or a constant half)."""
    present = presence.any(0)
    if present.sum() < 2 or scores.shape[1] < 4:
        return float("nan")
    even, odd = (half[present] for half in half_importances(scores, masks, presence, estimator))
    if np.ptp(even) == 0 or np.ptp(odd) == 0:
        return float("nan")
    return float(pd.Series(even).corr(pd.Series(odd), method="spearman"))
