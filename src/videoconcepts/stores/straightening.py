"""Straightening stores (kind ``straightening``): each video's trajectory geometry per
layer of one model, pixels first, and the per-video table beside it."""

from __future__ import annotations

from pathlib import Path

import zarr

from videoconcepts.stores.base import open_store

KIND = "straightening"
# The pixel trajectory's entry in the layer axis and the table's ``layer`` column.
PIXELS = -1
COLUMNS = (
    "model",  # the model's name in the run
    "weights",  # pixels, trained or random
    "layer",
    "video",
    "label",  # natural, generated, or empty where no sheet marks the video
    "curvature",
    "shuffled_curvature",
    "distance",
)


def open_straightening(path: str | Path) -> zarr.Group:
    return open_store(path, KIND)
