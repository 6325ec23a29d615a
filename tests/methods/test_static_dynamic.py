"""Static and dynamic units (eq. 3.1 to 3.3) on planted features whose classes are known."""

from __future__ import annotations

import numpy as np
import pytest

from videoconcepts.methods.static_dynamic import (
    CLASSES,
    class_counts,
    layer_metric,
    removal_order,
    restyle,
    shuffle_pairs,
    unit_classes,
    unit_correlations,
)
from videoconcepts.stages.static_dynamic import Pairs, correlations


def planted(n_videos: int = 60, seed: int = 0) -> tuple[np.ndarray, Pairs, np.ndarray]:
    """Features (V, versions, units) of the versions :class:`Pairs` lays out: units 0-4
    copy the video's appearance (shared by its shufflings, redrawn in each restyle),
    5-9 its motion (kept by restyles, redrawn by each shuffling), 10-14 its layout (kept
    by both) and 15-19 noise. Returns the features, the pairs and the planted classes."""
    rng = np.random.default_rng(seed)
    pairs = Pairs(copies=2, shuffles=2)
    n_versions = len(pairs.versions)
    appearance = rng.normal(size=(n_videos, n_versions))
    motion = rng.normal(size=(n_videos, n_versions))
    appearance[:, 1 + pairs.copies :] = appearance[:, :1]  # shufflings keep the look
    motion[:, 1 : 1 + pairs.copies] = motion[:, :1]  # restyles keep the motion
    layout = np.repeat(rng.normal(size=(n_videos, 1)), n_versions, 1)
    noise = 0.2 * rng.normal(size=(n_videos, n_versions, 20))
    base = np.stack(
        [appearance] * 5 + [motion] * 5 + [layout] * 5 + [np.zeros_like(layout)] * 5, -1
    )
    classes = np.repeat([0, 1, 2, 3], 5)
    return base + noise, pairs, classes


def test_planted_units_are_classed_exactly():
    features, pairs, planted_classes = planted()
    s = correlations(features, pairs)
    assert s["static"][:5].min() > 0.9 and np.abs(s["static"][5:10]).max() < 0.4
    np.testing.assert_array_equal(unit_classes(s["static"], s["dynamic"]), planted_classes)
    counts = class_counts(unit_classes(s["static"], s["dynamic"]))
    assert {name: int(counts[name]) for name in CLASSES} == dict.fromkeys(CLASSES, 5)


def test_swapping_the_pairs_swaps_static_and_dynamic():
    """The measure is not blind to which pairs are which: read the restyles as static
    pairs and the shufflings as dynamic ones and the appearance units come out dynamic."""
    features, pairs, planted_classes = planted()
    s = correlations(features, pairs)
    swapped = unit_classes(s["dynamic"], s["static"])
    assert (swapped[:5] == 1).all() and (swapped[5:10] == 0).all()


def test_unit_correlations_are_pearson_over_pairs():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    b[:, 0] = a[:, 0] * 3 + 1  # perfectly correlated, other scale
    expected = [np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(4)]
    np.testing.assert_allclose(unit_correlations(a, b), expected, atol=1e-12)
    assert unit_correlations(a, b)[0] == pytest.approx(1.0)


def test_a_constant_unit_has_no_correlation_and_is_residual():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(10, 3))
    a[:, 1] = 4.0
    s = unit_correlations(a, a)
    assert np.isnan(s[1]) and s[0] == pytest.approx(1.0)
    assert CLASSES[unit_classes(s, s)[1]] == "residual"


def test_layer_metric_is_the_softmax_of_mean_correlations_times_units():
    s_static, s_dynamic = np.ones((2, 8)), np.zeros((2, 8))
    s_dynamic[1] = 1.0
    metric = layer_metric(s_static, s_dynamic)
    e = np.e
    assert metric["N_static"][0] == pytest.approx(8 * e / (2 * e + 1))
    assert metric["N_dynamic"][0] == pytest.approx(8 / (2 * e + 1))
    # All three factors at 1: a third of the units each.
    assert metric["N_dynamic"][1] == pytest.approx(8 / 3)
    total = metric["N_static"] + metric["N_dynamic"] + metric["N_identical"]
    np.testing.assert_allclose(total, 8)


def test_threshold_is_strict_and_nan_is_below():
    classes = unit_classes(np.array([0.5, 0.51, np.nan]), np.array([0.51, 0.5, 0.9]), lam=0.5)
    assert [CLASSES[c] for c in classes] == ["dynamic", "static", "dynamic"]


def test_removal_order_puts_the_most_biased_first():
    s_static = np.array([0.9, 0.1, 0.5, 0.8])
    s_dynamic = np.array([0.1, 0.9, 0.5, 0.2])
    assert removal_order(s_static, s_dynamic, "static").tolist() == [0, 3, 2, 1]
    assert removal_order(s_static, s_dynamic, "dynamic").tolist() == [1, 2, 3, 0]
    with pytest.raises(ValueError, match="factor"):
        removal_order(s_static, s_dynamic, "joint")


def test_shuffle_pairs_are_two_different_non_identity_orders():
    orders = shuffle_pairs(4, 50, np.random.default_rng(0))
    assert orders.shape == (50, 2, 4)
    for first, second in orders:
        assert sorted(first) == [0, 1, 2, 3] and sorted(second) == [0, 1, 2, 3]
        assert not np.array_equal(first, second)
        assert not np.array_equal(first, np.arange(4)) and not np.array_equal(second, np.arange(4))
    with pytest.raises(ValueError, match="3 frames"):
        shuffle_pairs(2, 1, np.random.default_rng(0))


def test_restyle_is_one_transform_for_every_frame():
    """No flicker: equal frames stay equal, and every frame is mapped the same way."""
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    clip = np.stack([frame, frame, 255 - frame])
    styled = restyle(clip, np.random.default_rng(4))
    assert styled.shape == clip.shape and styled.dtype == np.uint8
    np.testing.assert_array_equal(styled[0], styled[1])
    assert np.abs(styled[0].astype(int) - frame).mean() > 20  # the look did change
    again = restyle(clip[2:], np.random.default_rng(4))
    np.testing.assert_array_equal(again[0], styled[2])
