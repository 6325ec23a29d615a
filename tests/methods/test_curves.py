"""Removal masks, curve areas and fidelity checks, golden values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from videoconcepts.methods.curves import curve_areas, fidelity_checks
from videoconcepts.methods.removal import removal_masks


def test_removal_masks_and_areas_golden():
    masks, fractions = removal_masks(np.array([2, 0, 1, 3]), steps=2)
    assert fractions.tolist() == [0, 0.5, 1]
    assert masks.astype(int).tolist() == [[0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1]]
    curves = pd.DataFrame(
        {
            "method": "m",
            "order": "positive",
            "fraction_removed": [0, 0.5, 1],
            "metric": [1.0, 0.5, 0.0],
        }
    )
    assert curve_areas(curves)["auc"].tolist() == [0.5]


def test_fidelity_checks_compare_orders_the_right_way():
    areas = pd.DataFrame(
        {
            "method": ["cris", "cris", "occlusion", "occlusion", "random"],
            "order": ["positive", "negative", "positive", "negative", "random"],
            "auc": [0.2, 0.9, 0.3, 0.8, 0.5],
        }
    )
    checks = fidelity_checks(areas, "cris", ["occlusion", "random"])
    assert checks["better"].all() and len(checks) == 4
    areas.loc[0, "auc"] = 0.6  # positive area above random: worse
    checks = fidelity_checks(areas, "cris", ["random"]).set_index("order")
    assert not checks.loc["positive", "better"] and checks.loc["negative", "better"]
