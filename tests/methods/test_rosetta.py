"""Rosetta mining on planted supports whose R-scores are known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from videoconcepts.methods.rosetta import (
    Supports,
    all_tuple_scores,
    mean_tuple_score,
    mine,
    pair_scores,
    resample_nearest,
    tuple_scores,
)


def supports(*concepts: list[set[int]], voxels: int = 8) -> Supports:
    """Concepts given as one set of voxel indices per video, on a (1, 1, voxels) grid."""
    masks = np.zeros((len(concepts), len(concepts[0]), 1, 1, voxels), bool)
    for c, per_video in enumerate(concepts):
        for v, on in enumerate(per_video):
            masks[c, v, 0, 0, sorted(on)] = True
    return Supports.from_masks(masks)


def found_set(found) -> dict[tuple, float]:
    """{((model, concept), ...): score} of mined tuples."""
    return {
        tuple(zip(t.models, map(int, row), strict=True)): float(score)
        for t in found
        for row, score in zip(t.concepts, t.scores, strict=True)
    }


def test_resampling_is_nearest_on_each_axis():
    masks = np.zeros((2, 2, 2), bool)
    masks[1, 0, 1] = True
    up = resample_nearest(masks, (4, 4, 2))
    assert up.shape == (4, 4, 2) and up.sum() == 4 and up[2:, :2, 1].all()
    assert (resample_nearest(up, (2, 2, 2)) == masks).all()


def test_pair_scores_are_the_mean_iou_over_videos_where_either_appears():
    # video 0: {0,1} vs {1,2} -> 1/3; video 1: {4} vs {4} -> 1; video 2: neither -> skipped
    a = supports([{0, 1}, {4}, set()])
    b = supports([{1, 2}, {4}, set()], [set(), set(), {7}])
    scores = pair_scores(a, b)
    assert scores[0, 0] == pytest.approx((1 / 3 + 1) / 2)
    assert scores[0, 1] == 0  # only in video 2, where a is absent: IoU 0 there
    assert scores == pytest.approx(all_tuple_scores([a, b]).reshape(1, 2))


def test_planted_three_models_give_exact_scores_and_the_exact_filtered_set():
    a = supports([{0, 1, 2, 3}], [{6}])
    b = supports([{0, 1, 2}], [{7}])
    c = supports([{0, 1}], [{5}])
    found = found_set(mine([a, b, c], delta=0.4))
    # pairs: a0-b0 3/4, a0-c0 2/4, b0-c0 2/3; a1, b1, c1 overlap nothing; triple 2/4
    assert found == pytest.approx(
        {
            ((0, 0), (1, 0)): 0.75,
            ((0, 0), (2, 0)): 0.5,
            ((1, 0), (2, 0)): 2 / 3,
            ((0, 0), (1, 0), (2, 0)): 0.5,
        }
    )
    # at delta 0.6 the pair a0-c0 fails, and with it the triple (its score is 0.5)
    assert set(found_set(mine([a, b, c], delta=0.6))) == {((0, 0), (1, 0)), ((1, 0), (2, 0))}
    assert set(found_set(mine([a, b, c], delta=0.4, max_d=2))) == {k for k in found if len(k) == 2}


def test_a_model_paired_with_a_copy_of_itself_finds_every_concept_with_score_one():
    rng = np.random.default_rng(0)
    masks = rng.random((12, 5, 2, 3, 3)) < 0.3
    masks[:, 0, 0, 0, 0] = True  # every concept appears somewhere
    model = Supports.from_masks(masks)
    found = found_set(mine([model, model], delta=0.999))
    assert found == {((0, c), (1, c)): 1.0 for c in range(12)}


def test_mining_finds_exactly_what_enumerating_every_combination_finds():
    """The growth from survivors is exact (a tuple never outscores its sub-tuples): on
    random overlapping supports of four models, every d-tuple at or above delta from
    all combinations is found, with its score, and nothing else."""
    rng = np.random.default_rng(1)
    base = rng.random((6, 4, 2, 4, 4)) < 0.5
    models = [
        Supports.from_masks(base ^ (rng.random(base.shape) < noise))
        for noise in (0.05, 0.1, 0.15, 0.2)
    ]
    delta = 0.3
    expected = {}
    for d in (2, 3, 4):
        for chosen in itertools.combinations(range(4), d):
            scores = all_tuple_scores([models[m] for m in chosen])
            for combo, score in zip(itertools.product(*[range(6)] * d), scores, strict=True):
                if score >= delta:
                    expected[tuple(zip(chosen, combo, strict=True))] = score
    found = found_set(mine(models, delta))
    assert len(expected) > 50 and any(len(k) == 4 for k in expected)
    assert found.keys() == expected.keys()
    assert [found[k] for k in expected] == pytest.approx(list(expected.values()))


def test_shuffling_videos_between_models_destroys_the_matches():
    rng = np.random.default_rng(2)
    masks = rng.random((8, 10, 2, 4, 4)) < 0.4
    a, b = Supports.from_masks(masks), Supports.from_masks(masks)
    matched = np.diag(pair_scores(a, b)).mean()
    shuffled = b.permuted(rng.permutation(10))
    assert matched == 1 and np.diag(pair_scores(a, shuffled)).mean() < 0.5
    concepts = np.stack([np.arange(8), np.arange(8)], axis=1)
    assert tuple_scores([a, shuffled], (0, 1), concepts) == pytest.approx(
        np.diag(pair_scores(a, shuffled))
    )


def test_mean_score_over_all_tuples_is_exact_when_small_and_sampled_when_large():
    rng = np.random.default_rng(3)
    models = [Supports.from_masks(rng.random((5, 3, 1, 4, 4)) < 0.5) for _ in range(3)]
    exact = mean_tuple_score(models, rng)
    assert exact == pytest.approx(all_tuple_scores(models).mean())
    assert mean_tuple_score(models, rng, max_exact=10) == pytest.approx(exact, abs=0.05)
