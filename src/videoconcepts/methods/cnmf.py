"""Convex NMF (Ding, Li & Jordan 2008) for grouping tubelet descriptors into concepts.

X (n x d, rows = tubelet descriptors, any sign) is factorised as X ~ Z W X with codes
Z (n x k) >= 0 and convex weights W (k x n) >= 0 whose rows sum to 1, so each concept
centroid (a row of C = W X) is a convex combination of data rows.

Fit. The updates use the Gram matrix K = X X^T split as K = K+ - K- (K+ = max(K, 0),
K- = max(-K, 0)):

    Z <- Z * ((K+ W^T + Z W K- W^T) / (K- W^T + Z W K+ W^T)) ** p
    W <- W * ((Z^T K+ + (Z^T Z) W K-) / (Z^T K- + (Z^T Z) W K+)) ** p

With p = 1/2 these are the paper's multiplicative updates, which never raise the loss
||X - Z W X||^2. They crawl on flat stretches, so the exponent is over-relaxed
(Salakhutdinov & Roweis 2003, adaptive over-relaxed bound optimisation): p = eta / 2, eta
grows by 10 % after every step up to ``max_relaxation``; a step that raises the loss is
thrown away and redone with p = 1/2, and eta starts again from 1. ``max_relaxation=1`` is
the paper's algorithm. The tolerance test is only ever passed on a p = 1/2 step (a
relaxed step that changes the loss by less than ``tol`` is followed by a plain one), so it
means what it means for the plain updates: the paper's step no longer moves the loss.

Only K+ is held, n^2 numbers: K M = X (X^T M) costs 2 n d k flops for an (n x k) M, so
K- M = K+ M - K M needs no second n x n matrix. A step reads K+ twice (K+ Z and K+ W^T,
about 4 k n^2 flops); the loss is computed from the centroids, ||X - Z C||^2 summed in
float64 (n k d flops), which stays accurate in float32 where the trace form
tr K - 2 tr(W K Z) + tr(Z^T Z W K W^T) would cancel to noise.

Stops: the relative loss change of a plain step below ``tol``; or, with ``stable_iters``,
the assignment (argmax of each row of Z) unchanged for that many steps; or ``max_iter``.

Large n: with ``fit_max_rows``, a larger X is fitted on a seeded subsample of that many
rows and ``fit_transform`` codes the rest with ``transform``, so memory is
O(fit_max_rows^2 + n (d + k)) instead of O(n^2). ``transform`` solves the codes' own
problem, min_{Z >= 0} ||X - Z C||^2 with the centroids C fixed, a convex problem with k
unknowns per row, by exact coordinate descent on the columns of Z (HALS); it needs only
C, never the data the model was fitted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

_INIT_OFFSET = 0.2  # Ding et al.: start from k-means memberships + 0.2 so nothing is zero
_KMEANS_N_INIT = 10
_RELAXATION_GROWTH = 1.1  # eta's growth per step while steps keep lowering the loss
_TINY = float(np.finfo(np.float64).tiny)

StopReason = Literal["tol", "stable", "max_iter"]


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype in (torch.float16, torch.bfloat16):
        raise ValueError(
            f"dtype {dtype} is not supported: half precision under/overflows in the "
            "multiplicative updates; use torch.float32 or torch.float64"
        )
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")


def _as_tensor(X, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """X as a finite 2-D tensor of `dtype` on `device`, with a clear error otherwise."""
    t = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    if t.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"X is empty, shape {tuple(t.shape)}")
    t = t.detach().to(device=device, dtype=dtype)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"X contains NaN or infinite values (as {dtype})")
    return t


def _as_array(X) -> np.ndarray:
    """X as a finite, non-empty 2-D float64 numpy array."""
    return _as_tensor(X, torch.float64, torch.device("cpu")).numpy()


def _kmeans(X: np.ndarray, n_clusters: int, random_state: int | None) -> KMeans:
    return KMeans(n_clusters=n_clusters, n_init=_KMEANS_N_INIT, random_state=random_state).fit(X)


def kmeans_init(
    X, n_components: int, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Strictly positive starting point (Z0, W0) from k-means memberships (see
    ``start_from_labels``)."""
    labels = _kmeans(_as_array(X), n_components, random_state).labels_
    return start_from_labels(labels, n_components)


def start_from_labels(labels: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """(Z0, W0) from cluster labels, memberships H (n x k): Z0 = H + 0.2 and W0 = H^T + 0.2
    with rows normalised to sum 1 (dividing by cluster size first, as in the paper, does
    not change the normalised result)."""
    onehot = np.eye(n_components)[labels]
    Z0 = onehot + _INIT_OFFSET
    W0 = onehot.T + _INIT_OFFSET
    return Z0, W0 / W0.sum(axis=1, keepdims=True)


def assign(Z: np.ndarray) -> np.ndarray:
    """Concept index per row: the argmax of its codes (the tubelet -> concept rule)."""
    Z = np.asarray(Z)
    if Z.ndim != 2:
        raise ValueError(f"Z must be 2-D (n_samples, n_components), got shape {Z.shape}")
    return Z.argmax(axis=1)


class _Gram:
    """K+ = max(X X^T, 0) of the fitted rows; M K- and M K from it and X (see the module)."""

    def __init__(self, X: torch.Tensor) -> None:
        self.X = X
        self.Kp = (X @ X.T).clamp_min_(0)

    def products(self, M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """M K+ and M K- for a (k x n) M (M K- clamped at 0 against rounding). Taken as
        (k x n) @ K: in float32 that reads K about twice as fast as K @ (n x k)."""
        MKp = M @ self.Kp
        return MKp, (MKp - (M @ self.X) @ self.X.T).clamp_min_(0)


class _State:
    """Z (held as Z^T, k x n, like every n-long factor), W and what both updates and the
    loss reuse: W K± (k x n), W K± W^T (k x k) and the centroids C = W X, all computed
    once per step."""

    def __init__(self, Zt: torch.Tensor, W: torch.Tensor, gram: _Gram, norm: float) -> None:
        self.Zt, self.W = Zt, W
        self.WKp, self.WKn = gram.products(W)
        self.WKWp, self.WKWn = self.WKp @ W.T, self.WKn @ W.T
        self.C = W @ gram.X
        self.loss = _relative_loss(gram.X, Zt, self.C, norm)


def _relative_loss(X: torch.Tensor, Zt: torch.Tensor, C: torch.Tensor, norm: float) -> float:
    """||X - Z C||^2 / norm, the squares summed in float64."""
    return float((X - Zt.T @ C).square().sum(dtype=torch.float64)) / norm


def _ratio_power(num: torch.Tensor, den: torch.Tensor, p: float) -> torch.Tensor:
    ratio = num / den
    return ratio.sqrt() if p == 0.5 else ratio.pow(p)


def _step(state: _State, gram: _Gram, norm: float, p: float, eps: float) -> _State:
    """One update of Z, then of W (with Z^T Z on the left), at exponent p, both written
    transposed (Z^T <- Z^T * ((W K+ + (W K- W^T)^T Z^T) / (W K- + (W K+ W^T)^T Z^T))^p);
    then rows of W to sum 1 and Z rescaled (Z W unchanged)."""
    Zt, W = state.Zt, state.W
    num = state.WKp + state.WKWn.T @ Zt
    Zt = Zt * _ratio_power(num, state.WKn + state.WKWp.T @ Zt + eps, p)
    ZtZ = Zt @ Zt.T
    ZKp, ZKn = gram.products(Zt)  # Z^T K±
    W = W * _ratio_power(ZKp + ZtZ @ state.WKn, ZKn + ZtZ @ state.WKp + eps, p)
    scale = W.sum(dim=1).clamp_min(eps)
    return _State(Zt * scale[:, None], W / scale[:, None], gram, norm)


def _relative_change(previous: float, current: float) -> float:
    return abs(previous - current) / max(previous, _TINY)


class ConvexNMF:
    """Convex NMF X ~ Z W X by (over-relaxed) multiplicative updates on the Gram matrix,
    on CPU or CUDA; see the module docstring for the algorithm.

    Fitted attributes: ``fit_rows_`` the rows of X the factorisation was fitted on (all of
    them unless X has more than ``fit_max_rows``: then a sorted subsample drawn with
    ``random_state``), ``W_`` (k, len(fit_rows_)) convex weights over those rows,
    ``components_`` (k, d) = W_ @ X[fit_rows_] the concept centroids, ``Z_``
    (len(fit_rows_), k) their codes, ``n_iter_`` update steps taken (redone steps count
    once), ``loss_history_`` relative loss ||X - Z W X||^2 / ||X||^2 of the fitted rows at
    the start and after each step (length n_iter_ + 1, never increasing),
    ``stop_reason_`` "tol", "stable" or "max_iter", ``converged_`` whether a stopping
    test fired before ``max_iter``.

    Memory: K+ (len(fit_rows_)^2 numbers of ``dtype``) on ``device``, plus O(n (d + k)).
    The defaults are the paper's algorithm; the concepts stage passes its settings.
    """

    def __init__(
        self,
        n_components: int,
        max_iter: int = 500,
        tol: float = 1e-5,
        random_state: int | None = 0,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        eps: float = 1e-12,
        max_relaxation: float = 1.0,
        stable_iters: int = 0,
        fit_max_rows: int | None = None,
    ) -> None:
        _check_dtype(dtype)
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if max_iter < 0 or tol < 0 or eps <= 0:
            raise ValueError("need max_iter >= 0, tol >= 0 and eps > 0")
        if not max_relaxation >= 1:
            raise ValueError(f"max_relaxation must be >= 1 (1: plain), got {max_relaxation}")
        if stable_iters < 0:
            raise ValueError(f"stable_iters must be >= 0 (0: off), got {stable_iters}")
        if fit_max_rows is not None and fit_max_rows < n_components:
            raise ValueError(
                f"fit_max_rows={fit_max_rows} is below n_components={n_components}: "
                "the subsample could not hold a row per concept"
            )
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.device = torch.device(device)
        self.dtype = dtype
        self.eps = eps
        self.max_relaxation = max_relaxation
        self.stable_iters = stable_iters
        self.fit_max_rows = fit_max_rows

    def fit(self, X, init: tuple[np.ndarray, np.ndarray] | None = None) -> ConvexNMF:
        """Fit on X (n, d), any sign. ``init`` = (Z0 (n, k), W0 (k, n)), strictly positive,
        overrides the k-means start of the fitted rows; with a subsample, the fitted rows'
        part of it is taken (W0's rows normalised again)."""
        self._fit(_as_tensor(X, self.dtype, self.device), init)
        return self

    def fit_transform(self, X, init: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Fit and return codes (n, k) for every row of X: Z_ for the fitted rows,
        ``transform`` for the others."""
        X = _as_tensor(X, self.dtype, self.device)
        self._fit(X, init)
        if len(self.fit_rows_) == len(X):
            return self.Z_.copy()
        rest = np.setdiff1d(np.arange(len(X)), self.fit_rows_)
        codes = np.empty((len(X), self.n_components), dtype=self.Z_.dtype)
        codes[self.fit_rows_] = self.Z_
        codes[rest] = self._codes(X[torch.as_tensor(rest, device=X.device)]).cpu().numpy()
        return codes

    def transform(self, X) -> np.ndarray:
        """Codes Z (m, k) >= 0 for rows X (m, d), the centroids held fixed.

        Minimises ||X - Z C||^2 over Z >= 0 (C = ``components_``) by HALS: each sweep sets
        every column of Z in turn to its exact minimiser given the others,
        z_j <- max(0, z_j + (X c_j - Z C c_j) / ||c_j||^2), from Z = 1, until the loss
        changes by less than ``tol`` (relative) or ``max_iter`` sweeps. The problem is
        convex, so on the fitted rows this lands near Z_.
        """
        if not hasattr(self, "components_"):
            raise RuntimeError("ConvexNMF is not fitted yet: call fit first")
        X = _as_tensor(X, self.dtype, self.device)
        if X.shape[1] != self.components_.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features, fitted on {self.components_.shape[1]}")
        return self._codes(X).cpu().numpy()

    def _fit(self, X: torch.Tensor, init: tuple[np.ndarray, np.ndarray] | None) -> None:
        n, k = X.shape[0], self.n_components
        if k > n:
            raise ValueError(f"n_components={k} exceeds the number of rows n={n}")
        if init is not None:
            init = self._factor(init[0], (n, k), "Z0"), self._factor(init[1], (k, n), "W0")
        self.fit_rows_ = self._fit_rows(n)
        if len(self.fit_rows_) < n:
            rows = torch.as_tensor(self.fit_rows_, device=X.device)
            X = X[rows]
            if init is not None:  # the fitted rows' share of the start
                W0 = init[1][:, rows]
                init = init[0][rows], W0 / W0.sum(dim=1, keepdim=True)
        norm = float(X.square().sum(dtype=torch.float64))
        if norm == 0.0:
            raise ValueError("X is all zeros")
        if init is None:
            start = kmeans_init(X.cpu(), k, self.random_state)
            init = (
                self._factor(start[0], (len(X), k), "Z0"),
                self._factor(start[1], (k, len(X)), "W0"),
            )
        Z, W = init
        gram = _Gram(X)
        state = _State(Z.T.contiguous(), W, gram, norm)
        history = [state.loss]
        labels, unchanged, eta = Z.argmax(dim=1), 0, 1.0
        self.stop_reason_: StopReason = "max_iter"
        while len(history) <= self.max_iter:
            new = _step(state, gram, norm, eta / 2, self.eps)
            if eta > 1 and new.loss > state.loss:  # the relaxed step overshot: redo it plainly
                eta = 1.0
                new = _step(state, gram, norm, 0.5, self.eps)
            plain = eta == 1.0
            state = new
            history.append(state.loss)
            now = state.Zt.argmax(dim=0)
            unchanged = unchanged + 1 if torch.equal(now, labels) else 0
            labels = now
            if _relative_change(history[-2], history[-1]) < self.tol:
                if plain:
                    self.stop_reason_ = "tol"
                    break
                eta = 1.0  # judge the tolerance on a plain step
            else:
                eta = min(eta * _RELAXATION_GROWTH, self.max_relaxation)
            if self.stable_iters and unchanged >= self.stable_iters:
                self.stop_reason_ = "stable"
                break

        self.n_iter_ = len(history) - 1
        self.converged_ = self.stop_reason_ != "max_iter"
        self.W_ = state.W.cpu().numpy()
        self.Z_ = state.Zt.T.cpu().numpy().copy()  # C order, like the other attributes
        self._C = state.C
        self.components_ = state.C.cpu().numpy()
        self.loss_history_ = history

    def _fit_rows(self, n: int) -> np.ndarray:
        if self.fit_max_rows is None or n <= self.fit_max_rows:
            return np.arange(n)
        rng = np.random.default_rng(self.random_state)
        return np.sort(rng.choice(n, size=self.fit_max_rows, replace=False))

    def _codes(self, X: torch.Tensor) -> torch.Tensor:
        """HALS codes of X (see ``transform``), as a tensor."""
        C = self._C
        G = C @ C.T
        B = (X @ C.T).T.contiguous()  # (k, m): column j of X C^T as a row
        Zt = torch.ones(self.n_components, X.shape[0], dtype=self.dtype, device=self.device)
        norm = max(float(X.square().sum(dtype=torch.float64)), _TINY)
        loss = _relative_loss(X, Zt, C, norm)
        for _ in range(self.max_iter):
            for j in range(self.n_components):
                step = (B[j] - G[j] @ Zt) / G[j, j].clamp_min(self.eps)
                Zt[j] = (Zt[j] + step).clamp_min_(0)
            previous, loss = loss, _relative_loss(X, Zt, C, norm)
            if _relative_change(previous, loss) < self.tol:
                break
        return Zt.T

    def _factor(self, value, shape: tuple[int, int], name: str) -> torch.Tensor:
        t = torch.as_tensor(value, dtype=self.dtype, device=self.device).clone()
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
        if not bool((t > 0).all() & torch.isfinite(t).all()):
            raise ValueError(f"{name} must be finite and strictly positive")
        return t


def elbow_k(inertias: Sequence[float], threshold: float) -> int:
    """VTCD's elbow rule: ``inertias[i]`` belongs to k = i + 1; return the first k whose
    inertia exceeds ``threshold`` x the previous one (that k itself, as the reference keeps
    the k its loop broke at), or the last k if the test never fires."""
    if len(inertias) == 0:
        raise ValueError("need at least one inertia")
    for k in range(2, len(inertias) + 1):
        if inertias[k - 1] > threshold * inertias[k - 2]:
            return k
    return len(inertias)


def choose_n_concepts(
    X,
    max_concepts: int,
    method: Literal["elbow", "silhouette"],
    random_state: int,
    elbow_threshold: float | None = None,
) -> tuple[int, dict[int, float], np.ndarray]:
    """Number of concepts k for X (n, d), the score per k tried, and the labels of the
    k-means run with that k (``start_from_labels`` makes them the fit's start: the same
    start ``ConvexNMF`` would compute, without running that k-means again).

    "elbow" (the VTCD reference code, utilities/clustering.py ``cluster_dataset``): k-means
    for k = 1, 2, ..., min(max_concepts, n - 1), stopping as ``elbow_k`` says with
    ``elbow_threshold``; scores are inertias. "silhouette" (what the paper states): the k
    in 2..max_concepts with the best silhouette score of the k-means labels. k never
    exceeds the number of distinct rows.
    """
    if max_concepts < 1:
        raise ValueError(f"max_concepts must be >= 1, got {max_concepts}")
    X = _as_array(X)
    k_max = min(max_concepts, len(np.unique(X, axis=0)))
    if method == "elbow":
        if elbow_threshold is None:
            raise ValueError("the elbow rule needs elbow_threshold")
        # the reference tries range(1, min(inter_max_cluster, n)): never k = n
        return _choose_by_elbow(X, max(1, min(k_max, len(X) - 1)), random_state, elbow_threshold)
    if method == "silhouette":
        return _choose_by_silhouette(X, k_max, random_state)
    raise ValueError(f"method must be 'elbow' or 'silhouette', got {method!r}")


def _choose_by_elbow(
    X: np.ndarray, k_max: int, random_state: int, threshold: float
) -> tuple[int, dict[int, float], np.ndarray]:
    inertias: list[float] = []
    for k in range(1, k_max + 1):
        kmeans = _kmeans(X, k, random_state)
        inertias.append(float(kmeans.inertia_))
        if k > 1 and inertias[-1] > threshold * inertias[-2]:
            break
    # elbow_k keeps the last k tried (the loop stopped where the test fired): its labels
    return elbow_k(inertias, threshold), dict(enumerate(inertias, start=1)), kmeans.labels_


def _choose_by_silhouette(
    X: np.ndarray, k_max: int, random_state: int
) -> tuple[int, dict[int, float], np.ndarray]:
    scores: dict[int, float] = {}
    labels: dict[int, np.ndarray] = {}
    for k in range(2, min(k_max, X.shape[0] - 1) + 1):
        labels[k] = _kmeans(X, k, random_state).labels_
        if len(np.unique(labels[k])) >= 2:
            scores[k] = float(silhouette_score(X, labels[k]))
    if not scores:
        return 1, scores, np.zeros(len(X), dtype=np.int64)
    best = max(scores, key=scores.__getitem__)
    return best, scores, labels[best]
