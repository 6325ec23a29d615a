"""Tubelets, concepts and validation stages on features whose content is known.

Features are built from the demo's ground truth: at each token, a fixed random embedding
of the role that covers it plus noise (head 0), or pure noise (head 1). SLIC tubelets on
head 0 then follow object boundaries, Convex NMF groups them by role, and the validation
table must show it.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from helpers import defaults, tubelet_settings
from skimage.transform import resize

from videoconcepts.demo.synthetic import generate_dataset
from videoconcepts.jobclient import main
from videoconcepts.methods.decoding import DecodeSettings
from videoconcepts.stages.concepts import ConceptSettings, write_concept_store
from videoconcepts.stages.decode import write_decode_store
from videoconcepts.stages.tubelets import write_tubelet_store
from videoconcepts.stages.validation import (
    ValidationSettings,
    crossfit_iou,
    role_masks_on_grid,
    validation_tables,
)
from videoconcepts.stores.base import atomic_store, open_store, write_array
from videoconcepts.stores.concepts import ConceptSupport, open_concepts
from videoconcepts.stores.decode import open_decoded
from videoconcepts.stores.tubelets import open_tubelets, tubelet_table

# the runtime options (device, job layout) are not concept settings
CONCEPTS = {k: v for k, v in defaults("concepts").items() if k not in ("device", "layers_per_job")}

GRID = (8, 8, 8)
CLIP = DecodeSettings(
    num_frames=16, frame_stride=2, clip_start="center", size=64, sampling="index", window=None
)


def role_features(truth, index: int, decoded, rng) -> np.ndarray:
    """(heads=2, T', H', W', C=8): head 0 encodes the role on each token, head 1 is noise."""
    masks = truth["masks"][index][:, decoded.attrs["sampled_indices"]].astype(np.float32)
    cover = np.stack([resize(m, GRID, order=1, anti_aliasing=True) for m in masks])
    cover = np.concatenate([np.clip(1 - cover.sum(0, keepdims=True), 0, 1), cover])
    codes = np.random.default_rng(123).normal(size=(len(cover), 8)) * 2
    signal = np.einsum("rthw,rc->thwc", cover, codes)
    noise = rng.normal(scale=0.1, size=(2, *GRID, 8))
    return (np.stack([signal, np.zeros_like(signal)]) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("concepts")
    table = generate_dataset(root / "demo", videos_per_event=2, seed=3)
    truth = open_store(root / "demo" / "ground_truth.zarr", "ground_truth")
    rng = np.random.default_rng(0)
    keys = []
    for i, video_id in enumerate(table["id"]):
        store = root / "decode" / f"{video_id}.zarr"
        write_decode_store(root / "demo" / table["path"][i], store, video_id, CLIP)
        keys.append(role_features(truth, i, open_decoded(store), rng))
    keys = np.stack(keys)[:, None]  # (V, L=1, heads, T', H', W', C)
    shards = []
    for s, rows in enumerate([slice(0, 7), slice(7, 12)]):
        shards.append(root / f"features-{s}.zarr")
        with atomic_store(
            shards[-1],
            "features",
            video_ids=list(table["id"][rows]),
            layers=[3],
            head_kinds=["keys"],
            grid=list(GRID),
        ) as group:
            write_array(group, "keys", keys[rows], chunks=(1, 1, *keys.shape[2:]))
    concepts = {}
    for method in ("slic", "random_crops"):  # crops matched to SLIC's counts (the default)
        settings = tubelet_settings(method=method, upsample=(2, 4, 4), n_segments=12)
        tubelets = []
        for s, shard in enumerate(shards):
            tubelets.append(root / f"tubelets-{method}-{s}.zarr")
            match = root / f"tubelets-slic-{s}.zarr" if method == "random_crops" else None
            write_tubelet_store(shard, 3, tubelets[-1], settings, match)
        concepts[method] = root / f"concepts-{method}.zarr"
        write_concept_store(
            tubelets, concepts[method], ConceptSettings(**{**CONCEPTS, "max_concepts": 8}), "auto"
        )
    best, scores = validation_tables(
        {m: [p] for m, p in concepts.items()},
        root / "demo" / "ground_truth.zarr",
        sorted((root / "decode").glob("*.zarr")),
        ValidationSettings(crossfit_splits=10, seed=0),
    )
    return {"root": root, "concepts": concepts, "best": best, "scores": scores, "truth": truth}


def test_tubelet_store_is_ragged_and_consistent(pipeline):
    store = open_tubelets(pipeline["root"] / "tubelets-slic-0.zarr")
    table = tubelet_table(store)
    labels = store["labels"]
    assert labels.shape == (7, 2, 16, 32, 32) and labels.chunks == (1, 1, 16, 32, 32)
    offsets = store["offsets"][...]
    assert offsets.shape == (7 * 2 + 1,) and offsets[-1] == len(table)
    assert store["descriptors"].shape == (len(table), 8)
    # rows of (video 2, head 1) are exactly the labels present in its volume
    rows = table.iloc[offsets[2 * 2 + 1] : offsets[2 * 2 + 2]]
    assert (rows["video"] == 2).all() and (rows["head"] == 1).all()
    volume = labels[2, 1]
    assert sorted(rows["label"]) == sorted(set(np.unique(volume)) - {0})
    assert rows["voxels"].sum() == (volume > 0).sum()
    assert table["video_id"].iloc[0] == store.attrs["video_ids"][0]
    assert (table["layer"] == 3).all()


def test_concept_assignment_and_support_masks(pipeline):
    concepts = open_concepts(pipeline["concepts"]["slic"])
    assignment = pd.DataFrame(
        concepts["assignment"][...], columns=concepts.attrs["assignment_columns"]
    )
    n_concepts = concepts["n_concepts"][...]
    assert assignment["video"].max() == 11  # global video index across both shards
    for head, k in enumerate(n_concepts):
        mine = assignment[assignment["head"] == head]
        assert mine["concept"].between(0, k - 1).all()
        counts = concepts["concept_counts"][head, :k]
        assert counts[:, 0].sum() == len(mine)
        assert (counts[:, 1] <= 12).all()
        assert np.isfinite(concepts["centroids"][head, :k]).all()
        assert np.isnan(concepts["centroids"][head, k:]).all()
    support = ConceptSupport(concepts)
    tubelets = open_tubelets(pipeline["root"] / "tubelets-slic-1.zarr")
    masks = support.masks(0, 9)  # video 9 is row 2 of the second shard
    labelled = tubelets["labels"][2, 0] > 0
    assert masks.shape[0] == n_concepts[0]
    np.testing.assert_array_equal(masks.sum(axis=0), labelled)  # a partition of tubelet voxels


def test_fits_record_how_each_head_was_fitted(pipeline, tmp_path):
    fits = open_concepts(pipeline["concepts"]["slic"]).attrs["fits"]
    for fit in fits:  # every head's tubelets fit under the default fit_max_rows
        assert fit["n_fit"] == fit["n_tubelets"] and not fit["subsampled"]
        assert fit["stop"] in ("tol", "stable", "max_iter")
        assert fit["converged"] == (fit["stop"] != "max_iter")
        assert 1 <= fit["n_iter"] <= CONCEPTS["max_iter"]
    tubelets = sorted(pipeline["root"].glob("tubelets-slic-*.zarr"))
    settings = ConceptSettings(**{**CONCEPTS, "max_concepts": 8, "fit_max_rows": 40})
    write_concept_store(tubelets, tmp_path / "sub.zarr", settings, "cpu")
    concepts = open_concepts(tmp_path / "sub.zarr")
    assignment = concepts["assignment"][...]
    for head, fit in enumerate(concepts.attrs["fits"]):
        assert fit["subsampled"] and fit["n_fit"] == 40 < fit["n_tubelets"]
        mine = assignment[assignment[:, 3] == head, 5]  # every tubelet still has a concept
        assert len(mine) == fit["n_tubelets"] and mine.min() >= 0
        assert mine.max() < fit["n_concepts"] == concepts["n_concepts"][head]


def test_validation_prefers_slic_on_objects(pipeline):
    best = pipeline["best"].set_index(["method", "role"])["mean_iou"]
    for role in ("target", "occluder", "container"):
        assert best[("slic", role)] > 2 * best[("random_crops", role)]
    assert best[("slic", "occluder")] > 0.6
    assert best[("slic", "target")] > 0.15  # a small moving disc against 12 segments
    # the best concepts come from the informative head
    slic = pipeline["best"][pipeline["best"]["method"] == "slic"]
    assert (slic.set_index("role").loc[["target", "occluder"], "head"] == 0).all()
    scores = pipeline["scores"]
    assert scores["mean_iou"].between(0, 1).all()


def test_matched_random_crops_have_slics_count_per_video_and_head(pipeline):
    for shard in (0, 1):
        slic, crops = (
            open_tubelets(pipeline["root"] / f"tubelets-{m}-{shard}.zarr")
            for m in ("slic", "random_crops")
        )
        counts = [np.diff(store["offsets"][...]) for store in (slic, crops)]
        np.testing.assert_array_equal(*counts)
        assert len(set(counts[0])) > 1  # SLIC's count varies, and the crops follow it
        assert crops.attrs["settings"]["n_crops"] == "matched"


def test_matched_random_crops_need_the_slic_store(pipeline, tmp_path):
    settings = tubelet_settings(method="random_crops", upsample=(2, 4, 4))
    features = pipeline["root"] / "features-0.zarr"
    with pytest.raises(ValueError, match="matched"):
        write_tubelet_store(features, 3, tmp_path / "t.zarr", settings)
    other = pipeline["root"] / "tubelets-slic-1.zarr"  # another shard's videos
    with pytest.raises(ValueError, match="video"):
        write_tubelet_store(features, 3, tmp_path / "t.zarr", settings, other)


def test_tubelets_command_writes_one_store_per_layer_as_the_function_does(pipeline, tmp_path):
    """The rule's command: matched crops for the listed layers, one --out and --match each;
    a count that does not match the layers is refused before anything is written."""
    root = pipeline["root"]
    settings = tubelet_settings(method="random_crops", upsample=(2, 4, 4))
    base = ["tubelets", "--features", str(root / "features-0.zarr"), "--layers", "3"]
    base += ["--settings", json.dumps(asdict(settings))]
    out, match = tmp_path / "t.zarr", root / "tubelets-slic-0.zarr"
    with pytest.raises(SystemExit, match="one --out"):
        main([*base, "--out", str(out), str(tmp_path / "u.zarr"), "--match", str(match)])
    assert not list(tmp_path.iterdir())
    main([*base, "--out", str(out), "--match", str(match)])
    written, expected = open_tubelets(out), open_tubelets(root / "tubelets-random_crops-0.zarr")
    assert np.array_equal(written["labels"][...], expected["labels"][...])
    assert np.array_equal(written["descriptors"][...], expected["descriptors"][...])


def test_validation_table_reports_in_sample_and_cross_fitted_iou(pipeline):
    best = pipeline["best"]
    assert {"mean_iou", "crossfit_iou"} <= set(best.columns)
    assert best["crossfit_iou"].between(0, 1).all()
    # choosing and scoring on the same videos can only flatter the chosen concept
    assert (best["crossfit_iou"] <= best["mean_iou"] + 1e-9).all()


def test_crossfit_scores_the_choice_on_held_out_videos():
    """Ten candidates of equal true IoU 0.3 plus noise and one truly better (0.5): the
    in-sample best is flattered by the noise, the cross-fitted score is not."""
    rng = np.random.default_rng(0)
    n_videos, rows = 30, []
    for concept in range(11):
        true = 0.5 if concept == 10 else 0.3
        for video in range(n_videos):
            iou = true + rng.normal(0, 0.3)
            rows.append(("slic", "target", 3, 0, concept, f"v{video}", iou))
            rows.append(("slic", "noise", 3, 0, concept, f"v{video}", 0.3 + rng.normal(0, 0.3)))
    per_video = pd.DataFrame(
        rows, columns=["method", "role", "layer", "head", "concept", "video", "iou"]
    )
    crossfit = crossfit_iou(per_video, splits=20, seed=0)
    in_sample = per_video.groupby(["method", "role", "concept"])["iou"].mean()
    assert abs(crossfit[("slic", "target")] - 0.5) < 0.06  # the better one is found
    assert in_sample.loc[("slic", "noise")].max() > 0.38  # the noise's best looks good
    assert abs(crossfit[("slic", "noise")] - 0.3) < 0.05  # but scores 0.3 held out
    assert crossfit_iou(per_video, splits=20, seed=0).equals(crossfit)  # seeded


def test_role_masks_follow_sampling_and_crop(pipeline, tmp_path):
    root = pipeline["root"]
    truth = pipeline["truth"]
    decoded = open_decoded(root / "decode" / "vid0000.zarr")
    on_grid = role_masks_on_grid(truth, "vid0000", decoded, (16, 64, 64))
    frames = truth["masks"][0][:, decoded.attrs["sampled_indices"]].astype(bool)
    np.testing.assert_array_equal(on_grid, frames)  # identity grid: exactly the sampled frames


def test_shard_with_every_video_skipped_gives_an_empty_complete_store(tmp_path):
    with atomic_store(
        tmp_path / "f.zarr",
        "features",
        video_ids=[],
        layers=[0],
        head_kinds=["keys"],
        grid=[2, 4, 4],
    ) as group:
        write_array(group, "keys", np.zeros((0, 1, 2, 2, 4, 4, 8), np.float32))
    assert write_tubelet_store(tmp_path / "f.zarr", 0, tmp_path / "t.zarr", tubelet_settings()) == 0
    store = open_tubelets(tmp_path / "t.zarr")
    assert store["descriptors"].shape == (0, 8) and list(store["offsets"][...]) == [0]
    assert tubelet_table(store).empty
    with pytest.raises(ValueError, match=r"layer 1 not captured \(have \[0\]\)"):
        write_tubelet_store(tmp_path / "f.zarr", 1, tmp_path / "u.zarr", tubelet_settings())
