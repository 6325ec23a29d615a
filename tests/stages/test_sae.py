"""The sae and sae_metrics stages on the trained demo VideoMAE's features of twelve demo
videos: trained SAEs against untrained ones and random features, and a training killed
mid-way that resumes to the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import cpu, decode_all

from videoconcepts.demo.synthetic import generate_dataset
from videoconcepts.jobclient import main
from videoconcepts.stages.features import FeatureSettings, write_feature_store
from videoconcepts.stages.sae import SaeSettings, holdout_split, sae
from videoconcepts.stages.sae_metrics import SaeMetricsSettings, sae_metrics
from videoconcepts.stages.targets import TargetSettings, target_table
from videoconcepts.stores.base import open_store, write_table
from videoconcepts.stores.sae import load_sae, open_sae

LAYER = 3


def train_settings(**changes) -> SaeSettings:
    values = dict(
        k=8, contrastive=0.0, expansion=4, matryoshka_groups=2, temperature=0.5,
        learning_rate=3e-3, epochs=10, batch_size=256, seed=0, layer=LAYER, holdout=0.25,
        buffer_videos=4,
    )  # fmt: skip
    return SaeSettings(**{**values, **changes})


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Twelve demo videos decoded for the demo VideoMAE, their targets and its features
    (two feature shards, as the workflow may write them)."""
    root = tmp_path_factory.mktemp("sae")
    stores = decode_all(root, generate_dataset(root / "demo", videos_per_event=2, seed=5))
    samples = str(root / "demo" / "samples.tsv")
    targets = str(root / "targets.tsv")
    scoring = TargetSettings("demo", "prob", "label")
    write_table(target_table(stores, scoring, samples, cpu(8)), targets, "%.9g")
    features = FeatureSettings(
        model="demo", layers=[1, LAYER], heads=["keys"], residual=True, dtype="float32",
        videos_per_job=8, precision="float32",
    )  # fmt: skip
    shards = [str(root / "features-0.zarr"), str(root / "features-1.zarr")]
    write_feature_store(stores[:8], shards[0], features, cpu(8))
    write_feature_store(stores[8:], shards[1], features, cpu(8))
    return root, stores, samples, targets, shards, str(root / "demo" / "ground_truth.zarr")


@pytest.fixture(scope="module")
def measured(demo):
    root, stores, samples, targets, shards, truth = demo
    saes = []
    for weight in (0.0, 1.0):
        saes.append(str(root / f"sae-{weight}.zarr"))
        sae("videomae", shards, train_settings(contrastive=weight), cpu(0), saes[-1], 50)
    tables = sae_metrics(
        "videomae", saes, stores, targets, samples, truth,
        TargetSettings("demo", "prob", "label"),
        SaeMetricsSettings(ablate_features=8, random_repeats=3, gallery_features=3,
                           gallery_videos=2, seed=0),
        cpu(8), root / "gallery.zarr",
    )  # fmt: skip
    return saes, tables, root / "gallery.zarr"


def test_trained_saes_reconstruct_held_out_videos_and_keep_the_model_working(measured):
    _, tables, _ = measured
    metrics = tables["metrics"].set_index("sae")
    for weight in ("0", "1"):
        trained = metrics.loc[f"layer3-k8-lambda{weight}"]
        untrained = metrics.loc[f"layer3-k8-lambda{weight}-untrained"]
        assert trained["explained_variance"] > 0.6
        assert trained["explained_variance"] > untrained["explained_variance"] + 0.3
        # the model still classifies with the layer replaced by the reconstruction
        assert trained["spliced_accuracy"] >= 0.75
        assert trained["dead_share"] < 0.5
    plain = metrics.loc["layer3-k8-lambda0"]
    assert metrics.loc["layer3-k8-lambda1", "plain_autocorrelation"] == pytest.approx(
        plain["autocorrelation"]
    )
    assert set(metrics["features"]) == {256}


def test_removing_the_most_predictive_features_hurts_more_than_random_ones(measured):
    _, tables, _ = measured
    ablation = tables["ablation"]
    assert set(ablation["removed"]) == {"top", "random"} and ablation["videos"].min() == 2
    by_kind = ablation.groupby(["sae", "removed"])["drop"].mean().unstack()
    assert (by_kind["top"] > by_kind["random"] + 0.02).all(), by_kind
    falls = ablation.groupby(["sae", "removed"])["probability_drop"].mean().unstack()
    assert (falls["top"] > falls["random"]).all(), falls


def test_feature_tables_and_gallery_match_the_saes(measured, demo):
    saes, tables, gallery = measured
    features = tables["features"]
    assert len(features) == 2 * 256
    roles = set(open_store(demo[5], "ground_truth").attrs["roles"])
    live = features[features["frequency"] > 0]
    assert set(live["role"]) <= roles and live["role_iou"].between(0, 1).all()
    store = open_store(gallery, "sae_gallery")
    assert store.attrs["saes"] == ["layer3-k8-lambda0", "layer3-k8-lambda1"]
    maps = store["maps-0"]
    assert maps.shape == (3, 2, 8, 6, 6) and (maps[...] >= 0).all() and maps[...].max() > 0
    # a feature's gallery videos are where it is strongest on average
    first = store.attrs["features"][0][0]
    strongest = store.attrs["videos"][0][0][0]
    group = open_sae(saes[0])
    assert strongest in range(len(group.attrs["video_ids"])) and first < 256
    # SAE store: its split, normalisation and a loadable model
    assert set(group.attrs["heldout_videos"]).isdisjoint(group.attrs["train_videos"])
    assert load_sae(group).n_features == 256


def test_holdout_split_is_seeded_and_refuses_too_few_videos():
    ids = [f"v{i}" for i in range(12)]
    train, held = holdout_split(ids, 0.25, 0)
    assert len(held) == 3 and sorted(train + held) == list(range(12))
    assert holdout_split(ids, 0.25, 0) == (train, held) != holdout_split(ids, 0.25, 1)
    with pytest.raises(ValueError, match="3 videos or more"):
        holdout_split(ids[:2], 0.25, 0)


def test_a_killed_sae_job_resumes_to_the_weights_of_an_uninterrupted_one(demo, tmp_path):
    shards = demo[4]
    settings = json.dumps(asdict(train_settings(contrastive=1.0, epochs=30)))

    def command(name: str) -> list[str]:
        return [
            sys.executable, "-m", "videoconcepts", "sae", "--name", "videomae",
            "--out", str(tmp_path / f"{name}.zarr"), "--history", str(tmp_path / f"{name}.tsv"),
            "--settings", settings, "--checkpoint-every", "50", "--device", "cpu",
            "--precision", "float32", "--threads", "1", *shards,
        ]  # fmt: skip

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = subprocess.Popen(command("killed"), env=env, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "killed.zarr.checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # past the first checkpoint, mid-way to the next
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL and checkpoint.exists()
    assert not (tmp_path / "killed.zarr").exists()  # nothing looks complete
    resumed = subprocess.run(command("killed"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr and not checkpoint.exists()
    threads = torch.get_num_threads()  # the command sets one thread, as the killed job had
    try:
        main(command("whole")[3:])  # uninterrupted, in this process (no start-up to pay)
    finally:
        torch.set_num_threads(threads)
    a, b = open_sae(tmp_path / "killed.zarr"), open_sae(tmp_path / "whole.zarr")
    for name in ("encoder", "decoder", "encoder_bias", "decoder_bias", "mean"):
        assert np.array_equal(a[name][...], b[name][...]), name
    history = [pd.read_csv(tmp_path / f"{n}.tsv", sep="\t") for n in ("killed", "whole")]
    pd.testing.assert_frame_equal(*history)
