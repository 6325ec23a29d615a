"""Static/dynamic stores (kind ``static_dynamic``): one model's pooled features of every
video in every version (the video, its restyled copies, its frame shufflings), per
analysed layer, for the trained weights and the random-weights control; and the columns
of the stage's tables."""

from __future__ import annotations

from pathlib import Path

import zarr

from videoconcepts.methods.static_dynamic import CLASSES
from videoconcepts.stores.base import open_store

KIND = "static_dynamic"
LAYER_COLUMNS = ("model", "weights", "layer", "factor", "S_F", "N_F", "units")
UNIT_COLUMNS = (
    "model", "weights", "stream", "layer", "head", "units",
    "S_static", "S_dynamic", "N_static", "N_dynamic", *CLASSES,
)  # fmt: skip
CONCEPT_COLUMNS = ("model", "layer", "head", "concept", "s_static", "s_dynamic", "bias", "class")
VERSION_COLUMNS = ("model", "weights", "version", "clips", "accuracy", "score")
REMOVAL_COLUMNS = ("model", "layer", "order", "repeat", "fraction", "units", "accuracy", "score")


def open_static_dynamic(path: str | Path) -> zarr.Group:
    return open_store(path, KIND)
