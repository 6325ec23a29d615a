"""The cris and cris_gather stages on planted units: ranking, sharding, early stop."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from helpers import ABSENT, PLANTED, cpu, masking_settings

from videoconcepts.methods.cris import CrisSettings
from videoconcepts.stages.cris import write_cris_shard
from videoconcepts.stages.cris_gather import GatherSettings, gather_cris
from videoconcepts.stores.base import open_store


@pytest.fixture(scope="module")
def cris_runs(planted_units, targets, tmp_path_factory):
    """The same CRIS run in 1 and in 3 shards (batch 8, 44 masks: a short last batch)."""
    root = tmp_path_factory.mktemp("cris")
    settings = CrisSettings(
        num_masks=44, mask_ratio=0.5, seed=0, stop_when_stable=None, estimator="regression"
    )
    gather = GatherSettings(**asdict(settings), video_bootstrap=500)
    runs = {}
    for n_shards in (1, 3):
        paths = [root / f"{n_shards}-{s}.zarr" for s in range(n_shards)]
        for s, path in enumerate(paths):
            write_cris_shard(
                planted_units, targets(), path, masking_settings(), settings, s, n_shards, cpu(8)
            )
        runs[n_shards] = (paths, *gather_cris(planted_units, paths, gather))
    return runs


def test_cris_ranks_the_planted_unit_first_and_absent_units_zero(cris_runs):
    _, table, stability = cris_runs[1]
    table = table.set_index("unit")
    assert table.loc[PLANTED, "rank"] == 1
    assert table.loc[PLANTED, "importance"] > 0.5  # it flips most videos
    assert table.loc[PLANTED, "importance"] > 2 * table.drop(PLANTED)["importance"].abs().max()
    assert table.loc[PLANTED, "importance"] > 4 * table.loc[PLANTED, "stderr"]
    assert table.loc[ABSENT, "importance"] == 0 and table.loc[ABSENT, "stderr"] == 0
    assert table.loc[ABSENT, "n_videos"] == 0 and table.loc[PLANTED, "n_videos"] == 6
    assert stability["n_masks"].iloc[-1] == 44


def test_gathered_table_has_a_video_bootstrap_interval(cris_runs):
    table = cris_runs[1][1].set_index("unit")
    low, high = table["video_ci_low"], table["video_ci_high"]
    assert (low <= table["importance"] + 1e-6).all() and (table["importance"] <= high + 1e-6).all()
    assert (table["video_se"] >= 0).all() and (high > low)[table["n_videos"] > 1].any()
    assert table.loc[ABSENT, ["video_ci_low", "video_ci_high", "video_se"]].eq(0).all()
    assert low[PLANTED] > 0  # the planted unit matters in every video it is in


def test_sharded_cris_equals_unsharded(cris_runs):
    one, three = cris_runs[1], cris_runs[3]
    pd.testing.assert_frame_equal(one[1], three[1], check_exact=True)
    scores = [
        np.concatenate([open_store(p, "cris_shard")["scores"][...] for p in run[0]], 1)
        for run in (one, three)
    ]
    assert np.array_equal(*scores)


@pytest.mark.parametrize("estimator", ["regression", "difference"])
def test_early_stop_keeps_a_prefix_of_the_masks(planted_units, targets, tmp_path, estimator):
    settings = CrisSettings(
        num_masks=96, mask_ratio=0.5, seed=0, stop_when_stable=1e-6, estimator=estimator
    )
    path = tmp_path / "early.zarr"
    done = write_cris_shard(
        planted_units, targets(), path, masking_settings(), settings, 0, 1, cpu(4)
    )
    attrs = open_store(path, "cris_shard").attrs
    assert done == 32 and attrs["stopped_early"] and attrs["mask_stop"] == 32
    assert attrs["stability"] >= 1e-6
    gather = GatherSettings(**asdict(settings), video_bootstrap=100)
    table, stability = gather_cris(planted_units, [path], gather)
    assert stability["n_masks"].iloc[-1] == 32
    assert table.set_index("unit").loc[PLANTED, "rank"] == 1
