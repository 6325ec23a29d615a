"""Detection from trajectory geometry: planted separable features, the shuffled-label
null, grouped folds against the twin leakage the demo's scene pairs show, and the
nested cross-validation of choosing a layer against the optimism of the best one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from videoconcepts.methods.detection import (
    CLASSIFIERS,
    best_of,
    cross_validate,
    make_classifier,
    select_and_cross_validate,
)


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


def test_choosing_among_noise_layers_is_at_chance_when_nested_though_the_best_looks_good():
    """Six layers of pure noise: the best one's cross-validated AUROC is the maximum of six
    noisy estimates, above chance; choosing inside each training part is at chance."""
    best, nested = [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        generated = np.arange(40) % 2 == 1
        layers = {str(layer): rng.normal(size=(40, 21)) for layer in range(6)}
        best.append(
            max(
                cross_validate(x, generated, "logistic", [8], 200, 4, 0).folds["auroc"].mean()
                for x in layers.values()
            )
        )
        cv = select_and_cross_validate(layers, generated, "logistic", [8], 200, 4, 0)
        assert list(cv.folds.columns) == ["fold", "chosen", "auroc", "accuracy", "f1"]
        nested.append(cv.folds["auroc"].mean())
    assert np.mean(best) > 0.6 and abs(np.mean(nested) - 0.5) < 0.08
    assert np.mean(best) - np.mean(nested) > 0.08


def test_the_nested_choice_finds_the_one_layer_that_carries_the_signal():
    rng = np.random.default_rng(5)
    x, generated = planted(40, 3.0, 5)
    layers = {"0": rng.normal(size=x.shape), "3": x, "7": rng.normal(size=x.shape)}
    groups = np.arange(40) // 2  # pairs, as a scene and its variant
    cv = select_and_cross_validate(layers, generated, "logistic", [8], 200, 4, 0, groups)
    assert (cv.folds["chosen"] == "3").all() and cv.folds["auroc"].mean() > 0.9
    assert cv.scores.shape == (40,)
    few = np.r_[np.zeros(3, bool), np.ones(3, bool)]  # 3 folds leave 2 a class to train on
    small = {name: v[:6] for name, v in layers.items()}
    assert len(select_and_cross_validate(small, few, "logistic", [8], 200, 3, 0).folds) == 3
    # 2 folds of 2 videos a class leave 1 a class to choose with: refused, by the reason
    tiny = {name: v[[0, 1, 3, 4]] for name, v in small.items()}
    with pytest.raises(ValueError, match="needs 2 videos of each class in every training"):
        select_and_cross_validate(tiny, few[[0, 1, 3, 4]], "logistic", [8], 200, 2, 0)


def test_the_best_layer_is_the_deeper_on_a_tie_comparing_numbers_not_text():
    assert best_of(pd.Series({"1": 0.7, "3": 0.7, "2": 0.6})) == "3"
    assert best_of(pd.Series({"9": 0.8, "10": 0.8})) == "10"
    assert best_of(pd.Series({"-1": 0.9, "4": 0.5})) == "-1"
