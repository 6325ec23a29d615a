"""concepts: Convex NMF per head of one layer, across every video's tubelets.

Reads the tubelet stores of all shards for one layer, clusters each head's tubelet
descriptors into concepts (number chosen by the k-means elbow or silhouette rule, on all of
the head's tubelets), and stores centroids, the tubelet-to-concept assignment and
per-concept statistics. A head with more than ``fit_max_rows`` tubelets is fitted on a
seeded subsample of them and the rest are assigned by ``ConvexNMF.transform``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from videoconcepts.devices import pick_device
from videoconcepts.methods.cnmf import ConvexNMF, assign, choose_n_concepts, start_from_labels
from videoconcepts.runtime import typed_json
from videoconcepts.stores.base import atomic_store, write_array
from videoconcepts.stores.concepts import ASSIGNMENT_COLUMNS, KIND
from videoconcepts.stores.tubelets import open_tubelets, tubelet_table

HELP = "Convex NMF concepts for one layer"


@dataclass(frozen=True)
class ConceptSettings:
    max_concepts: int
    selection: Literal["elbow", "silhouette"]
    elbow_threshold: float | None  # None with silhouette
    max_iter: int
    tol: float
    max_relaxation: float
    stable_iters: int
    dtype: Literal["float32", "float64"]
    fit_max_rows: int | None
    seed: int


Settings = ConceptSettings


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
) -> tuple[ConvexNMF, np.ndarray, dict[int, float]]:
    """Choose the number of concepts, then fit Convex NMF on one head's descriptors from
    the k-means start of all its rows; the fitted model, every row's codes and the
    selection score per k tried."""
    k, scores, labels = choose_n_concepts(
        X, settings.max_concepts, settings.selection, settings.seed, settings.elbow_threshold
    )
    model = ConvexNMF(
        k,
        max_iter=settings.max_iter,
        tol=settings.tol,
        random_state=settings.seed,
        device=device,
        dtype=getattr(torch, settings.dtype),
        max_relaxation=settings.max_relaxation,
        stable_iters=settings.stable_iters,
        fit_max_rows=settings.fit_max_rows,
    )
    return model, model.fit_transform(X, init=start_from_labels(labels, k)), scores


def write_concept_store(
    tubelet_stores: Sequence[str | Path],
    out: str | Path,
    settings: ConceptSettings,
    device: str,
) -> int:
    """Cluster every head of one layer into concepts; return the total number of concepts."""
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
        model, codes, scores = fit_head(descriptors[rows], settings, torch_device)
        k = model.n_components
        concept[rows] = assign(codes)
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
                "n_fit": len(model.fit_rows_),
                "subsampled": len(model.fit_rows_) < len(rows),
                "n_iter": model.n_iter_,
                "converged": model.converged_,
                "stop": model.stop_reason_,
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", nargs="+", required=True, help="one store per layer")
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("--device", required=True, help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, required=True, help="CPU threads (torch, k-means)")
    parser.add_argument(
        "tubelets",
        nargs="+",
        help="tubelet stores of every shard, layer by layer in --out's order",
    )


def run(args: argparse.Namespace) -> None:
    """Each --out layer in turn (one start-up for a group of layers)."""
    per_layer, left = divmod(len(args.tubelets), len(args.out))
    if left:
        sys.exit(
            f"videoconcepts concepts: error: {len(args.tubelets)} tubelet stores for "
            f"{len(args.out)} layers: give every shard's store for each --out layer"
        )
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):  # k-means' OpenMP threads
        for i, out in enumerate(args.out):
            stores = args.tubelets[i * per_layer : (i + 1) * per_layer]
            count = write_concept_store(stores, out, args.settings, args.device)
            print(f"{count} concepts in {out}", file=sys.stderr)
