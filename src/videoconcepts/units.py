"""Units stage: every concept of every analysed layer and head as one maskable unit.

Importance masks *units*. A concept unit is (layer, head, concept); its support in a
video is a set of patch tokens. Tubelet label volumes live on the upsampled grid the
proposals ran on, so each token takes the concept that covers most of its voxels
(voxels outside any kept tubelet count as "no concept"). Every (video, layer, head)
thus partitions its tokens among that head's concepts, and masking a set of units is
one gather: ``unit_mask[unit_tokens]``.

Whole heads are units too (head importance): :func:`head_unit_tokens`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr
from tqdm import tqdm

from videoconcepts.concepts import ConceptSupport, open_concepts
from videoconcepts.features import open_features
from videoconcepts.stores import atomic_store, create_array, open_store, write_array
from videoconcepts.tubelets import open_tubelets

KIND = "units"
UNIT_COLUMNS = ("unit", "layer", "head", "concept")


def plurality_tokens(voxel_units: np.ndarray, grid: Sequence[int], n_units: int) -> np.ndarray:
    """(T*, H*, W*) unit per voxel (-1 none) to (T', H', W') unit per token by plurality.

    Ties go to the lower unit id, with "none" lowest of all.
    """
    factors = [v // g for v, g in zip(voxel_units.shape, grid, strict=True)]
    t, h, w = grid
    blocks = voxel_units.reshape(t, factors[0], h, factors[1], w, factors[2])
    blocks = blocks.transpose(0, 2, 4, 1, 3, 5).reshape(t * h * w, -1)
    token = np.repeat(np.arange(t * h * w), blocks.shape[1])
    counts = np.bincount(
        token * (n_units + 1) + blocks.ravel() + 1, minlength=t * h * w * (n_units + 1)
    )
    return (counts.reshape(t * h * w, n_units + 1).argmax(1) - 1).reshape(t, h, w)


def _video_sources(concepts: zarr.Group) -> list[str]:
    """Decode store of every video of a concept store, in its global video order."""
    sources = []
    for path in concepts.attrs["tubelet_stores"]:
        features = open_features(open_tubelets(path).attrs["feature_store"]).attrs
        sources.extend(features["decode_stores"])
    return sources


def write_units(
    out: str | Path,
    blocks: Iterable[np.ndarray],
    table: pd.DataFrame,
    video_ids: Sequence[str],
    decode_stores: Sequence[str],
    layers: Sequence[int],
    **attrs: Any,
) -> None:
    """Write a units store from per-video token blocks (layers, heads, T', H', W').

    ``table`` lists the units (columns layer, head, concept) in unit-id order; blocks
    hold unit ids (-1: no unit) and are consumed one at a time (bounded memory).
    """
    n_videos, n_units = len(video_ids), len(table)
    presence = np.zeros((n_videos, n_units), bool)
    token_counts = np.zeros((n_videos, n_units), np.int32)
    table = table[list(UNIT_COLUMNS[1:])].copy()
    table.insert(0, "unit", np.arange(n_units))
    with atomic_store(
        out,
        KIND,
        video_ids=list(video_ids),
        decode_stores=[str(p) for p in decode_stores],
        layers=[int(layer) for layer in layers],
        unit_columns=list(UNIT_COLUMNS),
        **attrs,
    ) as store:
        tokens = None
        for video, block in enumerate(blocks):
            if tokens is None:
                shape = (n_videos, *block.shape)
                tokens = create_array(store, "unit_tokens", shape, "int32", (1, *block.shape))
            tokens[video] = block
            found, counts = np.unique(block[block >= 0], return_counts=True)
            presence[video, found] = True
            token_counts[video, found] = counts
        write_array(store, "units", table.to_numpy(np.int32))
        write_array(store, "presence", presence)
        write_array(store, "token_counts", token_counts)


def _concept_blocks(
    groups: Sequence[zarr.Group], grid: Sequence[int], first_unit: pd.Series
) -> Iterator[np.ndarray]:
    """Per video: the (layers, heads, T', H', W') unit of every token of every head."""
    layers = [int(g.attrs["layer"]) for g in groups]
    supports = [ConceptSupport(group) for group in groups]
    n_heads = len(supports[0].n_concepts)
    for video in tqdm(range(len(groups[0].attrs["video_ids"])), desc="units", unit="video"):
        block = np.full((len(layers), n_heads, *grid), -1, np.int32)
        for li, (layer, support) in enumerate(zip(layers, supports, strict=True)):
            for head in range(n_heads):
                local = support.voxel_concepts(head, video)
                per_token = plurality_tokens(local, grid, int(support.n_concepts[head]))
                offset = int(first_unit[(layer, head)])
                block[li, head] = np.where(per_token >= 0, per_token + offset, -1)
        yield block


def write_unit_store(concept_stores: Sequence[str | Path], out: str | Path) -> int:
    """Token masks of every concept of the given layers (one store per layer); return #units."""
    groups = sorted((open_concepts(p) for p in concept_stores), key=lambda g: g.attrs["layer"])
    video_ids = list(groups[0].attrs["video_ids"])
    for group in groups:
        if list(group.attrs["video_ids"]) != video_ids:
            raise ValueError(f"{group.store}: videos differ from the other layers' concept stores")
    tubelets = open_tubelets(groups[0].attrs["tubelet_stores"][0])
    grid = list(open_features(tubelets.attrs["feature_store"]).attrs["grid"])
    layers = [int(g.attrs["layer"]) for g in groups]
    table = pd.DataFrame(
        [
            (layer, head, concept)
            for layer, group in zip(layers, groups, strict=True)
            for head, k in enumerate(group["n_concepts"][...])
            for concept in range(int(k))
        ],
        columns=list(UNIT_COLUMNS[1:]),
    )
    first_unit = table.reset_index().groupby(["layer", "head"])["index"].min()
    write_units(
        out,
        _concept_blocks(groups, grid, first_unit),
        table,
        video_ids,
        _video_sources(groups[0]),
        layers,
        grid=grid,
        concept_stores=[str(p) for p in concept_stores],
        token_rule="each token takes the concept covering most of its voxels",
    )
    return len(table)


@dataclass
class Units:
    """A units store loaded for masking: the unit table, presence and per-video tokens."""

    table: pd.DataFrame
    presence: np.ndarray  # (V, U) bool: unit has at least one token in the video
    video_ids: list[str]
    decode_stores: list[str]
    layers: list[int]
    store: zarr.Group

    def tokens(self, video: int) -> np.ndarray:
        """(layers, heads, N) unit id per patch token of one video (-1: no unit)."""
        block = self.store["unit_tokens"][video]
        return block.reshape(*block.shape[:2], -1)

    @property
    def n_units(self) -> int:
        return len(self.table)


def open_units(path: str | Path) -> Units:
    store = open_store(path, KIND)
    return Units(
        table=pd.DataFrame(store["units"][...], columns=store.attrs["unit_columns"]),
        presence=store["presence"][...],
        video_ids=list(store.attrs["video_ids"]),
        decode_stores=list(store.attrs["decode_stores"]),
        layers=list(store.attrs["layers"]),
        store=store,
    )


def head_unit_tokens(n_layers: int, n_heads: int, n_tokens: int) -> np.ndarray:
    """(layers, heads, N) tokens for whole-head units: unit ``layer * heads + head``."""
    ids = np.arange(n_layers * n_heads, dtype=np.int64).reshape(n_layers, n_heads, 1)
    return np.broadcast_to(ids, (n_layers, n_heads, n_tokens)).copy()
