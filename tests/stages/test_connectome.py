"""The connectome stage on six demo videos and the trained demo VideoMAE: nested segments
shown alone, graphs that match the tables, edges only where the method puts them, and
the fidelity check starting at the unchanged model."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from helpers import cpu, decode_all

from videoconcepts.demo.synthetic import generate_dataset
from videoconcepts.models import load_adapter
from videoconcepts.stages.connectome import (
    ConnectomeSettings,
    blanked,
    connectome,
    safe_name,
    validation,
)
from videoconcepts.stages.features import FeatureSettings, write_feature_store
from videoconcepts.stages.targets import TargetSettings, target_table
from videoconcepts.stores.base import write_table
from videoconcepts.stores.connectome import FIDELITY_COLUMNS, open_connectome

LAYERS = [1, 2, 3]
SETTINGS = ConnectomeSettings(
    layers=LAYERS, max_segments=3, min_tokens=8, compactness=0.1, clusters=25,
    pruning={"A": -111, "K": 115, "C": 1, "Q": 1, "B": 0.0004, "nu": 1}, random_sets=4,
    cav_alpha=0.01, alpha=0.05, eps=[1.0, 2.0], fidelity_concepts=1, seed=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Six demo videos in two classes (three each, by their targets), their features
    and the stage's outputs."""
    root = tmp_path_factory.mktemp("connectome")
    stores = decode_all(root, generate_dataset(root / "demo", videos_per_event=1, seed=4))
    targets = target_table(stores, TargetSettings("demo", "logit", "predicted"), None, cpu(8))
    targets["target"] = [0, 0, 0, 1, 1, 1]
    write_table(targets, root / "targets.tsv", "%.9g")
    features = FeatureSettings(
        model="demo", layers=LAYERS, heads=["keys"], residual=True, dtype="float32",
        videos_per_job=6, precision="float32",
    )  # fmt: skip
    write_feature_store(stores, root / "features.zarr", features, cpu(8))
    tables = connectome(
        "videomae", [root / "features.zarr"], root / "targets.tsv",
        TargetSettings("demo", "correctness", "label"), SETTINGS, cpu(16),
        root / "connectome.zarr", root / "graphs",
    )  # fmt: skip
    return root, tables, targets


def test_segments_nest_top_down_and_each_is_shown_alone(run):
    root, _, _ = run
    store = open_connectome(root / "connectome.zarr")
    video, layer = store["segment_video"][...], store["segment_layer"][...]
    number, parent = store["segment_number"][...], store["segment_parent"][...]
    labels = {lay: store[f"labels_{lay}"][...] for lay in LAYERS}
    assert set(layer) == set(LAYERS) and set(video) == set(range(6))
    for s in range(len(video)):
        mask = labels[layer[s]][video[s]] == number[s]
        assert mask.sum() >= SETTINGS.min_tokens
        if layer[s] == LAYERS[-1]:
            assert parent[s] == -1
        else:  # inside its parent, one selected layer up
            assert layer[parent[s]] == LAYERS[LAYERS.index(layer[s]) + 1]
            assert video[parent[s]] == video[s]
            assert np.all(labels[layer[parent[s]]][video[s]][mask] == number[parent[s]])
    frames = np.arange(16 * 8 * 8 * 3, dtype=np.uint8).reshape(16, 8, 8, 3)
    tokens = np.zeros((8, 2, 2), bool)
    tokens[3, 1, 0] = True  # frames 6-7, rows 4-7, columns 0-3
    shown = blanked(frames, tokens, np.array([1, 2, 3]))
    assert np.array_equal(shown[6:8, 4:, :4], frames[6:8, 4:, :4])
    outside = np.ones((16, 8, 8), bool)
    outside[6:8, 4:, :4] = False
    assert np.all(shown[outside] == [1, 2, 3])


def test_graphs_match_the_tables_and_edges_join_adjacent_layers_only(run):
    root, tables, _ = run
    nodes, edges = tables["nodes"], tables["edges"]
    assert len(nodes) > 0 and set(nodes["layer"]) <= set(LAYERS)
    steps = {(lower, upper) for lower, upper in zip(LAYERS[:-1], LAYERS[1:], strict=True)}
    steps.add((LAYERS[-1], -1))  # the top layer into the class node
    assert set(zip(edges["source_layer"], edges["target_layer"], strict=True)) <= steps
    assert edges["weight"].between(0, 1).all() and edges["null_weight"].between(0, 1).all()
    assert (edges["kept"] == (edges["p_value"] < SETTINGS.alpha)).all()
    for c in ("moves_right", "moves_left"):
        graph = nx.read_graphml(root / "graphs" / f"{safe_name(c)}.graphml")
        mine = nodes[nodes["class"] == c]
        assert set(graph.nodes) == {*mine["node"], "class"}
        assert graph.number_of_edges() == (edges["class"] == c).sum()
        # every layer's concepts are tested against every concept one layer up
        counts = mine.groupby("layer").size().reindex(LAYERS, fill_value=0).to_numpy()
        assert graph.number_of_edges() == (counts[:-1] * counts[1:]).sum() + counts[-1]
    # a node's APS is the mean edge weight of its paths: the top's is its class edge
    top = nodes[nodes["layer"] == LAYERS[-1]].merge(
        edges[edges["target"] == "class"], left_on=["class", "node"], right_on=["class", "source"]
    )
    assert len(top) > 0 and np.allclose(top["aps"], top["weight"])


def test_suppression_starts_at_the_unchanged_model_and_is_scored_per_class(run):
    _, tables, targets = run
    fidelity = tables["fidelity"]
    adapter = load_adapter("demo", "cpu", "float32")
    names = adapter.class_names
    for target, c in ((0, names[0]), (1, names[1])):
        none = fidelity[(fidelity["class"] == c) & (fidelity["direction"] == "none")]
        assert len(none) == 1 and none["eps"].iloc[0] == 0
        rows = targets[targets["target"] == target]
        assert none["accuracy"].iloc[0] == pytest.approx((rows["predicted"] == target).mean())
        moved = fidelity[(fidelity["class"] == c) & (fidelity["direction"] != "none")]
        assert set(moved["eps_factor"]) <= set(SETTINGS.eps)
        assert set(moved["direction"]) == {"concept", "random", "mean"}
        # one mean-token control per layer with a concept, at every eps
        mean = moved[moved["direction"] == "mean"]
        assert len(mean) == len(set(moved["layer"])) * len(SETTINGS.eps)
    checks = tables["validation"].set_index("check")
    assert {
        "aps_logit_sum_pearson",
        "suppression_accuracy_area_gap",
        "suppression_accuracy_area_gap_mean_token",
    } <= set(checks.index)
    assert isinstance(tables["layers"], pd.DataFrame) and len(tables["layers"]) == 2 * len(LAYERS)


def test_suppression_gaps_compare_each_concept_with_random_and_with_the_mean_token():
    """Planted curves: accuracy 1 - drop * eps / 2 at eps 1 and 2, so a curve's area is
    1 - drop / 2. Concepts drop 0.5, random directions 0.1; the mean token drops as much
    as the concepts in one model and 0.2 in the other."""
    nodes = pd.DataFrame({"class": ["a"] * 3, "aps": [1.0, 2.0, 3.0], "logit_sum": [1, 3, 2]})

    def table(mean_drop: float) -> pd.DataFrame:
        rows = [("m", "a", -1, "none", 0, 0.0, 0.0, 4, 1.0, 0.0)]
        for layer in (1, 3):
            curves = [("concept", r, 0.5) for r in range(2)] + [
                ("random", r, 0.1) for r in range(2)
            ]
            for direction, repeat, drop in [*curves, ("mean", 0, mean_drop)]:
                for eps in (1.0, 2.0):
                    rows.append(
                        ("m", "a", layer, direction, repeat, eps, eps, 4, 1 - drop * eps / 2, 0.0)
                    )
        return pd.DataFrame(rows, columns=FIDELITY_COLUMNS)

    for mean_drop, expected in ((0.5, 0.0), (0.2, 0.15)):
        checks = validation("m", nodes, table(mean_drop)).set_index("check")
        random_gap = checks.loc["suppression_accuracy_area_gap"]
        mean_gap = checks.loc["suppression_accuracy_area_gap_mean_token"]
        assert random_gap["value"] == pytest.approx(0.2) and random_gap["n"] == 4
        # every concept is paired with its class and layer's one mean-token curve
        assert mean_gap["value"] == pytest.approx(expected) and mean_gap["n"] == 4
