"""Tubelet stores (kind ``tubelets``): label volumes and descriptors of one layer of a shard.

Label volumes stay on the grid the proposals ran on; descriptors of all (video, head)
pairs are one ragged array with offsets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from videoconcepts.stores.base import open_store

KIND = "tubelets"
TABLE_COLUMNS = ("video", "head", "label", "voxels", "t_start", "t_stop", "y0", "y1", "x0", "x1")


def open_tubelets(path: str | Path) -> zarr.Group:
    return open_store(path, KIND)


def tubelet_table(store: zarr.Group) -> pd.DataFrame:
    """The tubelet table (one row per descriptor row) with ``video_id`` and ``layer`` added."""
    table = pd.DataFrame(store["tubelets"][...], columns=store.attrs["table_columns"])
    table.insert(1, "video_id", np.asarray(store.attrs["video_ids"], dtype=object)[table["video"]])
    table.insert(2, "layer", store.attrs["layer"])
    return table
