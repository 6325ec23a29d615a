"""Token assignment: each model token takes its plurality unit."""

from __future__ import annotations

import numpy as np

from videoconcepts.methods.tokens import plurality_tokens


def test_plurality_assigns_each_token_its_majority_unit():
    voxels = np.full((2, 4, 4), -1)  # tokens of 2 x 2 x 2 voxels on a (1, 2, 2) grid
    voxels[:, :2, :2] = 3  # token (0, 0): all unit 3
    voxels[:, 2:, :2] = [[1, 1], [2, 2]]
    voxels[0, 2, 0] = 2  # token (1, 0): 4 voxels unit 2, 3 unit 1... plus one more 2
    voxels[0, :2, 2:] = 2  # token (0, 1): 4 unit 2, 4 none -> tie, none wins
    voxels[:, 2:, 2:] = [[0, 1], [2, 2]]  # token (1, 1): 4 unit 2, 2 unit 0, 2 unit 1
    tokens = plurality_tokens(voxels, (1, 2, 2), 4)
    assert tokens.tolist() == [[[3, -1], [2, 2]]]
