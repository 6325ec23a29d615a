"""Connectome stores (kind ``connectome``): one model's top-down segments, their pooled
features, the concepts and CAVs of every class, and the columns of the stage's tables.

``labels_<layer>`` (videos, T', H', W') int16 numbers each video's segments at that
layer 1..n (0: in none); the ``segment_*`` arrays are one row per segment (all videos,
all layers): its video, layer, number in its label volume, parent row (-1 at the top),
concept row (-1: pruned) and target score of its clip shown alone; ``pooled``
(segments, D) its features at its layer, pooled over its tokens. ``centroids`` and
``cavs`` (concepts, random sets, D) are one row per concept node, in the nodes table's
order; ``random_cavs`` the random concept's, per class and layer in the layers table's
order.
"""

from __future__ import annotations

from pathlib import Path

import zarr

from videoconcepts.stores.base import open_store

KIND = "connectome"
TABLES = ("nodes", "edges", "layers", "fidelity", "validation")  # connectome_<name>.tsv
NODE_COLUMNS = (
    "model", "class", "node", "layer", "concept", "segments", "videos", "exemplar",
    "aps", "logit_sum", "mean_score",
)  # fmt: skip
EDGE_COLUMNS = (
    "model", "class", "source", "target", "source_layer", "target_layer",
    "weight", "null_weight", "p_value", "kept",
)  # fmt: skip
LAYER_COLUMNS = (
    "model", "class", "layer", "segments", "segment_share", "nodes",
    "edges_kept", "edge_density", "mean_weight",
)  # fmt: skip
FIDELITY_COLUMNS = (
    "model", "class", "layer", "direction", "repeat", "eps_factor", "eps", "clips",
    "accuracy", "score",
)  # fmt: skip
VALIDATION_COLUMNS = ("model", "check", "value", "p_value", "n")
CLASS_NODE = "class"


def open_connectome(path: str | Path) -> zarr.Group:
    return open_store(path, KIND)
