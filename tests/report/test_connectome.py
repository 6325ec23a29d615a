"""The connectome report page: graphs, validation figures and tables from small synthetic
stage outputs (two classes, two layers) and decode stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from videoconcepts.report import connectome
from videoconcepts.report.page import Context, Inputs, ReportSettings
from videoconcepts.stores.base import atomic_store, write_array, write_table
from videoconcepts.stores.connectome import (
    EDGE_COLUMNS,
    FIDELITY_COLUMNS,
    KIND,
    LAYER_COLUMNS,
    NODE_COLUMNS,
    VALIDATION_COLUMNS,
)

LAYERS = (1, 3)
CLASSES = ("left", "right")


def frames_of(video: int) -> np.ndarray:
    """(4, 16, 16, 3) frames whose value encodes the video and frame: 40 v + 10 (t + 1)."""
    values = 40 * video + 10 * (np.arange(4) + 1)
    return np.broadcast_to(values[:, None, None, None], (4, 16, 16, 3)).astype(np.uint8)


def write_stage(root: Path, model: str) -> dict[str, list[str]]:
    """A connectome stage's outputs for one model: tables, store and decode stores.
    Segment row 0 (video 1, layer 1) covers the top-left quadrant at time step 1 only."""
    decode = []
    for v in range(2):
        decode.append(str(root / "decode" / f"vid{v}.zarr"))
        with atomic_store(decode[-1], "decode", status="ok", video_id=f"vid{v}") as group:
            write_array(group, "frames", frames_of(v))
    labels = {layer: np.zeros((2, 2, 4, 4), np.int16) for layer in LAYERS}
    labels[1][1, 1, :2, :2] = 1  # row 0
    labels[1][0, :, 2:, :] = 1  # row 1
    labels[3][0, :, :, :2] = 1  # row 2
    labels[3][1, :, :, 2:] = 1  # row 3
    store = root / f"{model}.zarr"
    attrs = {"model": model, "video_ids": ["vid0", "vid1"], "layers": list(LAYERS)}
    with atomic_store(store, KIND, **attrs, decode_stores=decode) as group:
        for layer, volume in labels.items():
            write_array(group, f"labels_{layer}", volume)
        write_array(group, "segment_video", np.array([1, 0, 0, 1]))
        write_array(group, "segment_layer", np.array([1, 1, 3, 3]))
        write_array(group, "segment_number", np.array([1, 1, 1, 1]))
    nodes, edges, layers, fidelity = [], [], [], []
    for c in CLASSES:
        for layer, (low, high) in zip(LAYERS, [(0, 1), (2, 3)], strict=True):
            for k, exemplar in enumerate((low, high)):
                aps, logit = 0.4 + 0.1 * k + 0.01 * layer, 3.0 * k - layer
                row = (model, c, f"L{layer}c{k}", layer, k, 2, 2, exemplar, aps, logit, logit / 2)
                nodes.append(row)
        for k in range(2):
            for j in range(2):
                weight = 0.9 if k == j else 0.2
                edges.append((model, c, f"L1c{k}", f"L3c{j}", 1, 3, weight, 0.5, 0.01, k == j))
            edges.append((model, c, f"L3c{k}", "class", 3, -1, 0.7, 0.5, np.nan, False))
        for layer in LAYERS:
            layers.append((model, c, layer, 4, 0.25, 2, 2, 0.5, 0.9))
        fidelity.append((model, c, -1, "none", 0, 0.0, 0.0, 1, 1.0, 5.0))
        for layer in LAYERS:
            for direction, drop in (("concept", 0.5), ("random", 0.1), ("mean", 0.3)):
                for factor in (1.0, 2.0):
                    accuracy = 1 - drop * factor / 2
                    row = (model, c, layer, direction, 0, factor, 10 * factor, 1, accuracy, 4.0)
                    fidelity.append(row)
    validation = [
        (model, "aps_logit_sum_pearson", 0.8765, 0.0123, 8),
        (model, "aps_logit_sum_spearman", 0.5, 0.2, 8),
        (model, "suppression_accuracy_area_gap", 0.2346, 0.031, 4),
    ]
    named = {f"{model}:connectome_store": [str(store)]}
    for name, rows, columns in (
        ("nodes", nodes, NODE_COLUMNS),
        ("edges", edges, EDGE_COLUMNS),
        ("layers", layers, LAYER_COLUMNS),
        ("fidelity", fidelity, FIDELITY_COLUMNS),
        ("validation", validation, VALIDATION_COLUMNS),
    ):
        path = root / f"{model}_connectome_{name}.tsv"
        write_table(pd.DataFrame(rows, columns=list(columns)), path)
        named[f"{model}:connectome_{name}"] = [str(path)]
    return named


def context(out: Path, named: dict[str, list[str]]) -> Context:
    (out / "figures").mkdir(parents=True)
    (out / "clips").mkdir()
    return Context(Inputs(named), ReportSettings(5, 3, 32, 8), {"models": {}}, out)


@pytest.fixture(scope="module")
def stage(tmp_path_factory) -> dict[str, list[str]]:
    return write_stage(tmp_path_factory.mktemp("connectome"), "m")


def test_the_page_draws_a_graph_per_class_and_shows_the_validation(stage, tmp_path):
    # model "other" ran without the connectome: it has no graph, and does not break the page
    named = {**stage, "other:units": ["unused"]}
    html = connectome.section(context(tmp_path, named))
    figures = tmp_path / "figures"
    for name in ("connectome-m-class000.png", "connectome-m-class001.png"):
        assert (figures / name).stat().st_size > 0 and f"figures/{name}" in html
    for name in ("connectome_suppression.png", "connectome_aps.png", "connectome_layers.png"):
        assert (figures / name).stat().st_size > 0 and f"figures/{name}" in html
    assert not list(figures.glob("connectome-other-*"))
    # a looping clip of every node's exemplar beside its class's graph
    nodes = pd.concat([pd.read_csv(p, sep="\t") for p in stage["m:connectome_nodes"]])
    for klass, node in zip(nodes["class"], nodes["node"], strict=True):
        index = list(dict.fromkeys(nodes["class"])).index(klass)
        clip = tmp_path / "clips" / f"connectome-m-class{index:03d}-{node}.webp"
        assert clip.stat().st_size > 0 and f"clips/{clip.name}" in html
    assert "0.8765" in html and "0.2346" in html  # the validation table
    assert 'id="connectome-layers"' in html
    card = connectome.card(context(tmp_path / "overview", named))
    assert "4 of 12 edges kept" in card and "area gap 0.235" in card
    assert "analyses/connectome/figures/connectome_suppression.png" in card


def test_no_model_with_the_connectome_gives_no_page(tmp_path):
    assert connectome.section(context(tmp_path, {"m:units": ["unused"]})) == ""


def test_an_exemplar_is_its_segment_on_a_frame_it_spans_the_rest_dimmed(stage):
    exemplars = connectome.Exemplars(stage["m:connectome_store"][0])
    image = exemplars.image(0, height=16)  # the frames' own size: no resampling
    # video 1, token time step 1 = frames 2 and 3: frame 3 (the middle of the step)
    inside = image[1:7, 1:7]  # inside the quadrant, clear of the outline
    assert image.shape == (16, 16, 3) and (inside == 40 + 10 * 4).all()
    assert (image[8:, 8:] == (40 + 10 * 4) // 4).all()  # outside: dimmed to a quarter


def test_rows_are_ordered_by_the_kept_edges_above_them():
    nodes = pd.DataFrame(
        {"node": ["L1c0", "L1c1", "L2c0", "L2c1"], "layer": [1, 1, 2, 2], "concept": [0, 1, 0, 1]}
    )
    edges = pd.DataFrame(
        {
            "source": ["L1c0", "L1c1", "L2c0", "L2c1", "L1c0"],
            "target": ["L2c1", "L2c0", "class", "class", "L2c0"],
            "weight": [0.9, 0.8, 0.5, 0.5, 0.9],
            "kept": ["True", "True", "False", "False", "False"],
        }
    )
    where = connectome.layout(nodes, edges, [1, 2])
    assert where["class"][1] > where["L2c0"][1] > where["L1c0"][1]
    assert where["L2c0"][0] < where["L2c1"][0]  # no kept edges: by concept number
    # L1c0 feeds L2c1 (right), L1c1 feeds L2c0 (left): the bottom row swaps to match
    assert where["L1c1"][0] < where["L1c0"][0]
