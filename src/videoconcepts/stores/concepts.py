"""Concept stores (kind ``concepts``): Convex NMF concepts of every head of one layer.

Centroids, the tubelet-to-concept assignment and per-concept counts. Masks are not
copied: a concept's support in a video is the union of its tubelets' labels in the
tubelet store's label volume (:class:`ConceptSupport`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from videoconcepts.stores.base import open_store
from videoconcepts.stores.tubelets import open_tubelets

KIND = "concepts"
ASSIGNMENT_COLUMNS = ("shard", "row", "video", "head", "label", "concept")


def open_concepts(path: str | Path) -> zarr.Group:
    return open_store(path, KIND)


class ConceptSupport:
    """Support masks of one layer's concepts, built from the tubelet label volumes.

    Nothing is duplicated on disk: a concept's support in a video is the union of the
    voxels whose tubelet is assigned to it.
    """

    def __init__(self, concepts: zarr.Group):
        table = pd.DataFrame(
            concepts["assignment"][...], columns=concepts.attrs["assignment_columns"]
        )
        self.n_concepts = concepts["n_concepts"][...]
        self.grid = tuple(concepts.attrs["grid"])
        self._labels = [open_tubelets(p)["labels"] for p in concepts.attrs["tubelet_stores"]]
        sizes = [labels.shape[0] for labels in self._labels]
        self._first_video = np.concatenate([[0], np.cumsum(sizes)])
        # Indexed once: each lookup touches only its own (head, video) rows.
        self._assigned = {
            (int(head), int(video)): (rows["label"].to_numpy(), rows["concept"].to_numpy())
            for (head, video), rows in table.groupby(["head", "video"])
        }

    def voxel_concepts(self, head: int, video: int) -> np.ndarray:
        """(T, H, W) concept of every voxel of ``head`` in global ``video`` (-1: none)."""
        shard = int(np.searchsorted(self._first_video, video, side="right") - 1)
        labels = self._labels[shard][video - self._first_video[shard], head]
        lookup = np.full(int(labels.max()) + 1, -1, np.int64)
        if (head, video) in self._assigned:
            tubelet_labels, concepts = self._assigned[(head, video)]
            lookup[tubelet_labels] = concepts
        return lookup[labels]

    def masks(self, head: int, video: int) -> np.ndarray:
        """(n_concepts, T, H, W) bool support of each concept of ``head`` in global ``video``."""
        k = int(self.n_concepts[head])
        return self.voxel_concepts(head, video)[None] == np.arange(k)[:, None, None, None]
