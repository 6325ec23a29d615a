"""Convex NMF (Ding, Li & Jordan 2008) for grouping tubelet descriptors into concepts.

X (n x d, rows = tubelet descriptors, any sign) is factorised as X ~ Z W X with codes
Z (n x k) >= 0 and convex weights W (k x n) >= 0 whose rows sum to 1, so each concept
centroid (a row of W X) is a convex combination of data rows.

Only the Gram matrix K = X X^T enters the updates, split as K = K+ - K-
(K+ = max(K, 0), K- = max(-K, 0)). The multiplicative updates are

    Z <- Z * sqrt((K+ W^T + Z W K- W^T) / (K- W^T + Z W K+ W^T))
    W <- W * sqrt((Z^T K+ + (Z^T Z) W K-) / (Z^T K- + (Z^T Z) W K+))

K+ W^T and K- W^T are computed once per iteration and reused by both updates and by the loss
tr K - 2 tr(W K Z) + tr(Z^T Z W K W^T), so an iteration costs about 4 k n^2 flops and the
stopping test is exact without ever forming Z W X. Products with K are taken as K @ (n x k)
(K is symmetric), which reads K faster than (k x n) @ K.
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
_TINY = float(np.finfo(np.float64).tiny)


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
    """Strictly positive starting point (Z0, W0) from k-means memberships H (n x k).

    Z0 = H + 0.2 and W0 = H^T + 0.2 with rows normalised to sum 1 (dividing by cluster size
    first, as in the paper, does not change the normalised result).
    """
    X = _as_array(X)
    labels = _kmeans(X, n_components, random_state).labels_
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


def _update_z(
    Z: torch.Tensor,
    KWp: torch.Tensor,
    KWn: torch.Tensor,
    WKWp: torch.Tensor,
    WKWn: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """Z step; KW± = K± W^T (n x k) and WKW± = W K± W^T (k x k)."""
    return Z * torch.sqrt((KWp + Z @ WKWn) / (KWn + Z @ WKWp + eps))


def _update_w(
    W: torch.Tensor,
    Z: torch.Tensor,
    Kp: torch.Tensor,
    Kn: torch.Tensor,
    KWp: torch.Tensor,
    KWn: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """W step with Z^T Z on the left, then rows of W to sum 1 and Z rescaled (Z W unchanged).

    KW± = K± W^T of the current W, so W K± = KW±^T and Z^T K± = (K± Z)^T.
    """
    ZtZ = Z.T @ Z
    num = (Kp @ Z).T + ZtZ @ KWn.T
    W = W * torch.sqrt(num / ((Kn @ Z).T + ZtZ @ KWp.T + eps))
    scale = W.sum(dim=1).clamp_min(eps)
    return W / scale[:, None], Z * scale


def _gram_products(
    W: torch.Tensor, Kp: torch.Tensor, Kn: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """K+ W^T, K- W^T (n x k) and W K+ W^T, W K- W^T (k x k), computed once per step."""
    Wt = W.T.contiguous()
    KWp, KWn = Kp @ Wt, Kn @ Wt
    return KWp, KWn, W @ KWp, W @ KWn


def _loss(trace: torch.Tensor, Z: torch.Tensor, KW: torch.Tensor, WKW: torch.Tensor) -> float:
    """||X - Z W X||_F^2 = tr K - 2 tr(W K Z) + tr(Z^T Z W K W^T), with KW = K W^T."""
    return float(trace - 2 * (KW * Z).sum() + ((Z.T @ Z) * WKW).sum())


def _relative_change(previous: float, current: float) -> float:
    return abs(previous - current) / max(previous, _TINY)


class ConvexNMF:
    """Convex NMF X ~ Z W X by multiplicative updates on the Gram matrix (CPU or CUDA).

    Fitted attributes: ``W_`` (k, n) convex weights, ``components_`` (k, d) = W_ @ X the
    concept centroids, ``Z_`` (n, k) codes, ``n_iter_`` update steps taken,
    ``loss_history_`` relative loss ||X - Z W X||^2 / ||X||^2 at the start and after each
    step (length n_iter_ + 1), ``converged_`` whether the relative-tolerance test fired.

    Memory is O(n^2): K+, K- and the cross-Gram are held on ``device``.
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
    ) -> None:
        _check_dtype(dtype)
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if max_iter < 0 or tol < 0 or eps <= 0:
            raise ValueError("need max_iter >= 0, tol >= 0 and eps > 0")
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.device = torch.device(device)
        self.dtype = dtype
        self.eps = eps

    def fit(self, X, init: tuple[np.ndarray, np.ndarray] | None = None) -> ConvexNMF:
        """Fit on X (n, d), any sign; ``init`` = (Z0, W0) overrides the k-means start."""
        X = _as_tensor(X, self.dtype, self.device)
        n, k = X.shape[0], self.n_components
        if k > n:
            raise ValueError(f"n_components={k} exceeds the number of rows n={n}")
        K = X @ X.T
        trace = K.trace()
        if float(trace) == 0.0:
            raise ValueError("X is all zeros")
        Z0, W0 = kmeans_init(X.cpu(), k, self.random_state) if init is None else init
        Z, W = self._factor(Z0, (n, k), "Z0"), self._factor(W0, (k, n), "W0")
        Kp = K.clamp_min(0)
        Kn = Kp - K
        del K

        KWp, KWn, WKWp, WKWn = _gram_products(W, Kp, Kn)
        history = [_loss(trace, Z, KWp - KWn, WKWp - WKWn) / float(trace)]
        self.converged_ = False
        self.n_iter_ = 0
        while self.n_iter_ < self.max_iter:
            Z = _update_z(Z, KWp, KWn, WKWp, WKWn, self.eps)
            W, Z = _update_w(W, Z, Kp, Kn, KWp, KWn, self.eps)
            KWp, KWn, WKWp, WKWn = _gram_products(W, Kp, Kn)
            history.append(_loss(trace, Z, KWp - KWn, WKWp - WKWn) / float(trace))
            self.n_iter_ += 1
            if _relative_change(history[-2], history[-1]) < self.tol:
                self.converged_ = True
                break

        self._X_fit = X.clone()  # X may share memory with the caller's array
        self._W = W
        self._WKW = (WKWp, WKWn)
        self.W_ = W.cpu().numpy()
        self.Z_ = Z.cpu().numpy()
        self.components_ = (W @ X).cpu().numpy()
        self.loss_history_ = history
        return self

    def fit_transform(self, X, init: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Fit and return the codes Z_ (n, k) of the fitted rows."""
        return self.fit(X, init).Z_.copy()

    def transform(self, X) -> np.ndarray:
        """Codes Z (m, k) >= 0 for new rows, with W_ (and so the centroids) held fixed.

        Runs the Z update alone, with the cross-Gram C = X X_fit^T in place of K:
        Z <- Z * sqrt((C+ W^T + Z W K- W^T) / (C- W^T + Z W K+ W^T)), from Z = 1, until the
        loss ||X - Z W X_fit||^2 changes by less than ``tol`` (relative) or ``max_iter``
        steps. The problem is convex in Z, so on the training rows this lands near Z_.
        """
        if not hasattr(self, "_X_fit"):
            raise RuntimeError("ConvexNMF is not fitted yet: call fit first")
        X = _as_tensor(X, self.dtype, self.device)
        if X.shape[1] != self._X_fit.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features, fitted on {self._X_fit.shape[1]}")
        C = X @ self._X_fit.T
        Cp = C.clamp_min(0)
        Wt = self._W.T.contiguous()
        CWp, CWn = Cp @ Wt, (Cp - C) @ Wt
        del C, Cp
        WKWp, WKWn = self._WKW
        trace = (X * X).sum()
        Z = torch.ones(X.shape[0], self.n_components, dtype=self.dtype, device=self.device)
        loss = _loss(trace, Z, CWp - CWn, WKWp - WKWn)
        for _ in range(self.max_iter):
            Z = _update_z(Z, CWp, CWn, WKWp, WKWn, self.eps)
            previous, loss = loss, _loss(trace, Z, CWp - CWn, WKWp - WKWn)
            if _relative_change(previous, loss) < self.tol:
                break
        return Z.cpu().numpy()

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
) -> tuple[int, dict[int, float]]:
    """Number of concepts for X (n, d) and the score per k tried.

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
) -> tuple[int, dict[int, float]]:
    inertias: list[float] = []
    for k in range(1, k_max + 1):
        inertias.append(float(_kmeans(X, k, random_state).inertia_))
        if k > 1 and inertias[-1] > threshold * inertias[-2]:
            break
    return elbow_k(inertias, threshold), dict(enumerate(inertias, start=1))


def _choose_by_silhouette(
    X: np.ndarray, k_max: int, random_state: int
) -> tuple[int, dict[int, float]]:
    scores: dict[int, float] = {}
    for k in range(2, min(k_max, X.shape[0] - 1) + 1):
        labels = _kmeans(X, k, random_state).labels_
        if len(np.unique(labels)) >= 2:
            scores[k] = float(silhouette_score(X, labels))
    if not scores:
        return 1, scores
    return max(scores, key=scores.__getitem__), scores
