"""Convex NMF and the choice of the number of concepts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import nnls
from sklearn.metrics import adjusted_rand_score

from videoconcepts.methods.cnmf import (
    ConvexNMF,
    assign,
    choose_n_concepts,
    elbow_k,
    kmeans_init,
    start_from_labels,
)

N_CLUSTERS, PER_CLUSTER, DIM = 4, 50, 16


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, np.ndarray]:
    """Four well separated Gaussian clusters of mixed sign (about half the entries < 0)."""
    rng = np.random.default_rng(0)
    centres = 4.0 * rng.normal(size=(N_CLUSTERS, DIM))
    labels = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
    X = centres[labels] + rng.normal(size=(len(labels), DIM))
    assert 0.3 < (X < 0).mean() < 0.7
    return X, labels


@pytest.fixture(scope="module")
def fitted(clusters) -> ConvexNMF:
    X, _ = clusters
    return ConvexNMF(N_CLUSTERS, max_iter=10_000, tol=1e-6, max_relaxation=8).fit(X)


@pytest.fixture(scope="module")
def random_start(clusters) -> tuple[np.ndarray, np.ndarray]:
    """A positive start that knows nothing of the clusters, so assignments move early."""
    rng = np.random.default_rng(1)
    n = len(clusters[0])
    Z0, W0 = rng.uniform(0.5, 1.5, (n, N_CLUSTERS)), rng.uniform(0.5, 1.5, (N_CLUSTERS, n))
    return Z0, W0 / W0.sum(axis=1, keepdims=True)


def naive_updates(X: np.ndarray, Z: np.ndarray, W: np.ndarray, n_iter: int, eps: float = 1e-12):
    """The Ding et al. updates written out literally on X, for comparison."""
    K = X @ X.T
    Kp, Kn = np.maximum(K, 0), np.maximum(-K, 0)
    for _ in range(n_iter):
        Z = Z * np.sqrt((Kp @ W.T + Z @ W @ Kn @ W.T) / (Kn @ W.T + Z @ W @ Kp @ W.T + eps))
        num = Z.T @ Kp + Z.T @ Z @ W @ Kn
        W = W * np.sqrt(num / (Z.T @ Kn + Z.T @ Z @ W @ Kp + eps))
        s = W.sum(axis=1)
        W, Z = W / s[:, None], Z * s[None, :]
    return Z, W


def relative_loss(X: np.ndarray, Z: np.ndarray, W: np.ndarray) -> float:
    return float(np.sum((X - Z @ W @ X) ** 2) / np.sum(X**2))


def test_loss_decreases_and_converges(fitted):
    history = np.asarray(fitted.loss_history_)
    assert np.isfinite(history).all()
    assert len(history) == fitted.n_iter_ + 1
    assert np.all(np.diff(history) <= 1e-9 * history[:-1])
    assert history[-1] < 0.5 * history[0]
    assert fitted.converged_ and fitted.n_iter_ < fitted.max_iter
    assert abs(history[-2] - history[-1]) / history[-2] < fitted.tol


def test_factors_are_nonnegative_and_convex(clusters, fitted):
    X, _ = clusters
    assert np.isfinite(fitted.Z_).all() and np.isfinite(fitted.W_).all()
    assert (fitted.W_ >= 0).all() and (fitted.Z_ >= 0).all()
    np.testing.assert_allclose(fitted.W_.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fitted.components_, fitted.W_ @ X, rtol=1e-12, atol=1e-12)
    assert fitted.W_.shape == (N_CLUSTERS, len(X)) and fitted.Z_.shape == (len(X), N_CLUSTERS)


def test_loss_history_is_the_explicit_loss(clusters, fitted):
    X, _ = clusters
    explicit = relative_loss(X, fitted.Z_, fitted.W_)
    assert fitted.loss_history_[-1] == pytest.approx(explicit, rel=1e-9)


def test_recovers_clusters_and_centroids(clusters, fitted):
    X, labels = clusters
    found = assign(fitted.Z_)
    assert adjusted_rand_score(labels, found) > 0.95
    for c in range(N_CLUSTERS):
        mean = X[labels == c].mean(axis=0)
        concept = np.bincount(found[labels == c]).argmax()
        # cluster centres are ~16 apart and points ~4 from their centre
        assert np.linalg.norm(fitted.components_[concept] - mean) < 2.0


def test_matches_literal_updates_from_same_start(clusters):
    X, _ = clusters
    Z0, W0 = kmeans_init(X, N_CLUSTERS, random_state=3)
    model = ConvexNMF(N_CLUSTERS, max_iter=3, tol=0).fit(X, init=(Z0, W0))
    Z, W = naive_updates(X, Z0, W0, n_iter=3)
    assert model.n_iter_ == 3 and not model.converged_
    np.testing.assert_allclose(model.W_, W, rtol=1e-10)
    np.testing.assert_allclose(model.Z_, Z, rtol=1e-10)
    assert model.loss_history_[0] == pytest.approx(relative_loss(X, Z0, W0), rel=1e-10)


def test_default_start_is_kmeans_init(clusters):
    X, _ = clusters
    model = ConvexNMF(N_CLUSTERS, max_iter=0, random_state=5).fit(X)
    Z0, W0 = kmeans_init(X, N_CLUSTERS, random_state=5)
    np.testing.assert_array_equal(model.Z_, Z0)
    np.testing.assert_allclose(model.W_, W0, rtol=1e-15)
    assert (W0 > 0).all() and model.n_iter_ == 0


def test_kmeans_init_golden():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.0, 10.1], [10.1, 10.0]])
    Z0, W0 = kmeans_init(X, 2)
    first = Z0[0].argmax()
    np.testing.assert_allclose(Z0[:, first], [1.2, 1.2, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(W0[first], np.array([1.2, 1.2, 0.2, 0.2, 0.2]) / 3.0)
    np.testing.assert_allclose(W0[1 - first], np.array([0.2, 0.2, 1.2, 1.2, 1.2]) / 4.0)


def test_transform_of_training_rows_matches_codes(clusters, fitted):
    X, _ = clusters
    codes = fitted.transform(X)
    assert (codes >= 0).all()
    assert np.linalg.norm(codes - fitted.Z_) < 0.02 * np.linalg.norm(fitted.Z_)
    np.testing.assert_array_equal(assign(codes), assign(fitted.Z_))
    np.testing.assert_array_equal(assign(fitted.transform(X[:7] + 0.01)), assign(fitted.Z_[:7]))


def test_fit_transform_and_torch_input(clusters):
    X, _ = clusters
    Z = ConvexNMF(N_CLUSTERS, max_iter=20).fit_transform(torch.from_numpy(X))
    model = ConvexNMF(N_CLUSTERS, max_iter=20).fit(X)
    np.testing.assert_array_equal(Z, model.Z_)


def test_deterministic(clusters):
    X, _ = clusters
    a = ConvexNMF(N_CLUSTERS, max_iter=50, random_state=1).fit(X)
    b = ConvexNMF(N_CLUSTERS, max_iter=50, random_state=1).fit(X)
    np.testing.assert_array_equal(a.W_, b.W_)
    np.testing.assert_array_equal(a.Z_, b.Z_)
    assert a.loss_history_ == b.loss_history_


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_relaxed_updates_never_raise_the_loss_and_converge_sooner(clusters, random_start, dtype):
    X, labels = clusters
    plain = ConvexNMF(N_CLUSTERS, max_iter=20_000, dtype=dtype).fit(X, init=random_start)
    relaxed = ConvexNMF(N_CLUSTERS, max_iter=20_000, dtype=dtype, max_relaxation=8)
    relaxed.fit(X, init=random_start)
    assert plain.stop_reason_ == relaxed.stop_reason_ == "tol" and relaxed.converged_
    assert relaxed.n_iter_ < 0.6 * plain.n_iter_
    history = np.asarray(relaxed.loss_history_)
    rounding = 1e-9 if dtype == torch.float64 else 1e-6  # the loss is summed in float64
    assert np.all(np.diff(history) <= rounding * history[:-1])
    assert history[-1] <= plain.loss_history_[-1] * (1 + 1e-3)
    np.testing.assert_array_equal(assign(relaxed.Z_), assign(plain.Z_))
    assert adjusted_rand_score(labels, assign(relaxed.Z_)) == 1.0


def test_plain_updates_are_max_relaxation_one(clusters):
    X, _ = clusters
    Z0, W0 = kmeans_init(X, N_CLUSTERS, random_state=3)
    model = ConvexNMF(N_CLUSTERS, max_iter=3, tol=0, max_relaxation=1.0).fit(X, init=(Z0, W0))
    Z, W = naive_updates(X, Z0, W0, n_iter=3)
    np.testing.assert_allclose(model.Z_, Z, rtol=1e-10)
    relaxed = ConvexNMF(N_CLUSTERS, max_iter=3, tol=0, max_relaxation=8).fit(X, init=(Z0, W0))
    assert not np.allclose(relaxed.Z_, Z, rtol=1e-6)  # eta > 1 from the second step on


def test_assignment_stop_gives_the_converged_assignment(clusters, random_start):
    X, labels = clusters
    kwargs = {"max_iter": 20_000, "tol": 1e-7, "max_relaxation": 8}
    converged = ConvexNMF(N_CLUSTERS, **kwargs).fit(X, init=random_start)
    stopped = ConvexNMF(N_CLUSTERS, stable_iters=50, **kwargs).fit(X, init=random_start)
    assert converged.stop_reason_ == "tol"
    assert stopped.stop_reason_ == "stable" and stopped.converged_
    assert 50 <= stopped.n_iter_ < converged.n_iter_ / 10
    found = assign(stopped.Z_)
    np.testing.assert_array_equal(found, assign(converged.Z_))
    assert adjusted_rand_score(labels, found) == 1.0
    # 50 steps earlier every row already had the concept it ended with
    earlier = ConvexNMF(N_CLUSTERS, **{**kwargs, "max_iter": stopped.n_iter_ - 50})
    np.testing.assert_array_equal(assign(earlier.fit(X, init=random_start).Z_), found)


def test_float32_agrees_with_float64(clusters):
    X, labels = clusters
    settings = {"max_iter": 20_000, "tol": 1e-6, "max_relaxation": 8, "stable_iters": 100}
    f64 = ConvexNMF(N_CLUSTERS, **settings).fit(X)
    f32 = ConvexNMF(N_CLUSTERS, dtype=torch.float32, **settings).fit(X)
    assert {f32.Z_.dtype, f32.W_.dtype, f32.components_.dtype} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(assign(f32.Z_), assign(f64.Z_))
    np.testing.assert_allclose(f32.components_, f64.components_, rtol=0, atol=1e-2)
    assert f32.loss_history_[-1] == pytest.approx(f64.loss_history_[-1], rel=1e-3)


def test_subsample_fit_and_transform_recover_the_clusters(clusters):
    X, labels = clusters
    model = ConvexNMF(N_CLUSTERS, max_iter=3000, max_relaxation=8, stable_iters=50, fit_max_rows=60)
    codes = model.fit_transform(X)
    assert codes.shape == (len(X), N_CLUSTERS) and (codes >= 0).all()
    assert len(model.fit_rows_) == 60 and np.all(np.diff(model.fit_rows_) > 0)
    assert model.W_.shape == (N_CLUSTERS, 60) and model.Z_.shape == (60, N_CLUSTERS)
    np.testing.assert_array_equal(codes[model.fit_rows_], model.Z_)
    np.testing.assert_allclose(model.components_, model.W_ @ X[model.fit_rows_], rtol=1e-12)
    assert adjusted_rand_score(labels, assign(codes)) == 1.0
    # a start given for every row: the fitted rows' part of it is the fit's start
    start = kmeans_init(X, N_CLUSTERS, random_state=0)
    from_start = ConvexNMF(N_CLUSTERS, max_iter=0, fit_max_rows=60).fit(X, init=start)
    np.testing.assert_array_equal(from_start.Z_, start[0][from_start.fit_rows_])
    W0 = start[1][:, from_start.fit_rows_]
    np.testing.assert_allclose(from_start.W_, W0 / W0.sum(axis=1, keepdims=True), rtol=1e-12)
    # seeded: the same rows again, other rows with another seed
    again = ConvexNMF(N_CLUSTERS, max_iter=5, fit_max_rows=60).fit(X)
    other = ConvexNMF(N_CLUSTERS, max_iter=5, fit_max_rows=60, random_state=1).fit(X)
    np.testing.assert_array_equal(again.fit_rows_, model.fit_rows_)
    assert not np.array_equal(other.fit_rows_, model.fit_rows_)
    # at or below the threshold every row is fitted
    whole = ConvexNMF(N_CLUSTERS, max_iter=5, fit_max_rows=len(X)).fit(X)
    np.testing.assert_array_equal(whole.fit_rows_, np.arange(len(X)))


def test_transform_solves_the_codes_nonnegative_least_squares(clusters, fitted):
    X, _ = clusters
    codes = fitted.transform(X[:20])
    for row, code in zip(X[:20], codes, strict=True):
        exact, _ = nnls(fitted.components_.T, row)
        np.testing.assert_allclose(code, exact, rtol=0, atol=1e-4 * np.abs(exact).max())


@pytest.mark.parametrize(
    ("inertias", "threshold", "expected"),
    [
        ([5.0], 0.95, 1),
        ([100.0, 96.0], 0.95, 2),  # 96 > 95 fires at k = 2, and k = 2 is kept
        ([100.0, 94.0], 0.95, 2),  # never fires: the last k tried
        ([100.0, 50.0, 20.0, 19.5, 10.0], 0.95, 4),  # 19.5 > 19 fires at k = 4
        ([100.0, 80.0, 70.0], 0.9, 3),  # 80 < 90, 70 < 72: never fires
        ([100.0, 80.0, 70.0], 0.85, 3),  # 70 > 68 fires at k = 3
        ([100.0, 80.0, 70.0], 0.75, 2),  # 80 > 75 fires at k = 2
    ],
)
def test_elbow_keeps_the_k_at_which_the_test_fires(inertias, threshold, expected):
    """VTCD's cluster_dataset: break at the first k with inertia > threshold x the previous
    and keep that k (hand-computed on these sequences)."""
    assert elbow_k(inertias, threshold) == expected


def test_elbow_rule_needs_values():
    with pytest.raises(ValueError):
        elbow_k([], 0.95)


def test_choose_n_concepts_by_elbow(clusters):
    X, _ = clusters
    k, inertias, labels = choose_n_concepts(X, 14, "elbow", 0, 0.95)
    # k = 5 is the first k that barely improves on k = 4, and the reference keeps it
    assert k == N_CLUSTERS + 1
    assert list(inertias) == [1, 2, 3, 4, 5]  # stopped at the first k that fired
    assert inertias[5] > 0.95 * inertias[4] and inertias[4] < 0.95 * inertias[3]
    assert elbow_k(list(inertias.values()), 0.95) == k
    # a threshold the k = 5 step passes runs on to the next k that fails it
    assert choose_n_concepts(X, 14, "elbow", 0, 0.999)[0] > k
    # the labels are those of the k-means run with k clusters: the fit's own start
    for got, expected in zip(start_from_labels(labels, k), kmeans_init(X, k, 0), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_elbow_tries_k_up_to_max_concepts_and_one_less_than_the_rows():
    """The reference tries k in range(1, min(inter_max_cluster, n)): at most n - 1, and
    when the test never fires it keeps the last k tried."""
    X = 10.0 * np.eye(6)  # equidistant rows: every k improves by more than 5 %
    k, inertias, _ = choose_n_concepts(X, 14, "elbow", 0, 0.95)
    assert (k, list(inertias)) == (5, [1, 2, 3, 4, 5])
    k, inertias, _ = choose_n_concepts(X, 3, "elbow", 0, 0.95)
    assert (k, list(inertias)) == (3, [1, 2, 3])


def test_choose_n_concepts_by_silhouette(clusters):
    X, _ = clusters
    k, scores, labels = choose_n_concepts(X, 8, "silhouette", 0)
    assert k == N_CLUSTERS
    assert list(scores) == list(range(2, 9)) and max(scores.values()) == scores[k]
    np.testing.assert_array_equal(start_from_labels(labels, k)[0], kmeans_init(X, k, 0)[0])


def test_choose_n_concepts_small_inputs():
    assert choose_n_concepts(np.ones((5, 3)), 14, "elbow", 0, 0.95)[0] == 1  # one distinct row
    k, scores, labels = choose_n_concepts(np.ones((1, 3)), 14, "elbow", 0, 0.95)
    assert (k, scores, labels.tolist()) == (1, {1: 0.0}, [0])
    assert choose_n_concepts(np.eye(3)[[0, 1, 2, 0, 1]], 14, "elbow", 0, 0.95)[0] <= 3
    k, scores, labels = choose_n_concepts(np.eye(2), 14, "silhouette", 0)
    assert (k, scores, labels.tolist()) == (1, {}, [0, 0])
    with pytest.raises(ValueError, match="threshold"):
        choose_n_concepts(np.eye(3), 14, "elbow", 0)
    with pytest.raises(ValueError, match="method"):
        choose_n_concepts(np.eye(3), 14, "gap", 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("X", "kwargs", "match"),
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), {}, "NaN"),
        (np.arange(6.0), {}, "2-D"),
        (np.ones((3, 2)), {"n_components": 4}, "exceeds"),
        (np.zeros((3, 2)), {}, "zeros"),
    ],
)
def test_bad_inputs(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvexNMF(**{"n_components": 2, **kwargs}).fit(X)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_relaxation": 0.5}, "max_relaxation must be >= 1"),
        ({"stable_iters": -1}, "stable_iters must be >= 0"),
        ({"fit_max_rows": 1}, "fit_max_rows=1 is below n_components=2"),
        ({"max_iter": -1}, "max_iter >= 0"),
    ],
)
def test_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvexNMF(2, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64])
def test_rejects_dtypes(dtype):
    with pytest.raises(ValueError, match="float"):
        ConvexNMF(2, dtype=dtype)


def test_transform_errors(clusters):
    X, _ = clusters
    with pytest.raises(RuntimeError, match="not fitted"):
        ConvexNMF(2).transform(X)
    model = ConvexNMF(2, max_iter=5).fit(X)
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :3])
    with pytest.raises(ValueError, match="shape"):
        ConvexNMF(2).fit(X, init=(np.ones((3, 2)), np.ones((2, 3))))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(clusters):
    X, _ = clusters
    cpu = ConvexNMF(N_CLUSTERS, max_iter=200, tol=0).fit(X)
    gpu = ConvexNMF(N_CLUSTERS, max_iter=200, tol=0, device="cuda").fit(X)
    np.testing.assert_allclose(gpu.W_, cpu.W_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(gpu.Z_, cpu.Z_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(gpu.transform(X), cpu.transform(X), rtol=1e-6, atol=1e-9)
