"""Attribution curves on planted units, through the demo model."""

from __future__ import annotations

import numpy as np

from videoconcepts.methods.curves import attribution_curves
from videoconcepts.models.scorer import MaskScorer


def test_attribution_curves_start_at_baseline_and_end_equal(scorer_parts):
    units, adapter, clips, settings, targets, baseline = scorer_parts
    importance = {"planted_first": -np.arange(units.n_units, dtype=float)}
    with MaskScorer(adapter, units.layers, settings, batch_size=16) as scorer:
        curves, areas = attribution_curves(
            scorer, clips, units, targets, importance, steps=4, random_orders=2, seed=0
        )
    assert set(areas["order"]) == {"positive", "negative", "random"}
    ends = curves.groupby(["method", "order"])["metric"]
    np.testing.assert_allclose(ends.first(), baseline.mean(), atol=1e-5)
    np.testing.assert_allclose(ends.last(), ends.last().iloc[0], atol=1e-5)
    auc = areas.set_index("order")["auc"]
    assert auc["positive"] < auc["random"] < auc["negative"]
