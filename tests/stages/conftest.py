"""Fixtures of the masking stages' tests: the shipped demo model on six demo videos, and
planted units whose answers are known.

The model is the shipped demo model (4 layers x 4 heads, 288 tokens), small enough for
tests and trained, so removing its attention really flips its predictions; a random
tiny VideoMAE predicts one class whatever is masked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import GRID, N_HEADS, N_LAYERS, N_TOKENS, PLANTED, cpu, decode_all, masking_settings

from videoconcepts.demo.synthetic import generate_dataset
from videoconcepts.models.scorer import UnitJob
from videoconcepts.stages.targets import TargetSettings, target_table
from videoconcepts.stores.base import write_table
from videoconcepts.stores.units import write_units


@pytest.fixture(scope="session")
def demo_decoded(tmp_path_factory) -> tuple[list[str], list[str], str]:
    root = tmp_path_factory.mktemp("importance")
    table = generate_dataset(root / "demo", videos_per_event=1, seed=3)
    stores = decode_all(root, table)
    return list(table["id"]), stores, str(root / "demo" / "samples.tsv")


@pytest.fixture(scope="session")
def planted_units(demo_decoded, tmp_path_factory) -> str:
    """Unit 0 is every token of every head of every layer (masking it removes all
    attention, which flips the demo model's output); units 1-6 are four tokens in one
    head each; unit 7 has no tokens in any video."""
    ids, stores, _ = demo_decoded
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


@pytest.fixture(scope="session")
def targets(demo_decoded, tmp_path_factory):
    """``targets(metric)``: the targets stage's table of the demo_decoded videos for a metric."""
    _, stores, samples = demo_decoded
    root, made = tmp_path_factory.mktemp("targets"), {}

    def table(metric: str = "correctness") -> str:
        if metric not in made:
            settings = TargetSettings("demo", metric, "label")
            made[metric] = str(root / f"{metric}.tsv")
            write_table(target_table(stores, settings, samples, cpu(8)), made[metric], "%.9g")
        return made[metric]

    return table


@pytest.fixture(scope="session")
def scorer_parts(planted_units, targets):
    settings = masking_settings(metric="prob")
    job = UnitJob.load(planted_units, targets("prob"), settings, cpu(8))
    return job.units, job.adapter, job.clips, settings, job.targets, job.baseline
