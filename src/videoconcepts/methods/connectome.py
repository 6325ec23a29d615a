"""Visual Concept Connectomes (paper 002, §5.3, eq. 5.2 to 5.9) carried over to video.

Segments are found top-down in each selected layer's token volume (T', H', W'): the top
layer's tokens by k-means over features (no spatial term, as the reference code does),
each lower layer's inside every segment of the layer above by SLIC with a mask
(maskSLIC, eq. 5.2), the count per parent chosen by silhouette. A layer's concepts are
k-means centroids of its segments' pooled features, clusters smaller than the
generalised logistic of eq. 5.5 pruned. An edge from a lower concept to an upper one
(ITCAV, eq. 5.6-5.7) is the share of the upper concept's segments whose gradient of
minus the distance to the upper centroid, taken at the lower layer, points along the
lower concept's CAV; it is measured against several random sets and kept when a
two-sided paired t-test separates it from a random concept's (the reference code's
test). Pure numpy, scikit-learn, scipy and networkx; the gradients are the stage's.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy import stats
from skimage.segmentation import slic
from sklearn.cluster import KMeans
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import silhouette_score


@dataclass(frozen=True)
class Pruning:
    """Eq. 5.5's generalised logistic: a concept needs more than Y(t) segments, t the
    number of segments of its layer. The paper's constants are A=-102, K=115, C=Q=nu=1,
    B=0.0004."""

    A: float
    K: float
    C: float
    Q: float
    B: float
    nu: float

    def min_size(self, t: int) -> float:
        return self.A + (self.K - self.A) / (self.C + self.Q * np.exp(-self.B * t)) ** (1 / self.nu)


def split_segment(
    volume: np.ndarray,
    mask: np.ndarray,
    max_segments: int,
    compactness: float,
    min_tokens: int,
    top: bool,
    seed: int,
) -> np.ndarray:
    """Eq. 5.2 for one parent: labels (T', H', W'), 0 outside ``mask``, 1..k inside.

    ``volume`` (T', H', W', D) is the layer's features. The count k in 2..max_segments
    with the highest silhouette (over the masked tokens' features) wins; children
    smaller than ``min_tokens`` are dropped. A parent too small to give two such
    children, or with no split of two labels or more, stays one segment."""
    inside = np.flatnonzero(mask.reshape(-1))
    whole = mask.astype(np.int32)
    if len(inside) < 2 * min_tokens or max_segments < 2:
        return whole
    tokens = volume.reshape(-1, volume.shape[-1])[inside].astype(np.float32)
    best, best_score = whole, -np.inf
    for k in range(2, max_segments + 1):
        if top:
            km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(tokens)
            labels = np.zeros(mask.size, np.int32)
            labels[inside] = km.labels_ + 1
            labels = labels.reshape(mask.shape)
        else:
            labels = slic(
                np.ascontiguousarray(volume, np.float32),
                n_segments=k,
                compactness=compactness,
                mask=mask,
                channel_axis=-1,
                convert2lab=False,
                enforce_connectivity=False,
                start_label=1,
            ).astype(np.int32)
        found = labels.reshape(-1)[inside]
        if not 2 <= len(np.unique(found)) < len(inside):
            continue
        score = silhouette_score(tokens, found, random_state=seed)
        if score > best_score:
            best, best_score = labels, score
    ids, counts = np.unique(best[mask], return_counts=True)
    kept = ids[counts >= min_tokens]
    if len(kept) == 0:
        return whole
    lookup = np.zeros(int(best.max()) + 1, np.int32)
    lookup[kept] = np.arange(1, len(kept) + 1)
    return lookup[best]


def top_down_segments(
    volumes: list[np.ndarray],
    max_segments: int,
    compactness: float,
    min_tokens: int,
    seed: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Segments of one video at every selected layer, ``volumes`` ordered top layer first
    (each (T', H', W', D)). Per layer (same order): labels (T', H', W') int16 with
    segments numbered 1..n (0: in no segment) and each segment's parent in the layer above
    (n,) (-1 at the top)."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    parents_masks = [np.ones(volumes[0].shape[:3], bool)]
    for depth, volume in enumerate(volumes):
        labels = np.zeros(volume.shape[:3], np.int16)
        parent_of: list[int] = []
        for p, mask in enumerate(parents_masks):
            split = split_segment(
                volume, mask, max_segments, compactness, min_tokens, depth == 0, seed
            )
            for child in range(1, int(split.max()) + 1):
                parent_of.append(p if depth else -1)
                labels[split == child] = len(parent_of)
        out.append((labels, np.array(parent_of, np.int32)))
        parents_masks = [labels == s for s in range(1, len(parent_of) + 1)]
    return out


def layer_concepts(
    pooled: np.ndarray, clusters: int, pruning: Pruning, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 5.4-5.5 over one layer's segments' pooled features (n, D): each segment's
    concept (-1: its cluster was pruned), concepts numbered 0.. by falling size, and
    their centroids (concepts, D). k-means runs with ``clusters`` clusters, or as many
    as could each hold more than the pruning's minimum when that is fewer."""
    n = len(pooled)
    # No more clusters than could each pass the pruning: with few segments (a small
    # class) the paper's k-means of 25 clusters would leave only singletons.
    k = min(clusters, int(n // (np.floor(pruning.min_size(n)) + 1)))
    if k < 1:
        return np.full(n, -1, np.int64), np.zeros((0, pooled.shape[1]), np.float32)
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(pooled.astype(np.float64))
    counts = np.bincount(km.labels_, minlength=k)
    kept = [c for c in np.argsort(-counts, kind="stable") if counts[c] > pruning.min_size(n)]
    lookup = np.full(k, -1, np.int64)
    lookup[kept] = np.arange(len(kept))
    return lookup[km.labels_], km.cluster_centers_[kept].astype(np.float32)


def cav(positives: np.ndarray, negatives: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """A concept activation vector: the unit normal of a linear classifier (the reference
    code's SGDClassifier, hinge loss, L2 ``alpha``) of concept (n, D) vs random (m, D)
    features, pointing at the concept."""
    x = np.concatenate([positives, negatives]).astype(np.float64)
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    model = SGDClassifier(alpha=alpha, max_iter=1000, tol=1e-3, random_state=seed).fit(x, y)
    w = model.coef_[0]
    norm = np.linalg.norm(w)
    return (w / norm if norm > 0 else w).astype(np.float32)


def positive_share(gradients: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Eq. 5.7: the share of gradients (n, D) with a positive dot product with each of
    ``vectors`` (R, D), (R,); NaN with no gradients."""
    if len(gradients) == 0:
        return np.full(len(vectors), np.nan)
    return (np.asarray(gradients) @ np.asarray(vectors).T > 0).mean(0)


def edge_test(scores: np.ndarray, null: np.ndarray) -> float:
    """Two-sided paired t-test of an edge's scores against a random concept's, one per
    random set; NaN (never kept) when both are constant and equal or too few."""
    scores, null = np.asarray(scores, float), np.asarray(null, float)
    if len(scores) < 2 or np.allclose(scores - null, (scores - null)[0]):
        same = len(scores) < 2 or np.isclose(scores[0], null[0])
        return np.nan if same else 0.0
    return float(stats.ttest_rel(scores, null).pvalue)


def average_path_strength(graph: nx.DiGraph, sink: Hashable) -> dict[Hashable, float]:
    """Eq. 5.8 for every node with a path to ``sink``: the mean over all its paths of the
    mean edge ``weight`` along the path."""
    out = {}
    for node in graph.nodes:
        if node == sink:
            continue
        means = [
            np.mean([graph.edges[a, b]["weight"] for a, b in zip(path[:-1], path[1:], strict=True)])
            for path in nx.all_simple_paths(graph, node, sink)
        ]
        if means:
            out[node] = float(np.mean(means))
    return out
