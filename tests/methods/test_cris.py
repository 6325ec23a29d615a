"""CRIS mask sampling, sharding, both estimators and split-half stability, on known answers."""

from __future__ import annotations

import numpy as np
import pytest

from videoconcepts.methods.cris import (
    ESTIMATES,
    VIDEO_EFFECTS,
    batch_ranges,
    difference_effects,
    difference_estimate,
    fragile_videos,
    regression_effects,
    regression_estimate,
    ridge_penalty,
    sample_masks,
    split_half_stability,
    video_bootstrap,
)


def test_sampled_masks_are_independent_draws_that_follow_the_seed():
    masks = sample_masks(4000, 9, 0.3, seed=4)
    assert masks.shape == (4000, 9)
    assert np.array_equal(masks, sample_masks(4000, 9, 0.3, seed=4))
    assert not np.array_equal(masks, sample_masks(4000, 9, 0.3, seed=5))
    share = masks.mean(0)
    assert share.min() > 0.27 and share.max() < 0.33
    # independent units: no correlation between any two (a fixed count per mask has -1/8)
    corr = np.corrcoef(masks.T)[np.triu_indices(9, 1)]
    assert np.abs(corr).max() < 0.06


@pytest.mark.parametrize("n_shards", [1, 2, 3, 7, 20])
def test_shards_partition_the_masks_in_whole_batches(n_shards):
    ranges = [batch_ranges(50, 8, n_shards, s) for s in range(n_shards)]
    assert [i for r in ranges for i in r] == list(range(50))
    assert all(r.start % 8 == 0 for r in ranges if len(r))


def test_estimator_golden_values():
    masks = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], bool)
    scores = np.array([[0.0, 1.0, 0.0, 1.0]])
    importance, stderr = difference_estimate(scores, masks, np.ones((1, 2), bool))
    np.testing.assert_allclose(importance, [1.0, 0.0])
    # Welch: sample variance 0.5 in each group of two -> sqrt(0.5 / 2 + 0.5 / 2)
    np.testing.assert_allclose(stderr, [0.0, np.sqrt(0.5)])
    # a unit absent from the only video counts zero whatever the scores
    importance, stderr = difference_estimate(scores, masks, np.array([[True, False]]))
    assert importance[1] == 0 and stderr[1] == 0
    # regression: orthogonal centred columns (Gram = I), ridge 1/4 * 4 * (2/4)^4 = 1/16, so
    # the exact fit's coefficient 1 shrinks to 16/17; unit 1 explains nothing
    importance, _ = regression_estimate(scores, masks, np.ones((1, 2), bool))
    np.testing.assert_allclose(importance, [16 / 17, 0.0], atol=1e-12)


@pytest.mark.parametrize("estimator", ["difference", "regression"])
def test_split_half_stability_is_high_for_a_clear_ranking(estimator):
    rng = np.random.default_rng(0)
    masks = sample_masks(2000, 10, 0.5, seed=1)
    weights = np.arange(10, dtype=float)
    scores = (-(masks * weights).sum(1) + rng.normal(0, 0.5, 2000))[None]
    assert split_half_stability(scores, masks, np.ones((1, 10), bool), estimator) > 0.95
    # scores unrelated to the masks give no stable ranking
    masks = sample_masks(2000, 50, 0.5, seed=2)
    noise = rng.normal(0, 1, (1, 2000))
    assert abs(split_half_stability(noise, masks, np.ones((1, 50), bool), estimator)) < 0.5


def planted_video_effects(n_videos: int = 40, n_masks: int = 2000) -> tuple:
    """Scores where unit 0 matters a lot in some videos and not at all in others (mean 1),
    unit 1 matters by 0.5 in every video, unit 2 not at all; small mask noise."""
    rng = np.random.default_rng(0)
    masks = sample_masks(n_masks, 3, 0.5, seed=3)
    effect0 = np.where(np.arange(n_videos) % 2 == 0, 2.0, 0.0)  # (V,)
    effects = np.stack([effect0, np.full(n_videos, 0.5), np.zeros(n_videos)], 1)  # (V, U)
    kept = (~masks).astype(float)  # (K, U)
    scores = kept @ effects.T + rng.normal(0, 0.05, (n_masks, n_videos))
    return scores.T, masks, np.ones((n_videos, 3), bool), effects


@pytest.mark.parametrize("estimator", ["difference", "regression"])
def test_video_effects_average_to_the_importance(estimator):
    scores, masks, presence, _ = planted_video_effects()
    presence[::3, 1] = False
    effects = VIDEO_EFFECTS[estimator](scores, masks, presence)
    assert effects.shape == presence.shape and (effects[~presence] == 0).all()
    np.testing.assert_allclose(effects.mean(0), ESTIMATES[estimator](scores, masks, presence)[0])


def test_video_bootstrap_is_wide_where_the_effect_varies_across_videos():
    scores, masks, presence, planted = planted_video_effects()
    importance, stderr = difference_estimate(scores, masks, presence)
    low, high, se = video_bootstrap(difference_effects(scores, masks, presence), 1000, seed=0)
    assert (np.abs(importance - [1.0, 0.5, 0.0]) < 4 * stderr).all()
    # unit 0: half the videos show 2, half 0 -> the video-mean's s.e. is about 1 / sqrt(40)
    assert 0.12 < se[0] < 0.2 and se[0] > 10 * stderr[0]
    assert low[0] < 0.8 and high[0] > 1.2 and low[0] < importance[0] < high[0]
    # units 1 and 2: the same effect in every video -> a tight interval, even where the
    # masks' noise (shared by all videos, so not in this interval) is larger
    assert (high[1:] - low[1:] < 0.02).all() and (se[1:] < stderr[1:] / 5).all()
    # seeded, and an absent unit's interval is exactly zero
    again = video_bootstrap(difference_effects(scores, masks, presence), 1000, seed=0)
    np.testing.assert_array_equal(np.stack([low, high, se]), np.stack(again))
    presence[:, 2] = False
    low, high, se = video_bootstrap(difference_effects(scores, masks, presence), 200, seed=1)
    assert low[2] == high[2] == se[2] == 0


def planted_additive(n_units: int, n_masks: int, n_videos: int, seed: int, noise: float = 0.3):
    """Additive scores on planted effects (about 60 % of units present per video), with
    mask noise both shared by all videos (interactions that every video sees alike) and
    per video. Effects (V, U) are fixed by ``n_units`` and ``n_videos``, masks by ``seed``."""
    rng = np.random.default_rng([n_units, n_videos])
    presence = rng.random((n_videos, n_units)) < 0.6
    effects = np.where(presence, rng.normal(0, 1, (n_videos, n_units)), 0.0)
    masks = sample_masks(n_masks, n_units, 0.5, seed)
    rng = np.random.default_rng([seed, 7])
    shared = rng.normal(0, noise, (n_masks, 1))
    scores = (~masks) @ effects.T + shared + rng.normal(0, noise, (n_masks, n_videos))
    return scores.T, masks, presence, effects.mean(0)


def over_seeds(n_seeds: int, **kwargs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(n_seeds, U) importances and standard errors of both estimators, new masks each seed."""
    runs = [planted_additive(seed=seed, **kwargs) for seed in range(n_seeds)]
    out = {}
    for name, estimate in ESTIMATES.items():
        pairs = [estimate(scores, masks, presence) for scores, masks, presence, _ in runs]
        out[name] = tuple(np.stack(column) for column in zip(*pairs, strict=True))
    return out


def test_regression_is_unbiased_on_planted_additive_effects():
    n_seeds = 600
    planted = planted_additive(20, 200, 5, seed=0)[3]
    importance, _ = over_seeds(n_seeds, n_units=20, n_masks=200, n_videos=5)["regression"]
    mean, tolerance = importance.mean(0), 4 * importance.std(0) / np.sqrt(n_seeds)
    assert (np.abs(mean - planted) <= tolerance).all()
    # tight enough to see a 1 % shrinkage (a ridge of (n / K)^2 instead of (n / K)^4)
    assert not (np.abs(0.99 * mean - planted) <= tolerance).all()


def test_both_estimators_target_the_same_effect_with_interactions():
    """Independent masks make the regression coefficient the difference of conditional
    means: with score = kept_0 * kept_1 both give 1 - p = 0.5 to units 0 and 1."""
    estimates = {name: [] for name in ESTIMATES}
    for seed in range(100):
        masks = sample_masks(400, 6, 0.5, seed)
        kept = ~masks
        scores = (kept[:, 0] & kept[:, 1]).astype(float)[None]
        for name, estimate in ESTIMATES.items():
            estimates[name].append(estimate(scores, masks, np.ones((1, 6), bool))[0])
    for name, values in estimates.items():
        np.testing.assert_allclose(
            np.mean(values, 0), [0.5, 0.5, 0, 0, 0, 0], atol=0.01, err_msg=name
        )


def test_regression_standard_errors_are_smaller_and_calibrated():
    runs = over_seeds(150, n_units=40, n_masks=300, n_videos=6)
    (regression, regression_se), (_, difference_se) = runs["regression"], runs["difference"]
    ratio = np.median(difference_se.mean(0) / regression_se.mean(0))
    assert ratio > 1.3
    # the reported error matches the spread over masks, shared noise included
    calibration = regression.std(0) / regression_se.mean(0)
    assert 0.8 < np.median(calibration) < 1.2
    assert calibration.min() > 0.7 and calibration.max() < 1.4


def test_regression_splits_halves_more_stably_at_equal_masks():
    scores, masks, presence, _ = planted_additive(60, 240, 4, seed=1)
    regression = split_half_stability(scores, masks, presence, "regression")
    difference = split_half_stability(scores, masks, presence, "difference")
    assert regression > 0.95 and regression > difference + 0.1


def test_regression_is_each_videos_ridge_fit_on_its_present_units():
    scores, masks, presence, _ = planted_additive(12, 60, 5, seed=2)
    presence[3] = presence[1]  # two videos share a factorisation
    effects = regression_effects(scores, masks, presence)
    share = masks.mean()
    for v in range(len(scores)):
        units = np.flatnonzero(presence[v])
        lam = ridge_penalty(len(units), len(masks), share)
        design = np.column_stack([np.ones(len(masks)), ~masks[:, units]])
        rows = np.column_stack([np.zeros(len(units)), np.sqrt(lam) * np.eye(len(units))])
        augmented = np.vstack([design, rows])
        target = np.concatenate([scores[v], np.zeros(len(units))])
        fit = np.linalg.lstsq(augmented, target, rcond=None)[0]
        np.testing.assert_allclose(effects[v, units], fit[1:], atol=1e-10)
        assert (effects[v, ~presence[v]] == 0).all()


def test_regression_scores_an_absent_unit_zero():
    scores, masks, presence, _ = planted_additive(10, 100, 4, seed=3)
    presence[:, 4] = False
    importance, stderr = regression_estimate(scores, masks, presence)
    assert importance[4] == 0 and stderr[4] == 0 and (stderr[presence.any(0)] > 0).all()
    low, high, se = video_bootstrap(regression_effects(scores, masks, presence), 200, seed=0)
    assert low[4] == high[4] == se[4] == 0


def test_regression_with_more_units_than_masks_stays_finite():
    scores, masks, presence, _ = planted_additive(80, 24, 3, seed=4)
    importance, stderr = regression_estimate(scores, masks, presence)
    assert np.isfinite(importance).all() and np.isfinite(stderr).all()
    assert (stderr[presence.any(0)] > 0).all()
    assert np.isfinite(split_half_stability(scores, masks, presence, "regression"))
    # masks that are all alike carry no information: zero, not a singular solve
    importance, stderr = regression_estimate(scores, np.zeros_like(masks), presence)
    assert (importance == 0).all() and (stderr == 0).all()


def test_fragile_videos_are_right_unmasked_but_wrong_under_most_masks():
    """Planted 0/1 scores over 8 masks: right on 1, 2 (exactly a quarter: not fragile)
    and 6 of them, and a video wrong even unmasked (not fragile: nothing to break)."""
    kept = [1, 2, 6, 0]
    scores = np.array([[1] * k + [0] * (8 - k) for k in kept], dtype=np.float32)
    baseline = np.array([1, 1, 1, 0])
    np.testing.assert_array_equal(fragile_videos(scores, baseline), [True, False, False, False])
    np.testing.assert_array_equal(
        fragile_videos(scores, baseline, below=0.3), [True, True, False, False]
    )
