"""The occlusion baseline on planted units."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ABSENT, PLANTED

from videoconcepts.methods.occlusion import occlusion_importance
from videoconcepts.models.scorer import MaskScorer


def test_occlusion_is_the_drop_when_a_unit_is_masked_alone(scorer_parts):
    units, adapter, clips, settings, targets, baseline = scorer_parts
    with MaskScorer(adapter, units.layers, settings, batch_size=4) as scorer:
        table = occlusion_importance(scorer, clips, units, targets, baseline).set_index("unit")
        only_planted = np.zeros((1, units.n_units), bool)
        only_planted[0, PLANTED] = True
        drops = [
            baseline[v]
            - scorer.scores(clips.frames(v), units.tokens(v), only_planted, int(targets[v]))[0]
            for v in range(len(clips))
        ]
    assert table.loc[PLANTED, "importance"] == pytest.approx(np.mean(drops), abs=1e-6)
    assert table.loc[PLANTED, "rank"] == 1
    assert table.loc[ABSENT, "importance"] == 0
