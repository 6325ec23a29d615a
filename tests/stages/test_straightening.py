"""The straightening stage on planted feature and decode stores: a layer whose tokens
move along a line, a layer of noise, and frames that brighten evenly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from videoconcepts.jobclient import main
from videoconcepts.stages.straightening import StraighteningSettings, straightening
from videoconcepts.stores.base import atomic_store, write_array
from videoconcepts.stores.straightening import COLUMNS, PIXELS, open_straightening

STEPS, FRAMES, VIDEOS = 8, 16, 5


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp("straightening")
    rng = np.random.default_rng(0)
    stores, decoded = [], []
    for v in range(VIDEOS):
        decoded.append(root / f"vid{v}.zarr")
        brightness = np.linspace(0, 200, FRAMES, dtype=np.float32) + 10 * v
        frames = np.broadcast_to(brightness[:, None, None, None], (FRAMES, 4, 4, 3))
        with atomic_store(decoded[-1], "decode", video_id=f"vid{v}", status="ok") as group:
            write_array(group, "frames", frames.astype(np.uint8))
    t = np.arange(STEPS, dtype=np.float32)[:, None, None, None]
    line = t * rng.normal(size=(1, 2, 2, 6)) + rng.normal(size=(1, 2, 2, 6))
    residual = np.stack(
        [np.stack([line + v, rng.normal(size=(STEPS, 2, 2, 6))]) for v in range(VIDEOS)]
    ).astype(np.float32)
    for s, rows in enumerate([slice(0, 3), slice(3, VIDEOS)]):  # two shards
        stores.append(root / f"features-{s}.zarr")
        with atomic_store(
            stores[-1],
            "features",
            video_ids=[f"vid{v}" for v in range(VIDEOS)][rows],
            layers=[2, 5],
            decode_stores=[str(p) for p in decoded[rows]],
        ) as group:
            write_array(group, "residual", residual[rows])
    return stores


def test_a_straight_layer_and_even_frames_have_no_curvature_and_noise_has_much(features, tmp_path):
    table = straightening(
        "demo",
        features,
        StraighteningSettings(permutations=20, seed=0, random_weights=False),
        tmp_path / "s.zarr",
    )
    assert len(table) == VIDEOS * 3 and list(table["video"].unique()) == [
        f"vid{v}" for v in range(VIDEOS)
    ]
    per_layer = table.groupby("layer")[["curvature", "shuffled_curvature"]].mean()
    assert list(per_layer.index) == sorted([PIXELS, 2, 5])
    assert per_layer.loc[2, "curvature"] < 1e-3 and per_layer.loc[PIXELS, "curvature"] < 1e-3
    assert per_layer.loc[5, "curvature"] > 60  # noise turns at random
    # shuffled time bends the straight paths; on noise it changes little
    assert per_layer.loc[2, "shuffled_curvature"] > 60
    assert abs(per_layer.loc[5, "shuffled_curvature"] - per_layer.loc[5, "curvature"]) < 15
    store = open_straightening(tmp_path / "s.zarr")
    assert store["restrav"].shape == (VIDEOS, 3, 21) and store.attrs["restrav"]
    assert store["angles"].shape == (VIDEOS, 3, STEPS - 2)
    assert np.allclose(store["restrav"][:, 1, 7:13], 0, atol=1e-2)  # the straight layer's angles


def test_the_command_writes_the_table_and_the_same_seed_the_same_null(features, tmp_path):
    settings = '{"permutations": 5, "seed": 3, "random_weights": false}'
    runtime = ["--device", "cpu", "--batch-size", "2", "--threads", "1"]
    args = ["--settings", settings, *runtime, *map(str, features)]
    for run in ("a", "b"):
        main(
            [
                "straightening",
                "--name",
                "demo",
                "--out",
                str(tmp_path / f"{run}.zarr"),
                "--table",
                str(tmp_path / f"{run}.tsv"),
                *args,
            ]
        )
    a, b = (pd.read_csv(tmp_path / f"{r}.tsv", sep="\t") for r in "ab")
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == list(COLUMNS)
    assert set(a["weights"]) == {"pixels", "trained"} and a["label"].isna().all()


def test_features_without_residual_tokens_are_refused_by_name(tmp_path):
    path = tmp_path / "keys-only.zarr"
    with atomic_store(path, "features", video_ids=["a"], layers=[0], decode_stores=["x"]) as group:
        write_array(group, "keys", np.zeros((1, 1, 2, 8, 2, 2, 4), np.float32))
    with pytest.raises(ValueError, match="keys-only.zarr: no residual tokens"):
        straightening(
            "demo",
            [path],
            StraighteningSettings(permutations=2, seed=0, random_weights=False),
            tmp_path / "s.zarr",
        )
