"""Head importance and the pruning curve on the demo model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import cpu, defaults, masking_settings

from videoconcepts.stages.heads import HeadSettings, head_importance


@pytest.mark.parametrize("estimator", ["regression", "difference"])
def test_head_importance_and_pruning_curve(demo_decoded, targets, estimator):
    _, stores, _ = demo_decoded
    settings = HeadSettings(
        num_masks=32, mask_ratio=0.5, held_out=0.34, pruning_steps=4, seed=0, estimator=estimator
    )
    table, curve = head_importance(
        stores, targets("prob"), masking_settings(metric="prob"), settings, cpu(16)
    )
    assert len(table) == 16 and sorted(table["rank"]) == list(range(1, 17))
    assert np.isfinite(table["importance"]).all() and (table["stderr"] > 0).all()
    for _, group in curve.groupby("order"):
        assert group["heads_pruned"].tolist() == [0, 4, 8, 12, 16]
        assert group["attention_flops_saved"].iloc[-1] == 1.0
        assert group["model_flops_saved"].is_monotonic_increasing
        assert 0 < group["model_flops_saved"].iloc[-1] < 1
    first = curve.groupby("order")[["metric", "accuracy"]].first()
    last = curve.groupby("order")[["metric", "accuracy"]].last()
    np.testing.assert_allclose(first["accuracy"], 1.0)  # the demo model gets these right
    assert (last["accuracy"] < 1).all()  # and does not without attention
    np.testing.assert_allclose(last["metric"], last["metric"].iloc[0], atol=1e-6)
    assert not torch.isnan(torch.tensor(curve["metric"].to_numpy())).any()


def test_a_single_video_prunes_on_itself_and_says_so(demo_decoded, targets):
    _, stores, _ = demo_decoded
    settings = HeadSettings(**{**defaults("heads"), "num_masks": 8, "pruning_steps": 2})
    _, curve = head_importance(stores[:1], targets(), masking_settings(), settings, cpu(8))
    assert (curve["evaluated_on"] == "estimation videos (too few for a held-out split)").all()


def test_heads_refuse_a_masking_mode_that_does_not_remove(demo_decoded, targets):
    """Ranking under `zero` would estimate another intervention than the pruning."""
    _, stores, _ = demo_decoded
    settings = HeadSettings(**{**defaults("heads"), "num_masks": 8, "pruning_steps": 2})
    with pytest.raises(ValueError, match="heads are ranked and pruned by removing them"):
        head_importance(stores, targets(), masking_settings(mode="zero"), settings, cpu(8))
