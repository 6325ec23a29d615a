"""Feature stores (kind ``features``): per-head keys/queries/values, residual tokens and
logits of one shard of videos.

Arrays are chunked one (video, layer) per chunk, so a later stage reading one video at
one layer touches exactly one chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import zarr

from videoconcepts.stores.base import create_array, open_store

if TYPE_CHECKING:
    from videoconcepts.models import ModelAdapter

KIND = "features"


def create_feature_arrays(
    group: zarr.Group,
    adapter: ModelAdapter,
    n_layers: int,
    heads: Sequence[str],
    residual: bool,
    dtype: str,
    n_videos: int,
) -> None:
    """Empty arrays of a feature store, one chunk per (video, layer)."""
    g = adapter.grid
    grid = (g.frames, g.height, g.width)
    create_array(
        group, "logits", (n_videos, adapter.num_classes), "float32", (1, adapter.num_classes)
    )
    head_shape = (n_layers, adapter.num_heads, *grid, adapter.head_dim)
    for kind in heads:
        create_array(group, kind, (n_videos, *head_shape), dtype, (1, 1, *head_shape[1:]))
    if residual:
        shape = (n_layers, *grid, adapter.hidden_size)
        create_array(group, "residual", (n_videos, *shape), dtype, (1, 1, *shape[1:]))


def open_features(path: str | Path) -> zarr.Group:
    return open_store(path, KIND)
