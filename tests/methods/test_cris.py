"""CRIS mask sampling, sharding, the estimator and split-half stability, on known answers."""

from __future__ import annotations

import numpy as np
import pytest

from videoconcepts.methods.cris import (
    batch_ranges,
    cris_estimate,
    sample_masks,
    split_half_stability,
    video_bootstrap,
    video_effects,
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
    importance, stderr = cris_estimate(scores, masks, np.ones((1, 2), bool))
    np.testing.assert_allclose(importance, [1.0, 0.0])
    # Welch: sample variance 0.5 in each group of two -> sqrt(0.5 / 2 + 0.5 / 2)
    np.testing.assert_allclose(stderr, [0.0, np.sqrt(0.5)])
    # a unit absent from the only video counts zero whatever the scores
    importance, stderr = cris_estimate(scores, masks, np.array([[True, False]]))
    assert importance[1] == 0 and stderr[1] == 0


def test_split_half_stability_is_high_for_a_clear_ranking():
    rng = np.random.default_rng(0)
    masks = sample_masks(2000, 10, 0.5, seed=1)
    weights = np.arange(10, dtype=float)
    scores = (-(masks * weights).sum(1) + rng.normal(0, 0.5, 2000))[None]
    assert split_half_stability(scores, masks, np.ones((1, 10), bool)) > 0.95
    # scores unrelated to the masks give no stable ranking
    masks = sample_masks(2000, 50, 0.5, seed=2)
    noise = rng.normal(0, 1, (1, 2000))
    assert abs(split_half_stability(noise, masks, np.ones((1, 50), bool))) < 0.5


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


def test_video_effects_average_to_the_importance():
    scores, masks, presence, _ = planted_video_effects()
    presence[::3, 1] = False
    effects = video_effects(scores, masks, presence)
    assert effects.shape == presence.shape and (effects[~presence] == 0).all()
    np.testing.assert_allclose(effects.mean(0), cris_estimate(scores, masks, presence)[0])


def test_video_bootstrap_is_wide_where_the_effect_varies_across_videos():
    scores, masks, presence, planted = planted_video_effects()
    importance, stderr = cris_estimate(scores, masks, presence)
    low, high, se = video_bootstrap(video_effects(scores, masks, presence), 1000, seed=0)
    assert (np.abs(importance - [1.0, 0.5, 0.0]) < 4 * stderr).all()
    # unit 0: half the videos show 2, half 0 -> the video-mean's s.e. is about 1 / sqrt(40)
    assert 0.12 < se[0] < 0.2 and se[0] > 10 * stderr[0]
    assert low[0] < 0.8 and high[0] > 1.2 and low[0] < importance[0] < high[0]
    # units 1 and 2: the same effect in every video -> a tight interval, even where the
    # masks' noise (shared by all videos, so not in this interval) is larger
    assert (high[1:] - low[1:] < 0.02).all() and (se[1:] < stderr[1:] / 5).all()
    # seeded, and an absent unit's interval is exactly zero
    again = video_bootstrap(video_effects(scores, masks, presence), 1000, seed=0)
    np.testing.assert_array_equal(np.stack([low, high, se]), np.stack(again))
    presence[:, 2] = False
    low, high, se = video_bootstrap(video_effects(scores, masks, presence), 200, seed=1)
    assert low[2] == high[2] == se[2] == 0
