"""Rosetta concepts: concepts that several models share (VTCD, paper 003 §4.1; 002 §4.4.1,
eq. 4.7 and 4.8).

A concept's support is a binary mask per video on one common space-time grid. The
R-score of a tuple of concepts from different models is the mean over videos of the
n-way intersection over union of their supports (eq. 4.7), over the videos where at
least one of them appears. Mining keeps each model's most important concepts, then for
d = 2..D keeps the d-tuples scoring at least ``delta`` (eq. 4.8).

Adding a concept to a tuple can only shrink every video's intersection and grow its
union (and add videos where only the new concept appears, which score 0), so a tuple
never scores more than any tuple inside it. Hence every (d+1)-tuple at or above
``delta`` extends a d-tuple at or above it, and growing tuples only from survivors finds
exactly the set the reference's enumeration of all combinations finds. Pairs are one
matrix product per video; longer tuples AND/OR bit-packed masks. The reference code
(YorkUCVIL/VTCD ``find_rosetta_concepts.py``) enumerates every combination and stops
when memory passes 90%; :func:`all_tuple_scores` is that way, kept for the benchmark,
the significance numbers and the tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def resample_nearest(masks: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """(..., T, H, W) bool masks to (..., *grid) by nearest neighbour on each axis."""
    index = np.ix_(
        *[(np.arange(dst) * src) // dst for src, dst in zip(masks.shape[-3:], grid, strict=True)]
    )
    return masks[(..., *index)]


@dataclass(frozen=True)
class Supports:
    """One model's candidate concepts: bit-packed supports (concepts, videos, bytes) on
    the common grid, and their voxel counts (concepts, videos)."""

    packed: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_masks(cls, masks: np.ndarray) -> Supports:
        """(concepts, videos, T, H, W) bool."""
        flat = masks.reshape(*masks.shape[:2], -1)
        return cls(np.packbits(flat, axis=-1), flat.sum(-1, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.packed)

    def permuted(self, order: np.ndarray) -> Supports:
        """The same concepts with the videos reordered (the permutation null)."""
        return Supports(self.packed[:, order], self.counts[:, order])


def _score(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Mean over videos (last axis) of intersection / union where the union is not empty."""
    present = union > 0
    iou = np.divide(inter, union, out=np.zeros(inter.shape), where=present)
    n = present.sum(-1)
    return np.divide(iou.sum(-1), n, out=np.zeros(n.shape), where=n > 0)


def _packed_score(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """:func:`_score` of bit-packed intersections and unions (..., videos, bytes)."""
    return _score(np.bitwise_count(inter).sum(-1), np.bitwise_count(union).sum(-1))


def _per_video(supports: Supports) -> np.ndarray:
    """(videos, concepts, voxels) float32 masks, for one matrix product per video."""
    return np.unpackbits(supports.packed, axis=-1).transpose(1, 0, 2).astype(np.float32)


def pair_scores(a: Supports, b: Supports) -> np.ndarray:
    """R-scores of every pair (a concept, b concept): (len(a), len(b)).

    Intersections per video are one matrix product of the unpacked masks.
    """
    inter = np.matmul(_per_video(a), _per_video(b).transpose(0, 2, 1)).transpose(1, 2, 0)
    union = a.counts[:, None, :] + b.counts[None, :, :] - inter
    return _score(inter, union)


@dataclass(frozen=True)
class Tuples:
    """Tuples of concepts of one set of models: ``models`` (sorted model indices),
    ``concepts`` (tuples, d) concept index per model, their ``scores``, and the packed
    intersection and union per tuple and video (to extend them)."""

    models: tuple[int, ...]
    concepts: np.ndarray
    scores: np.ndarray
    inter: np.ndarray
    union: np.ndarray


def _extend(tuples: Tuples, model: int, new: Supports, allowed: np.ndarray, delta: float):
    """Every tuple extended by each concept of ``model`` that survives as a pair with all
    its members (``allowed``: tuples x concepts), kept when it scores at least ``delta``."""
    rows, cols = np.nonzero(allowed)
    inter = tuples.inter[rows] & new.packed[cols]
    union = tuples.union[rows] | new.packed[cols]
    scores = _packed_score(inter, union)
    keep = scores >= delta
    concepts = np.concatenate([tuples.concepts[rows], cols[:, None]], axis=1)[keep]
    return Tuples((*tuples.models, model), concepts, scores[keep], inter[keep], union[keep])


def mine(supports: Sequence[Supports], delta: float, max_d: int | None = None) -> list[Tuples]:
    """Every tuple of concepts from 2..``max_d`` different models (all, when None) with an
    R-score of at least ``delta``, grouped by the set of models.

    ``supports`` are each model's candidates (already the most important epsilon).
    """
    n_models = len(supports)
    max_d = min(max_d or n_models, n_models)
    pairs, found = {}, []
    for i, j in itertools.combinations(range(n_models), 2):
        scores = pair_scores(supports[i], supports[j])
        a, b = np.nonzero(scores >= delta)
        pairs[(i, j)] = scores >= delta
        packed_i, packed_j = supports[i].packed[a], supports[j].packed[b]
        found.append(
            Tuples(
                (i, j),
                np.stack([a, b], axis=1),
                scores[a, b],
                packed_i & packed_j,
                packed_i | packed_j,
            )
        )
    level = found
    for _ in range(3, max_d + 1):
        grown = []
        for tuples in level:
            for model in range(tuples.models[-1] + 1, n_models):
                allowed = np.ones((len(tuples.concepts), len(supports[model])), bool)
                for position, member in enumerate(tuples.models):
                    allowed &= pairs[(member, model)][tuples.concepts[:, position]]
                grown.append(_extend(tuples, model, supports[model], allowed, delta))
        level = [t for t in grown if len(t.concepts)]
        found += level
    return [t for t in found if len(t.concepts)]


def all_tuple_scores(supports: Sequence[Supports]) -> np.ndarray:
    """R-score of every tuple with one concept of each model, in ``itertools.product``
    order: the all-combinations way (vectorised over the last model's concepts)."""
    *head, last = supports
    sizes = [len(s) for s in head]
    out = np.empty((int(np.prod(sizes, dtype=np.int64)), len(last)))
    for row, combo in enumerate(itertools.product(*[range(n) for n in sizes])):
        parts = [s.packed[c] for s, c in zip(head, combo, strict=True)]
        inter, union = np.bitwise_and.reduce(parts), np.bitwise_or.reduce(parts)
        out[row] = _packed_score(inter[None] & last.packed, union[None] | last.packed)
    return out.reshape(-1)


def mean_tuple_score(
    supports: Sequence[Supports], rng: np.random.Generator, max_exact: int = 200_000
) -> float:
    """Mean R-score over every tuple with one concept of each model (the paper's 0.6
    against 17.1): exact up to ``max_exact`` tuples, else over as many drawn at random."""
    total = int(np.prod([len(s) for s in supports], dtype=np.int64))
    if total <= max_exact:
        return float(all_tuple_scores(supports).mean())
    picks = np.stack([rng.integers(len(s), size=max_exact) for s in supports], axis=1)
    return float(tuple_scores(supports, range(len(supports)), picks).mean())


def tuple_scores(supports: Sequence[Supports], models: Sequence[int], concepts: np.ndarray):
    """R-scores of given tuples (rows of ``concepts``, one column per model in ``models``)."""
    parts = [supports[m].packed[concepts[:, k]] for k, m in enumerate(models)]
    return _packed_score(np.bitwise_and.reduce(parts), np.bitwise_or.reduce(parts))
