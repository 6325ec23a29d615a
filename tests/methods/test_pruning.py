"""The held-out split of head pruning."""

from __future__ import annotations

import numpy as np
import pytest

from videoconcepts.methods.pruning import split_held_out


def test_held_out_split_is_deterministic_and_sized():
    ids = [f"v{i}" for i in range(10)]
    held = split_held_out(ids, 0.3)
    assert held.sum() == 3 and np.array_equal(held, split_held_out(list(reversed(ids)), 0.3)[::-1])
    with pytest.raises(ValueError, match="held out"):
        split_held_out(ids[:2], 0.9)
