"""Units stores (kind ``units``): maskable units and the unit id of every token, per video.

Importance masks *units*. A concept unit is (layer, head, concept); its support in a
video is a set of patch tokens (built by the units stage). Every (video, layer, head)
partitions its tokens among that head's units, and masking a set of units is one
gather: ``unit_mask[unit_tokens]``.

This module imports no concept module: every masking stage reads units through it, and
the workflow reruns a stage when a module it imports changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from videoconcepts.stores.base import atomic_store, create_array, open_store, write_array

KIND = "units"
UNIT_COLUMNS = ("unit", "layer", "head", "concept")


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
