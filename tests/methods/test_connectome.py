"""Connectome methods on planted data: nested top-down segments, pruned concepts, and
ITCAV through a toy network whose upper unit is built from one lower direction."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from videoconcepts.methods.connectome import (
    Pruning,
    average_path_strength,
    cav,
    edge_test,
    layer_concepts,
    positive_share,
    split_segment,
    top_down_segments,
)

PAPER = Pruning(A=-102, K=115, C=1, Q=1, B=0.0004, nu=1)


def test_the_pruning_curve_is_the_papers_generalised_logistic():
    assert PAPER.min_size(0) == pytest.approx(6.5)  # A + (K - A) / 2
    sizes = [PAPER.min_size(t) for t in (0, 1000, 10_000, 100_000)]
    assert np.all(np.diff(sizes) > 0) and sizes[-1] == pytest.approx(115, abs=1e-6)


def halves(depth: int = 4, side: int = 8, dim: int = 6, seed: int = 0) -> np.ndarray:
    """A (T', H', W', D) volume whose left and right halves carry two feature clusters,
    and whose top and bottom halves of the left side differ again, less."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(0, 0.05, (depth, side, side, dim)).astype(np.float32)
    volume[..., : side // 2, 0] += 3.0
    volume[:, : side // 2, : side // 2, 1] += 1.0
    return volume


def test_top_segments_follow_the_planted_feature_clusters():
    volume = halves()
    labels = split_segment(volume, np.ones(volume.shape[:3], bool), 3, 0.1, 4, True, 0)
    assert labels.min() >= 1  # the top layer covers every token
    left, right = labels[..., :4], labels[..., 4:]
    # the left half is one segment or two (its planted sub-split), never the right's
    assert not set(np.unique(left)) & set(np.unique(right))
    assert len(np.unique(right)) == 1


def test_lower_segments_nest_inside_their_parents_and_respect_min_tokens():
    volume = halves()
    found = top_down_segments([volume, volume, volume], 3, 0.1, 4, 0)
    for (upper, _), (lower, parents) in zip(found[:-1], found[1:], strict=True):
        for s, parent in enumerate(parents, 1):
            inside = lower == s
            assert inside.sum() >= 4
            assert np.all(upper[inside] == parent + 1)  # a child lies in its parent alone
    # a parent under twice min_tokens stays whole
    small = np.zeros(volume.shape[:3], bool)
    small[0, 0, :6] = True
    assert np.array_equal(split_segment(volume, small, 3, 0.1, 4, False, 0), small.astype(int))


def test_small_clusters_are_pruned_and_concepts_are_ordered_by_size():
    rng = np.random.default_rng(1)
    centres = np.eye(4)[:3] * 10
    pooled = np.concatenate(
        [c + rng.normal(0, 0.1, (n, 4)) for c, n in zip(centres, (12, 4, 2), strict=True)]
    )
    rule = Pruning(A=-111, K=115, C=1, Q=1, B=0.0004, nu=1)  # needs 3 or more here
    assigned, found = layer_concepts(pooled, 3, rule, 0)
    assert len(found) == 2
    assert np.all(assigned[:12] == 0) and np.all(assigned[12:16] == 1)
    assert np.all(assigned[16:] == -1)
    np.testing.assert_allclose(found[0], centres[0], atol=0.1)
    # the paper's rule needs 7 segments of these 18: two clusters at most, one kept
    assigned, found = layer_concepts(pooled, 3, PAPER, 0)
    assert len(found) == 1 and np.all(assigned[:12] == 0)


def toy_upper(z: torch.Tensor) -> torch.Tensor:
    """The toy network's upper layer: tokens (n, N, 3) -> pooled (n, 2); its first unit
    is built from the lower direction e0 alone, its second from e1 + e2."""
    first = torch.relu(z[..., 0] + 0.1)
    second = 3 * (z[..., 1] + z[..., 2])
    return torch.stack([first, second], -1).mean(1)


def test_itcav_finds_the_one_planted_edge_and_only_it():
    """Each random concept is its own pair of random sets: with one random set shared by
    every null CAV (the reference code's), e1 and e2 got edges in 6 of 20 tests over ten
    seeds; with independent pairs in 1 of 24, the test's nominal rate."""
    rng = np.random.default_rng(0)
    dim, n = 3, 60
    random_features = rng.normal(0, 1, (21, n, dim))
    lower_concepts = [rng.normal(0, 1, (n, dim)) + 3 * np.eye(dim)[k] for k in range(dim)]
    # the upper concept's centroid: a high first unit (its segments sit below it) and
    # the second unit's mean, so only e0 pulls every segment towards it
    centre = torch.tensor([4.0, 0.0])
    z = torch.tensor(rng.normal(0, 1, (40, 16, dim)), dtype=torch.float32, requires_grad=True)
    distance = (toy_upper(z) - centre).norm(dim=1).sum()
    (grad,) = torch.autograd.grad(-distance, z)
    gradients = grad.sum(1).numpy()
    nulls = np.stack(
        [cav(random_features[11 + i], r, 0.01, i) for i, r in enumerate(random_features[1:11])]
    )
    null = positive_share(gradients, nulls)
    weights, p_values = [], []
    for positives in lower_concepts:
        vectors = np.stack(
            [cav(positives, r, 0.01, i) for i, r in enumerate(random_features[1:11])]
        )
        scores = positive_share(gradients, vectors)
        weights.append(scores.mean())
        p_values.append(edge_test(scores, null))
    assert weights[0] > 0.9 and p_values[0] < 0.05  # e0 feeds the upper unit
    assert all(p > 0.05 or np.isnan(p) for p in p_values[1:])  # e1, e2 feed nothing
    assert all(abs(w - null.mean()) < 0.35 for w in weights[1:])


def test_edge_test_keeps_a_constant_shift_and_drops_no_difference():
    assert edge_test(np.ones(5), np.zeros(5)) == 0.0
    assert np.isnan(edge_test(np.full(5, 0.5), np.full(5, 0.5)))
    assert edge_test(np.array([0.9, 0.8, 0.95, 0.85]), np.array([0.5, 0.4, 0.6, 0.5])) < 0.01


def test_average_path_strength_is_the_mean_over_paths_of_their_mean_weight():
    graph = nx.DiGraph()
    graph.add_edge("a", "b1", weight=1.0)
    graph.add_edge("a", "b2", weight=0.0)
    graph.add_edge("b1", "class", weight=0.5)
    graph.add_edge("b2", "class", weight=1.0)
    graph.add_node("lonely")
    strengths = average_path_strength(graph, "class")
    assert strengths["a"] == pytest.approx(((1 + 0.5) / 2 + (0 + 1) / 2) / 2)
    assert strengths["b1"] == 0.5 and "lonely" not in strengths
