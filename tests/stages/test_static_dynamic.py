"""The static_dynamic stage on real demo videos and their stylized copies: the trained
demo model against its random-weights control, a per-frame model whose pooled features
shuffling cannot change, and bad stylized copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
from helpers import cpu, decode_all

from videoconcepts.demo.synthetic import generate_dataset, write_mp4
from videoconcepts.methods.decoding import DecodeSettings
from videoconcepts.models.random_checkpoints import ENCODERS, LABELS
from videoconcepts.stages.static_dynamic import StaticDynamicSettings, static_dynamic
from videoconcepts.stages.targets import TargetSettings, target_table
from videoconcepts.stores.base import atomic_store, write_array, write_table
from videoconcepts.stores.static_dynamic import open_static_dynamic

LAYERS = [0, 1, 2, 3]
SCORING = TargetSettings("demo", "correctness", "label")


def settings(**overrides) -> StaticDynamicSettings:
    values = dict(
        layers=LAYERS, head_kind="keys", pairs=2, threshold=0.5, removal_layers=[3],
        removal_fractions=[0.25, 0.5], random_repeats=2, random_weights=True, seed=0,
    )  # fmt: skip
    return StaticDynamicSettings(**{**values, **overrides})


def concept_stores(root, layers, heads: int, head_dim: int) -> list[str]:
    """Planted concepts: three random directions per head and layer."""
    rng = np.random.default_rng(0)
    paths = []
    for layer in layers:
        paths.append(str(root / f"concepts-{layer}.zarr"))
        with atomic_store(paths[-1], "concepts", layer=layer) as group:
            write_array(
                group, "centroids", rng.normal(size=(heads, 3, head_dim)).astype(np.float32)
            )
            write_array(group, "n_concepts", np.full(heads, 3, np.int64))
    return paths


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Six demo videos with two stylized copies each, decoded for the demo model."""
    root = tmp_path_factory.mktemp("static_dynamic")
    table = generate_dataset(root / "demo", videos_per_event=1, seed=3, styles=2)
    decode = DecodeSettings(
        num_frames=16, frame_stride=2, clip_start="center", size=48, sampling="index", window=None
    )
    stores = decode_all(root, table, decode)
    samples = str(root / "demo" / "samples.tsv")
    targets = str(root / "targets.tsv")
    target_settings = TargetSettings("demo", "correctness", "label")
    write_table(target_table(stores, target_settings, samples, cpu(8)), targets, "%.9g")
    return root, table, stores, samples, targets


@pytest.fixture(scope="module")
def demo_run(demo):
    root, _, stores, samples, targets = demo
    out = root / "sd.zarr"
    tables = static_dynamic(
        "videomae", stores, concept_stores(root, LAYERS, 4, 16), targets, samples,
        TargetSettings("demo", "prob", "label"), settings(), cpu(16), out,
    )  # fmt: skip
    return tables, out


def test_trained_demo_model_is_order_sensitive_and_random_weights_are_not(demo_run):
    tables, out = demo_run
    versions = tables["versions"].set_index(["weights", "version"])["accuracy"]
    assert versions["trained", "original"] == 1.0
    assert versions["trained", "styled"] >= 0.8  # the demo's restyles stay in distribution
    assert versions["trained", "shuffled"] < 0.7  # the model needs the frame order
    assert versions["random", "original"] <= 0.5
    layers = tables["layers"].set_index(["weights", "layer", "factor"])
    # Shuffling frames changes the trained model's deepest features far more than a
    # random model's, whose pooled channels barely depend on the order.
    assert layers.loc[("random", 3, "static"), "S_F"] > 0.95
    assert (
        layers.loc[("trained", 3, "static"), "S_F"]
        < layers.loc[("random", 3, "static"), "S_F"] - 0.15
    )
    assert (layers.xs("identical", level="factor")["S_F"] == 1).all()
    units = tables["units"]
    residual = units[units["stream"] == "residual"]
    assert (
        residual[["static", "dynamic", "joint", "residual"]].sum(axis=1) == residual["units"]
    ).all()
    heads = units[units["stream"] == "heads"]
    assert len(heads) == 2 * len(LAYERS) * 4 and (heads["units"] == 16).all()
    assert len(tables["concepts"]) == len(LAYERS) * 4 * 3
    store = open_static_dynamic(out)
    assert store["trained_residual"].shape == (6, 7, len(LAYERS), 64)
    assert store["random_heads"].shape == (6, 7, len(LAYERS), 4, 16)
    assert store.attrs["versions"][1:3] == ["styled-1", "styled-2"]


def test_unit_removal_starts_at_the_unchanged_model_and_removes_equal_counts(demo_run):
    removal = demo_run[0]["removal"]
    assert set(removal["order"]) == {"static", "dynamic", "random"}
    start = removal[removal["fraction"] == 0]
    assert (start["accuracy"] == 1.0).all() and (start["units"] == 0).all()
    counts = removal.groupby("fraction")["units"].unique()
    assert [list(c) for c in counts] == [[0], [16], [32]]
    assert len(removal[removal["order"] == "random"]) == 2 * 3
    # Zeroing channels of the last block changes the target's probability.
    score = removal.groupby(["order", "fraction"])["score"].mean()
    assert (score.xs(0.5, level="fraction") != score.xs(0.0, level="fraction")).all()


@pytest.fixture(scope="module")
def tiny_timesformers(tmp_path_factory):
    """Random tiny TimeSformers of 4 frames (divided space-time attention) with random
    time embeddings (Hugging Face starts them at zero, and attention over frames without
    them is blind to their order), and the same made per-frame: time embeddings and each
    layer's temporal branch (its output projection) zeroed, which leaves each frame's
    tokens to spatial attention alone."""
    config = transformers.TimesformerConfig(
        image_size=32, patch_size=8, num_frames=4, **ENCODERS["tiny"], **LABELS
    )
    torch.manual_seed(0)
    model = transformers.TimesformerForVideoClassification(config)
    with torch.no_grad():
        model.timesformer.embeddings.time_embeddings.normal_()
    paths = {"temporal": tmp_path_factory.mktemp("temporal")}
    model.save_pretrained(paths["temporal"])
    with torch.no_grad():
        model.timesformer.embeddings.time_embeddings.zero_()
        for layer in model.timesformer.encoder.layer:
            layer.temporal_dense.weight.zero_()
            layer.temporal_dense.bias.zero_()
    paths["per_frame"] = tmp_path_factory.mktemp("per_frame")
    model.save_pretrained(paths["per_frame"])
    return paths


def test_a_per_frame_model_has_only_static_or_joint_units(demo, tiny_timesformers, tmp_path):
    """Shuffling frames leaves a per-frame model's pooled features unchanged (s_static = 1
    for every unit), so none of its units can be dynamic or residual; the same model with
    its temporal branch does change under shuffling. Restyled by the colour transform
    (no sample sheet)."""
    root, table, _, _, _ = demo
    decode = DecodeSettings(
        num_frames=4, frame_stride=8, clip_start="center", size=32, sampling="index", window=None
    )
    stores = decode_all(root, table, decode)
    targets = tmp_path / "targets.tsv"
    write_table(
        pd.DataFrame(
            {"video": table["id"], "label": "", "predicted": 0, "target": 0, "baseline": 0.0}
        ),
        targets,
    )
    s_static = {}
    for attention, checkpoint in tiny_timesformers.items():
        masking = TargetSettings(str(checkpoint), "prob", "label")
        tables = static_dynamic(
            attention, stores, concept_stores(tmp_path / attention, [0, 1], 4, 8), targets,
            None, masking, settings(layers=[0, 1], removal_layers=[1], random_weights=False),
            cpu(8), tmp_path / f"{attention}.zarr",
        )  # fmt: skip
        residual = tables["units"].query("stream == 'residual'")
        s_static[attention] = residual["S_static"].to_numpy()
        if attention == "per_frame":
            assert (residual[["dynamic", "residual"]] == 0).all().all()
    np.testing.assert_allclose(s_static["per_frame"], 1.0, atol=1e-4)
    assert s_static["temporal"].max() < 1 - 1e-3  # far outside the per-frame tolerance


@pytest.mark.parametrize(
    ("frames", "message"),
    [(20, "copy.mp4: too few frames"), (40, "copy.mp4: this stylized copy of .* samples")],
)
def test_a_stylized_copy_of_another_length_is_refused_by_name(demo, tmp_path, frames, message):
    root, table, stores, _, targets = demo
    short = tmp_path / "copy.mp4"
    write_mp4(short, np.zeros((frames, 64, 64, 3), np.uint8))
    sheet = table.assign(path=[str(root / "demo" / p) for p in table["path"]])
    sheet["styled"] = [str(short)] * len(sheet)
    sheet.to_csv(tmp_path / "samples.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match=message):
        static_dynamic(
            "videomae", stores, concept_stores(tmp_path, LAYERS, 4, 16), targets,
            str(tmp_path / "samples.tsv"), SCORING, settings(), cpu(16),
            tmp_path / "sd.zarr",
        )  # fmt: skip
    assert not (tmp_path / "sd.zarr").exists()


def test_copies_must_be_as_many_for_every_video(demo, tmp_path):
    root, table, stores, _, targets = demo
    sheet = table.assign(path=[str(root / "demo" / p) for p in table["path"]])
    sheet["styled"] = [
        ";".join(str(root / "demo" / p) for p in cell.split(";")[: 1 + (i % 2)])
        for i, cell in enumerate(table["styled"])
    ]
    sheet.to_csv(tmp_path / "samples.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="same number of stylized copies"):
        static_dynamic(
            "videomae", stores, concept_stores(tmp_path, LAYERS, 4, 16), targets,
            str(tmp_path / "samples.tsv"), SCORING, settings(), cpu(16),
            tmp_path / "sd.zarr",
        )  # fmt: skip
