"""Token assignment: which maskable unit each model token belongs to.

Tubelet labels live on the upsampled grid the proposals ran on; a model token takes the
unit covering most of its voxels (:func:`plurality_tokens`). Whole heads are units too
(head importance): :func:`head_unit_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


def head_unit_tokens(n_layers: int, n_heads: int, n_tokens: int) -> np.ndarray:
    """(layers, heads, N) tokens for whole-head units: unit ``layer * heads + head``."""
    ids = np.arange(n_layers * n_heads, dtype=np.int64).reshape(n_layers, n_heads, 1)
    return np.broadcast_to(ids, (n_layers, n_heads, n_tokens)).copy()
