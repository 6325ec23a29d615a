"""The rosetta stage on planted units stores: two models on different token grids whose
important concepts cover the same space-time blocks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from videoconcepts.stages.rosetta import RosettaSettings, rosetta
from videoconcepts.stores.base import write_table
from videoconcepts.stores.units import write_units

VIDEOS = ["a", "b", "c"]


def planted_model(
    root, name: str, grid: tuple[int, int, int], layer: int, head: int, ranks, absent=True
):
    """Four units in one (layer, head): unit u holds the u-th quarter of the frame (a
    2 x 2 split of H, W) in every video, but unit 3 is absent from the first when
    ``absent``; the CRIS table ranks them as ``ranks``."""
    t, h, w = grid
    blocks = []
    for v in range(len(VIDEOS)):
        block = np.full((1, 2, t, h, w), -1, np.int32)
        for u in range(4):
            if absent and v == 0 and u == 3:
                continue
            y, x = divmod(u, 2)
            block[0, head, :, y * h // 2 : (y + 1) * h // 2, x * w // 2 : (x + 1) * w // 2] = u
        blocks.append(block)
    table = pd.DataFrame({"layer": layer, "head": head, "concept": range(4)})
    units = root / f"{name}_units.zarr"
    write_units(
        units, blocks, table, VIDEOS, [f"{v}.zarr" for v in VIDEOS], [layer], grid=list(grid)
    )
    cris = table.assign(unit=range(4), rank=ranks, importance=0.0)
    write_table(cris, root / f"{name}_cris.tsv")
    return name, str(units), str(root / f"{name}_cris.tsv")


def settings(**overrides) -> RosettaSettings:
    values = dict(epsilon=0.5, delta=0.15, max_d=None, permutations=4, seed=0, grid=None)
    return RosettaSettings(**{**values, **overrides})


def test_important_concepts_on_the_same_blocks_pair_with_score_one(tmp_path):
    # model A ranks units 0 and 3 first, B ranks 0 and 1: only unit 0 is a candidate in
    # both, and unit 3 of A overlaps none of B's candidates (0: top-left, 1: top-right)
    a = planted_model(tmp_path, "A", (8, 8, 8), layer=1, head=0, ranks=[1, 3, 4, 2])
    b = planted_model(tmp_path, "B", (4, 4, 4), layer=2, head=1, ranks=[1, 2, 3, 4])
    tables = rosetta([a, b], settings())
    tuples = tables["concepts"]
    assert tuples[["A_unit", "B_unit", "r_score"]].values.tolist() == [[0, 0, 1.0]]
    assert tuples["A_layer"].tolist() == [1] and tuples["B_head"].tolist() == [1]
    assert (tuples["null_mean"] == 1.0).all()  # a block in every video: shuffling keeps it
    links = tables["layers"]
    assert links.values.tolist() == [["A", 1, "B", 2, 1]]
    summary = tables["summary"].iloc[0]
    assert summary["d"] == 2 and summary["tuples"] == 1 and summary["all_tuples"] == 4


def test_a_concept_absent_from_a_video_loses_its_match_there(tmp_path):
    # A's unit 3 is absent from video "a" only: against B's unit 3, IoU 1 in two videos
    # of the three where either appears (B's is present in all three)
    a = planted_model(tmp_path, "A", (8, 8, 8), layer=0, head=0, ranks=[4, 3, 2, 1])
    b = planted_model(tmp_path, "B", (8, 8, 8), layer=0, head=0, ranks=[4, 3, 2, 1], absent=False)
    tuples = rosetta([a, b], settings(epsilon=0.25))["concepts"]
    assert tuples[["A_unit", "B_unit"]].values.tolist() == [[3, 3]]
    assert tuples["r_score"].iloc[0] == pytest.approx(2 / 3)


def test_the_command_refuses_one_model(tmp_path):
    a = planted_model(tmp_path, "A", (8, 8, 8), layer=0, head=0, ranks=[1, 2, 3, 4])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "videoconcepts",
            "rosetta",
            "--settings",
            '{"epsilon": 0.5, "delta": 0.15, "max_d": null, "permutations": 0, '
            '"seed": 0, "grid": null}',
            "--model",
            *a,
            "--concepts",
            str(tmp_path / "c.tsv"),
            "--layers",
            str(tmp_path / "l.tsv"),
            "--summary",
            str(tmp_path / "s.tsv"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "two models or more" in result.stderr
    assert not (tmp_path / "c.tsv").exists()
