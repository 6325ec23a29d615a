"""CRIS, occlusion, attribution curves and head pruning with planted units.

The model is the shipped demo model (4 layers x 4 heads, 512 tokens), small enough for
tests and trained, so removing its attention really flips its predictions; a random
tiny VideoMAE predicts one class whatever is masked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import defaults

from videoconcepts.demo.synthetic import generate_dataset
from videoconcepts.methods.cris import (
    CrisSettings,
    batch_ranges,
    cris_estimate,
    sample_masks,
    split_half_stability,
)
from videoconcepts.methods.curves import attribution_curves, curve_areas, fidelity_checks
from videoconcepts.methods.decoding import DecodeSettings
from videoconcepts.methods.occlusion import occlusion_importance
from videoconcepts.methods.pruning import split_held_out
from videoconcepts.methods.removal import removal_masks
from videoconcepts.methods.tokens import plurality_tokens
from videoconcepts.models.scorer import MaskingSettings, MaskScorer, UnitJob
from videoconcepts.runtime import Runtime
from videoconcepts.stages.cris import write_cris_shard
from videoconcepts.stages.cris_gather import gather_cris
from videoconcepts.stages.decode import write_decode_store
from videoconcepts.stages.heads import HeadSettings, head_importance
from videoconcepts.stages.targets import TargetSettings, target_table
from videoconcepts.stores.base import open_store, write_table
from videoconcepts.stores.units import write_units

GRID = (8, 8, 8)
N_TOKENS, N_LAYERS, N_HEADS = 512, 4, 4
PLANTED, ABSENT = 0, 7


def CPU(batch_size: int) -> Runtime:  # noqa: N802 (reads like the runtime it builds)
    return Runtime("cpu", batch_size, 1)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory) -> tuple[list[str], list[str], str]:
    root = tmp_path_factory.mktemp("importance")
    table = generate_dataset(root / "demo", videos_per_event=1, seed=3)
    settings = DecodeSettings(num_frames=16, frame_stride=2, clip_start="center", size=64)
    stores = []
    for path, video_id in zip(table["path"], table["id"], strict=True):
        stores.append(str(root / f"{video_id}.zarr"))
        write_decode_store(root / "demo" / path, stores[-1], video_id, settings)
    return list(table["id"]), stores, str(root / "demo" / "samples.tsv")


@pytest.fixture(scope="module")
def planted_units(decoded, tmp_path_factory) -> str:
    """Unit 0 is every token of every head of every layer (masking it removes all
    attention, which flips the demo model's output); units 1-6 are four tokens in one
    head each; unit 7 has no tokens in any video."""
    ids, stores, _ = decoded
    table = pd.DataFrame(
        [(0, 0, 0), *[(u % N_LAYERS, u % N_HEADS, u) for u in range(1, 7)], (3, 3, 7)],
        columns=["layer", "head", "concept"],
    )
    blocks = []
    for v in range(len(ids)):
        block = np.full((N_LAYERS, N_HEADS, N_TOKENS), PLANTED, np.int32)
        for unit in range(1, 7):
            start = (unit * 37 + v * 11) % (N_TOKENS - 4)
            block[unit % N_LAYERS, unit % N_HEADS, start : start + 4] = unit
        blocks.append(block.reshape(N_LAYERS, N_HEADS, *GRID))
    out = tmp_path_factory.mktemp("units") / "units.zarr"
    write_units(out, blocks, table, ids, stores, range(N_LAYERS), grid=list(GRID))
    return str(out)


def masking(**kw) -> MaskingSettings:
    values = {"mode": "remove", "head_kind": "keys", "metric": "correctness", "target": "label"}
    return MaskingSettings("demo", **{**values, **kw})


@pytest.fixture(scope="module")
def targets(decoded, tmp_path_factory):
    """``targets(metric)``: the targets stage's table of the decoded videos for a metric."""
    _, stores, samples = decoded
    root, made = tmp_path_factory.mktemp("targets"), {}

    def table(metric: str = "correctness") -> str:
        if metric not in made:
            settings = TargetSettings("demo", metric, "label")
            made[metric] = str(root / f"{metric}.tsv")
            write_table(target_table(stores, settings, samples, "cpu"), made[metric], "%.9g")
        return made[metric]

    return table


def test_sampled_masks_are_independent_draws_that_follow_the_seed():
    masks = sample_masks(4000, 9, 0.3, seed=4)
    assert masks.shape == (4000, 9)
    assert np.array_equal(masks, sample_masks(4000, 9, 0.3, seed=4))
    assert not np.array_equal(masks, sample_masks(4000, 9, 0.3, seed=5))
    share = masks.mean(0)
    assert share.min() > 0.27 and share.max() < 0.33
    # independent units: no correlation between any two (a fixed count per mask has -1/8)
    corr = np.corrcoef(masks.T)[np.triu_indices(9, 1)]
    assert np.abs(corr).max() < 0.06


@pytest.mark.parametrize("n_shards", [1, 2, 3, 7, 20])
def test_shards_partition_the_masks_in_whole_batches(n_shards):
    ranges = [batch_ranges(50, 8, n_shards, s) for s in range(n_shards)]
    assert [i for r in ranges for i in r] == list(range(50))
    assert all(r.start % 8 == 0 for r in ranges if len(r))


def test_estimator_golden_values():
    masks = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], bool)
    scores = np.array([[0.0, 1.0, 0.0, 1.0]])
    importance, stderr = cris_estimate(scores, masks, np.ones((1, 2), bool))
    np.testing.assert_allclose(importance, [1.0, 0.0])
    # Welch: sample variance 0.5 in each group of two -> sqrt(0.5 / 2 + 0.5 / 2)
    np.testing.assert_allclose(stderr, [0.0, np.sqrt(0.5)])
    # a unit absent from the only video counts zero whatever the scores
    importance, stderr = cris_estimate(scores, masks, np.array([[True, False]]))
    assert importance[1] == 0 and stderr[1] == 0


def test_plurality_assigns_each_token_its_majority_unit():
    voxels = np.full((2, 4, 4), -1)  # tokens of 2 x 2 x 2 voxels on a (1, 2, 2) grid
    voxels[:, :2, :2] = 3  # token (0, 0): all unit 3
    voxels[:, 2:, :2] = [[1, 1], [2, 2]]
    voxels[0, 2, 0] = 2  # token (1, 0): 4 voxels unit 2, 3 unit 1... plus one more 2
    voxels[0, :2, 2:] = 2  # token (0, 1): 4 unit 2, 4 none -> tie, none wins
    voxels[:, 2:, 2:] = [[0, 1], [2, 2]]  # token (1, 1): 4 unit 2, 2 unit 0, 2 unit 1
    tokens = plurality_tokens(voxels, (1, 2, 2), 4)
    assert tokens.tolist() == [[[3, -1], [2, 2]]]


@pytest.fixture(scope="module")
def cris_runs(planted_units, targets, tmp_path_factory):
    """The same CRIS run in 1 and in 3 shards (batch 8, 44 masks: a short last batch)."""
    root = tmp_path_factory.mktemp("cris")
    settings = CrisSettings(num_masks=44, mask_ratio=0.5, seed=0, stop_when_stable=None)
    runs = {}
    for n_shards in (1, 3):
        paths = [root / f"{n_shards}-{s}.zarr" for s in range(n_shards)]
        for s, path in enumerate(paths):
            write_cris_shard(
                planted_units, targets(), path, masking(), settings, s, n_shards, CPU(8)
            )
        runs[n_shards] = (paths, *gather_cris(planted_units, paths, settings))
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


def test_sharded_cris_equals_unsharded(cris_runs):
    one, three = cris_runs[1], cris_runs[3]
    pd.testing.assert_frame_equal(one[1], three[1], check_exact=True)
    scores = [
        np.concatenate([open_store(p, "cris_shard")["scores"][...] for p in run[0]], 1)
        for run in (one, three)
    ]
    assert np.array_equal(*scores)


def test_early_stop_keeps_a_prefix_of_the_masks(planted_units, targets, tmp_path):
    settings = CrisSettings(num_masks=96, mask_ratio=0.5, seed=0, stop_when_stable=1e-6)
    path = tmp_path / "early.zarr"
    done = write_cris_shard(planted_units, targets(), path, masking(), settings, 0, 1, CPU(4))
    attrs = open_store(path, "cris_shard").attrs
    assert done == 32 and attrs["stopped_early"] and attrs["mask_stop"] == 32
    assert attrs["stability"] >= 1e-6
    table, stability = gather_cris(planted_units, [path], settings)
    assert stability["n_masks"].iloc[-1] == 32
    assert table.set_index("unit").loc[PLANTED, "rank"] == 1


def test_split_half_stability_is_high_for_a_clear_ranking():
    rng = np.random.default_rng(0)
    masks = sample_masks(2000, 10, 0.5, seed=1)
    weights = np.arange(10, dtype=float)
    scores = (-(masks * weights).sum(1) + rng.normal(0, 0.5, 2000))[None]
    assert split_half_stability(scores, masks, np.ones((1, 10), bool)) > 0.95
    # scores unrelated to the masks give no stable ranking
    masks = sample_masks(2000, 50, 0.5, seed=2)
    noise = rng.normal(0, 1, (1, 2000))
    assert abs(split_half_stability(noise, masks, np.ones((1, 50), bool))) < 0.5


@pytest.fixture(scope="module")
def scorer_parts(planted_units, targets):
    settings = masking(metric="prob")
    job = UnitJob.load(planted_units, targets("prob"), settings, "cpu")
    return job.units, job.adapter, job.clips, settings, job.targets, job.baseline


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


def test_held_out_split_is_deterministic_and_sized():
    ids = [f"v{i}" for i in range(10)]
    held = split_held_out(ids, 0.3)
    assert held.sum() == 3 and np.array_equal(held, split_held_out(list(reversed(ids)), 0.3)[::-1])
    with pytest.raises(ValueError, match="held out"):
        split_held_out(ids[:2], 0.9)


def test_head_importance_and_pruning_curve(decoded, targets):
    _, stores, _ = decoded
    settings = HeadSettings(num_masks=32, mask_ratio=0.5, held_out=0.34, pruning_steps=4, seed=0)
    table, curve = head_importance(
        stores, targets("prob"), masking(metric="prob"), settings, CPU(16)
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


def test_a_single_video_prunes_on_itself_and_says_so(decoded, targets):
    _, stores, _ = decoded
    settings = HeadSettings(**{**defaults("heads"), "num_masks": 8, "pruning_steps": 2})
    _, curve = head_importance(stores[:1], targets(), masking(), settings, CPU(8))
    assert (curve["evaluated_on"] == "estimation videos (too few for a held-out split)").all()
