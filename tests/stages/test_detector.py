"""Straightening with labels and random weights, the detector stage and the detect
command, on demo videos and their manipulated variants with the shipped demo model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import cpu, decode_all

from videoconcepts.demo.synthetic import generate_dataset
from videoconcepts.jobclient import main
from videoconcepts.plan.samples import detection_labels
from videoconcepts.stages.detector import CV_COLUMNS, DetectorSettings, detector
from videoconcepts.stages.features import FeatureSettings, write_feature_store
from videoconcepts.stages.straightening import StraighteningSettings, straightening
from videoconcepts.stores.detector import load_detector, write_detector
from videoconcepts.stores.straightening import open_straightening

SETTINGS = DetectorSettings(
    folds=3, hidden=[16], max_iter=200, classifier="mlp", layer=None, seed=0
)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Six natural demo videos and their six manipulated variants, measured."""
    root = tmp_path_factory.mktemp("detector")
    generate_dataset(root / "demo", videos_per_event=1, seed=3, manipulated=True)
    sheet = root / "demo" / "detection.tsv"
    table = pd.read_csv(sheet, sep="\t")
    decoded = decode_all(root, table)
    features = FeatureSettings(
        model="demo", layers=[1, 3], heads=["keys"], residual=True, dtype="float32",
        videos_per_job=12, precision="float32",
    )  # fmt: skip
    shards = [str(root / "f0.zarr"), str(root / "f1.zarr")]
    write_feature_store(decoded[:6], shards[0], features, cpu(6))
    write_feature_store(decoded[6:], shards[1], features, cpu(6))
    labels = detection_labels(sheet, "label", "natural")
    out = root / "straightening.zarr"
    steps = straightening(
        "demo", shards, StraighteningSettings(5, 0, random_weights=True), out, labels, cpu(6)
    )
    return root, sheet, table, steps, str(out)


def test_straightening_labels_every_video_and_measures_random_weights_too(measured):
    _, _, table, steps, out = measured
    store = open_straightening(out)
    assert store.attrs["weights"] == ["pixels", "trained", "trained", "random", "random"]
    assert store.attrs["layers"] == [-1, 1, 3, 1, 3]
    assert store.attrs["labels"] == ["natural"] * 6 + ["generated"] * 6
    assert store.attrs["groups"] == list(table["group"])
    assert store["restrav"].shape == (12, 5, 21)
    # redrawn weights are another model: other trajectories at the same layers
    restrav = store["restrav"][...]
    assert not np.allclose(restrav[:, 1], restrav[:, 3], rtol=0.05)
    assert set(steps["label"]) == {"natural", "generated"} and len(steps) == 12 * 5


def test_the_detector_cross_validates_every_trajectory_and_fits_the_best_layer(measured):
    _, _, _, _, out = measured
    cv, scores, fitted = detector("demo", out, SETTINGS)
    assert list(cv.columns) == list(CV_COLUMNS)
    true = cv[cv["labels"] == "true"]
    trajectories = set(zip(true["weights"], true["layer"], strict=True))
    assert trajectories == {
        ("pixels", "-1"), ("trained", "1"), ("trained", "3"), ("trained", "all"),
        ("random", "1"), ("random", "3"), ("random", "all"),
    }  # fmt: skip
    assert (true.groupby(["weights", "layer", "classifier"]).size() == 3).all()
    assert cv[["auroc", "accuracy", "f1"]].stack().between(0, 1).all()
    # the fitted layer is the trained one with the best mean AUROC; only it has a null
    mlp = true[(true["weights"] == "trained") & (true["classifier"] == "mlp")]
    means = mlp[mlp["layer"] != "all"].groupby("layer")["auroc"].mean()
    assert fitted["layer"] == int(means.idxmax())
    shuffled = cv[cv["labels"] == "shuffled"]
    assert set(shuffled["layer"]) == {str(fitted["layer"])} and len(shuffled) == 3
    # out-of-fold scores: every labelled video once per trajectory and classifier
    assert (scores.groupby(["weights", "layer", "classifier"]).size() == 12).all()
    assert fitted["trained_on"] == [f"vid{i:04d}" for i in range(6)] + [
        f"vid{i:04d}-m" for i in range(6)
    ]
    # the choice cross-validated too: a row a fold with the layer that fold's training
    # part chose; the detector's AUROC is theirs, the chosen layer's own kept beside it
    selected = cv[cv["labels"] == "selected"]
    assert len(selected) == 3 and set(selected["layer"]) <= {"1", "3"}
    assert (selected["weights"] == "trained").all() and (selected["classifier"] == "mlp").all()
    assert fitted["cv_auroc"] == pytest.approx(selected["auroc"].mean())
    assert fitted["layer_cv_auroc"] == pytest.approx(means.max())
    forced_cv, _, forced = detector(
        "demo", out, DetectorSettings(**{**SETTINGS.__dict__, "layer": -1})
    )
    assert forced["layer"] == -1 and not (forced_cv["labels"] == "selected").any()
    assert forced["cv_auroc"] == forced["layer_cv_auroc"]


def test_detect_scores_videos_as_the_detector_scored_its_training_vectors(measured, tmp_path):
    root, _, table, _, out = measured
    _, _, fitted = detector("demo", out, SETTINGS)
    path = tmp_path / "detector.joblib"
    write_detector(fitted, path)
    videos = table.iloc[[0, 7]].assign(path=lambda t: [str(root / "demo" / p) for p in t["path"]])
    videos[["path", "id"]].to_csv(tmp_path / "videos.tsv", sep="\t", index=False)
    main(
        ["detect", "--detector", str(path), "--out", str(tmp_path / "scores.tsv"),
         "--device", "cpu", "--threads", "1", str(tmp_path / "videos.tsv")]
    )  # fmt: skip
    scores = pd.read_csv(tmp_path / "scores.tsv", sep="\t")
    assert scores["video"].tolist() == ["vid0000", "vid0001-m"]
    store = open_straightening(out)
    column = [
        j
        for j, (w, layer) in enumerate(
            zip(store.attrs["weights"], store.attrs["layers"], strict=True)
        )
        if w == "trained" and layer == fitted["layer"]
    ] or [0]
    vectors = store["restrav"][[0, 7], column[0]]
    expected = load_detector(path)["pipeline"].predict_proba(vectors)[:, 1]
    np.testing.assert_allclose(scores["score"], expected, atol=1e-4)
    assert (scores["generated"] == (scores["score"] >= 0.5)).all()


def test_bad_inputs_fail_by_name(measured, tmp_path):
    root, _, _, _, out = measured
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((root / "demo" / "videos" / "vid0000.mp4").read_bytes()[:3000])
    _, _, fitted = detector("demo", out, SETTINGS)
    write_detector(fitted, tmp_path / "d.joblib")
    scores = tmp_path / "scores.tsv"
    with pytest.raises(Exception, match="broken.mp4"):
        main(["detect", "--detector", str(tmp_path / "d.joblib"), "--out", str(scores),
              "--device", "cpu", "--threads", "1", str(broken)])  # fmt: skip
    assert not scores.exists()
    (tmp_path / "not.joblib").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not.joblib: not a fitted detector"):
        load_detector(tmp_path / "not.joblib")
    with pytest.raises(FileNotFoundError, match="missing.joblib: no such detector"):
        load_detector(tmp_path / "missing.joblib")
    one_class = tmp_path / "one.tsv"
    pd.DataFrame({"path": ["a.mp4", "b.mp4"], "label": ["natural", "natural"]}).to_csv(
        one_class, sep="\t", index=False
    )
    with pytest.raises(ValueError, match="needs natural videos .* and generated ones"):
        detection_labels(one_class, "label", "natural")
