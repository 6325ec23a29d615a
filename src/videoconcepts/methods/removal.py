"""Cumulative removal: the masks of an attribution or pruning curve."""

from __future__ import annotations

import numpy as np


def removal_masks(order: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps + 1, U) masks removing the first round(f * U) units of ``order``, f = j/steps."""
    n_units = len(order)
    fractions = np.arange(steps + 1) / steps
    counts = np.round(fractions * n_units).astype(int)
    position = np.empty(n_units, int)
    position[order] = np.arange(n_units)
    return position[None, :] < counts[:, None], fractions
