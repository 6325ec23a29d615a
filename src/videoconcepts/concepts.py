"""Concepts stage: Convex NMF per head of one layer, across every video's tubelets.

Reads the tubelet stores of all shards for one layer, clusters each head's tubelet
descriptors into concepts (number chosen by the k-means elbow or silhouette rule), and
stores centroids, the tubelet-to-concept assignment and per-concept statistics. Masks are
not copied: a concept's support in a video is the union of its tubelets' labels in the
tubelet store's label volume (:class:`ConceptSupport`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm

from videoconcepts.stores import atomic_store, open_store, write_array
from videoconcepts.tubelets import open_tubelets, tubelet_table

if TYPE_CHECKING:  # readers of concept stores need neither torch nor scikit-learn
    import torch

    from videoconcepts.cnmf import ConvexNMF

KIND = "concepts"
ASSIGNMENT_COLUMNS = ("shard", "row", "video", "head", "label", "concept")


@dataclass(frozen=True)
class ConceptSettings:
    max_concepts: int = 14
    selection: Literal["elbow", "silhouette"] = "elbow"
    max_iter: int = 3000
    tol: float = 1e-5
    seed: int = 0


def _gather(tubelet_stores: Sequence[Path]) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """All shards' tubelet tables (with shard/row/global video index) and descriptors."""
    tables, descriptors, video_ids = [], [], []
    for shard, path in enumerate(tubelet_stores):
        store = open_tubelets(path)
        table = tubelet_table(store)
        table.insert(0, "row", np.arange(len(table)))
        table.insert(0, "shard", shard)
        table["video"] += len(video_ids)
        video_ids.extend(store.attrs["video_ids"])
        tables.append(table)
        descriptors.append(store["descriptors"][...])
    return pd.concat(tables, ignore_index=True), np.concatenate(descriptors), video_ids


def fit_head(
    X: np.ndarray, settings: ConceptSettings, device: torch.device
) -> tuple[ConvexNMF, dict[int, float]]:
    """Choose the number of concepts, then fit Convex NMF on one head's descriptors."""
    from videoconcepts.cnmf import ConvexNMF, choose_n_concepts

    k, scores = choose_n_concepts(X, settings.max_concepts, settings.selection, settings.seed)
    model = ConvexNMF(k, settings.max_iter, settings.tol, settings.seed, device)
    return model.fit(X), scores


def write_concept_store(
    tubelet_stores: Sequence[str | Path],
    out: str | Path,
    settings: ConceptSettings,
    device: str = "auto",
) -> int:
    """Cluster every head of one layer into concepts; return the total number of concepts."""
    from videoconcepts.cnmf import assign
    from videoconcepts.devices import pick_device

    stores = [Path(p) for p in tubelet_stores]
    table, descriptors, video_ids = _gather(stores)
    first = open_tubelets(stores[0]).attrs
    n_heads, n_dims = first["num_heads"], descriptors.shape[1]
    torch_device = pick_device(device)
    centroids = np.full((n_heads, settings.max_concepts, n_dims), np.nan, np.float32)
    counts = np.zeros((n_heads, settings.max_concepts, 2), np.int32)
    concept = np.full(len(table), -1, np.int32)
    fits = []
    for head in tqdm(range(n_heads), desc=f"concepts layer {first['layer']}"):
        rows = np.flatnonzero(table["head"].to_numpy() == head)
        if len(rows) == 0:
            raise ValueError(f"layer {first['layer']}, head {head}: no tubelets in {stores}")
        model, scores = fit_head(descriptors[rows], settings, torch_device)
        k = model.n_components
        concept[rows] = assign(model.Z_)
        centroids[head, :k] = model.components_
        members = table.iloc[rows].assign(concept=concept[rows])
        counts[head, :k, 0] = np.bincount(members["concept"], minlength=k)
        counts[head, :k, 1] = (
            members.groupby("concept")["video"].nunique().reindex(range(k), fill_value=0)
        )
        fits.append(
            {
                "head": head,
                "n_concepts": k,
                "n_tubelets": len(rows),
                "n_iter": model.n_iter_,
                "converged": model.converged_,
                "loss": model.loss_history_[-1],
                "selection_scores": {str(key): value for key, value in scores.items()},
            }
        )
    assignment = table.assign(concept=concept)[list(ASSIGNMENT_COLUMNS)].to_numpy(np.int32)
    with atomic_store(
        out,
        KIND,
        layer=first["layer"],
        head_kind=first["head_kind"],
        grid=first["grid"],
        video_ids=video_ids,
        tubelet_stores=[str(p) for p in stores],
        assignment_columns=list(ASSIGNMENT_COLUMNS),
        assignment_rule="argmax of the tubelet's Convex NMF codes Z",
        fits=fits,
        device=str(torch_device),
        settings=asdict(settings),
    ) as group:
        write_array(group, "centroids", centroids, chunks=(1, *centroids.shape[1:]))
        write_array(group, "n_concepts", np.array([f["n_concepts"] for f in fits], np.int32))
        write_array(group, "concept_counts", counts)
        write_array(group, "assignment", assignment)
    return sum(f["n_concepts"] for f in fits)


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
