"""Detection from trajectory geometry: planted separable features, the shuffled-label
null, and grouped folds against the twin leakage the demo's scene pairs show."""

from __future__ import annotations

import numpy as np
import pytest

from videoconcepts.methods.detection import CLASSIFIERS, cross_validate, make_classifier


def planted(n: int, signal: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n videos, 21 numbers each; generated ones shifted by ``signal`` in two of them."""
    rng = np.random.default_rng(seed)
    generated = np.arange(n) % 2 == 1
    x = rng.normal(size=(n, 21))
    x[generated, 15] += signal  # e.g. the max step distance
    x[generated, 19] += signal  # the angle variance
    return x, generated


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_a_planted_difference_is_found_and_shuffled_labels_are_at_chance(kind):
    x, generated = planted(80, 3.0, 0)
    cv = cross_validate(x, generated, kind, [64, 32], 500, 5, 0)
    assert cv.folds["auroc"].mean() > 0.95 and cv.folds["accuracy"].mean() > 0.85
    assert list(cv.folds["fold"]) == list(range(5)) and cv.scores.shape == (80,)
    nulls = [
        cross_validate(
            x, np.random.default_rng(s).permutation(generated), kind, [64, 32], 500, 5, 0
        )
        .folds["auroc"]
        .mean()
        for s in range(6)
    ]
    assert abs(np.mean(nulls) - 0.5) < 0.1


def test_twins_in_other_folds_pull_scores_the_wrong_way_and_groups_prevent_it():
    """Pairs of near-identical videos with opposite labels (a scene and its manipulated
    variant) and a weak real signal: ungrouped folds score below chance, grouped ones above."""
    rng = np.random.default_rng(1)
    scenes = rng.normal(size=(30, 21)) * 3
    x = np.concatenate([scenes, scenes + rng.normal(scale=0.05, size=scenes.shape)])
    x[30:, 15] += 0.8
    generated = np.r_[np.zeros(30, bool), np.ones(30, bool)]
    groups = np.r_[np.arange(30), np.arange(30)]
    loose = cross_validate(x, generated, "logistic", [64, 32], 500, 5, 0)
    grouped = cross_validate(x, generated, "logistic", [64, 32], 500, 5, 0, groups)
    assert loose.folds["auroc"].mean() < 0.45
    assert grouped.folds["auroc"].mean() > 0.6


def test_nan_angles_are_imputed_and_too_few_videos_are_refused():
    x, generated = planted(40, 3.0, 2)
    x[::3, 8] = np.nan  # an angle beside a frozen step
    model = make_classifier("mlp", [8], 200, 0).fit(x, generated)
    assert np.isfinite(model.predict_proba(x)).all()
    with pytest.raises(
        ValueError, match="needs 5 videos of each class or more; the smaller class has 3"
    ):
        cross_validate(x[:7], generated[:7], "logistic", [8], 100, 5, 0)
    with pytest.raises(ValueError, match="needs 5 groups, got 4"):
        cross_validate(x, generated, "logistic", [8], 100, 5, 0, np.arange(40) % 4)
    with pytest.raises(ValueError, match="unknown classifier 'svm'"):
        make_classifier("svm", [8], 100, 0)
