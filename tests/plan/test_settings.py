import glob

import pytest
from helpers import defaults, model_view, tiny_config

from videoconcepts.plan.settings import (
    BY_MODEL,
    PAPER_PRUNING,
    analysed_layers,
    for_model,
    job_gpus,
    resolve_concepts,
    resolve_connectome,
    resolve_cris,
    resolve_curves,
    resolve_decode,
    resolve_head_masking,
    resolve_heads,
    resolve_masking,
    resolve_model_section,
    resolve_proposals,
    resolve_sae,
    settings_hash,
    shards,
)


def test_hash_ignores_key_order_but_not_values():
    a = {"num_frames": 16, "frame_stride": 2}
    assert settings_hash(a) == settings_hash(dict(reversed(a.items())))
    assert settings_hash(a) != settings_hash({"num_frames": 16, "frame_stride": 3})
    assert settings_hash({"x": [1, 2]}) != settings_hash({"x": [2, 1]})
    assert len(settings_hash(a)) == 8


def test_decode_defaults_come_from_the_model():
    config = {
        "model": {"checkpoint": "demo"},
        "decode": {
            "num_frames": None,
            "frame_stride": 2,
            "clip_start": "center",
            "size": None,
            "sampling": "index",
            "window": None,
        },
    }
    assert resolve_decode(config) == {
        "num_frames": 16,
        "frame_stride": 2,
        "clip_start": "center",
        "size": 48,
        "sampling": "index",
        "window": None,
    }
    # a window spreads frames over seconds: only with time sampling
    config["decode"]["window"] = 2.0
    with pytest.raises(ValueError, match="decode.window .* needs decode.sampling: time"):
        resolve_decode(config)
    config["decode"]["sampling"] = "time"
    assert resolve_decode(config)["window"] == 2.0
    config["decode"].update(sampling="index", window=None)
    config["decode"]["size"] = 48  # the model's own: accepted
    assert resolve_decode(config)["size"] == 48
    # position embeddings fix the input: anything else fails before any job runs
    config["decode"]["size"] = 96
    with pytest.raises(ValueError, match="decode.size is 96 but the model .* takes 48"):
        resolve_decode(config)
    config["decode"].update(size=None, num_frames=8)
    with pytest.raises(ValueError, match="decode.num_frames is 8 .* takes 16"):
        resolve_decode(config)


def test_shards_cover_every_id_once_in_sorted_order():
    ids = [f"v{i}" for i in (5, 3, 9, 1, 7)]
    parts = shards(ids, 2)
    assert parts == [["v1", "v3"], ["v5", "v7"], ["v9"]]


def test_proposal_settings_keep_only_what_the_method_uses():
    config = {
        "model": {"checkpoint": "demo"},
        "tubelets": {
            "method": "slic",
            "n_segments": 12,
            "compactness": None,
            "upsample": [2, 4, 4],
            "min_share": 0.01,
            "n_crops": 12,
            "seed": 0,
            "head_kind": "keys",
        },
    }
    slic = resolve_proposals(config)
    assert slic["compactness"] == 0.1  # VideoMAE's default
    assert "n_crops" not in slic and "seed" not in slic
    crops = resolve_proposals(config, "random_crops")
    assert crops["method"] == "random_crops" and "n_segments" not in crops
    config["tubelets"]["n_segments"] = 20
    assert resolve_proposals(config, "random_crops") == crops
    assert resolve_proposals(config) != slic
    config["tubelets"]["n_segments"] = None  # the demo models' own: 10
    assert resolve_proposals(config)["n_segments"] == 10


def test_elbow_threshold_is_kept_only_with_the_elbow_rule():
    concepts = {**defaults("concepts"), "elbow_threshold": 0.9}
    elbow = resolve_concepts({"concepts": {**concepts, "selection": "elbow"}})
    assert elbow["elbow_threshold"] == 0.9
    silhouette = {**concepts, "selection": "silhouette"}
    assert resolve_concepts({"concepts": silhouette})["elbow_threshold"] is None
    assert resolve_concepts({"concepts": silhouette}) == resolve_concepts(
        {"concepts": {**silhouette, "elbow_threshold": 0.5}}
    )


def test_concept_settings_hash_every_solver_setting_and_refuse_a_small_subsample():
    concepts = defaults("concepts")
    resolved = resolve_concepts({"concepts": concepts})
    # the device and the jobs' layout change no result
    assert set(resolved) == set(concepts) - {"device", "layers_per_job"}
    with pytest.raises(ValueError, match="fit_max_rows"):
        resolve_concepts({"concepts": {**concepts, "fit_max_rows": 13, "max_concepts": 14}})
    assert (
        resolve_concepts({"concepts": {**concepts, "fit_max_rows": None}})["fit_max_rows"] is None
    )


def test_layers_default_to_all_and_are_checked_against_the_model():
    config = {"model": {"checkpoint": "demo"}, "features": {"layers": None}}
    assert analysed_layers(config) == [0, 1, 2, 3]
    config["features"]["layers"] = [3, 1]
    assert analysed_layers(config) == [1, 3]
    config["features"]["layers"] = [2, 4]
    with pytest.raises(ValueError, match=r"features.layers \[4\] out of range"):
        analysed_layers(config)


def test_jobs_ask_for_a_gpu_only_where_their_device_will_use_one(monkeypatch):
    assert job_gpus("cpu") == 0
    assert job_gpus("cuda") == job_gpus("cuda:1") == 1
    nodes: list[str] = []
    monkeypatch.setattr(glob, "glob", lambda pattern: nodes)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert job_gpus("auto") == 0  # no GPU here: auto runs on the CPU
    nodes.append("/dev/nvidia0")
    assert job_gpus("auto") == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hidden from torch, so from us too
    assert job_gpus("auto") == 0
    assert job_gpus("cpu") == 0


def masking_config(mode: str, head_kind: str) -> dict:
    masking = {"mode": mode, "head_kind": head_kind, "metric": None, "target": "auto"}
    return {"model": {"checkpoint": "demo"}, "masking": masking}


def test_remove_mode_refuses_a_head_kind_it_would_ignore():
    model = resolve_model_section(masking_config("remove", "keys"))
    with pytest.raises(
        ValueError, match="masking.head_kind is 'values' but masking.mode is 'remove'"
    ):
        resolve_masking(masking_config("remove", "values"), model)
    assert resolve_masking(masking_config("zero", "values"), model)["head_kind"] == "values"


def test_heads_rank_and_prune_by_removing_whatever_the_configured_mode():
    """Heads share one folder across masking modes: they are always removed."""
    model = resolve_model_section(masking_config("remove", "keys"))
    remove = resolve_masking(masking_config("remove", "keys"), model)
    zero = resolve_masking(masking_config("zero", "values"), model)
    assert zero["mode"] == "zero"  # the concept units keep the configured mode
    assert resolve_head_masking(zero) == resolve_head_masking(remove) == remove


def test_null_model_dependent_settings_come_from_the_model_and_given_ones_win():
    config = {
        "model": {"checkpoint": "demo"},
        "cris": {
            "num_masks": None,
            "mask_ratio": 0.5,
            "seed": 0,
            "stop_when_stable": None,
            "shards": None,
        },
        "heads": {"num_masks": None},
        "curves": {"steps": None, "random_orders": 3, "seed": 0},
        "masking": {"threads": None},
    }
    config["cris"]["estimator"] = "regression"
    resolved = lambda: (  # noqa: E731
        resolve_cris(config)["num_masks"],
        resolve_heads(config)["num_masks"],
        resolve_curves(config)["steps"],
        for_model(config, "masking", "threads"),
        for_model(config, "cris", "shards"),
    )
    keys = [
        ("cris", "num_masks"),
        ("heads", "num_masks"),
        ("curves", "steps"),
        ("masking", "threads"),
        ("cris", "shards"),
    ]
    assert resolved() == tuple(BY_MODEL[key]["demo"] for key in keys) == (96, 48, 8, 1, 1)
    config["model"]["checkpoint"] = "MCG-NJU/videomae-base-finetuned-kinetics"
    assert resolved() == tuple(BY_MODEL[key]["default"] for key in keys) == (4000, 1024, 20, 2, 2)
    config["cris"]["num_masks"], config["heads"]["num_masks"] = 64, 32
    config["curves"]["steps"], config["masking"]["threads"] = 5, 3
    config["cris"]["shards"] = 4
    assert resolved() == (64, 32, 5, 3, 4)


def test_sae_trains_every_layer_k_and_lambda_and_plain_always_below_the_last_block():
    config = {
        "model": {"checkpoint": "demo"},
        "features": {"residual": True},
        "sae": {**defaults("sae"), "k": [16, 8], "contrastive": [1, 0.5]},
    }
    saes = resolve_sae(config, [0, 1, 2, 3])
    assert [(s["layer"], s["k"], s["contrastive"]) for s in saes] == [
        (2, 8, 0.0), (2, 8, 0.5), (2, 8, 1.0), (2, 16, 0.0), (2, 16, 0.5), (2, 16, 1.0),
    ]  # fmt: skip
    assert {s["epochs"] for s in saes} == {BY_MODEL[("sae", "epochs")]["demo"]}
    assert resolve_sae(config, [3])[0]["layer"] == 3  # nothing below the last block
    config["sae"]["layers"] = [1, 3]
    assert {s["layer"] for s in resolve_sae(config, [1, 3])} == {1, 3}
    with pytest.raises(ValueError, match=r"sae.layers \[3\] are not analysed"):
        resolve_sae(config, [0, 1])
    config["features"]["residual"] = False
    with pytest.raises(ValueError, match="features.residual: true"):
        resolve_sae(config, [1, 3])


def test_connectome_layers_pruning_and_random_sets_by_model():
    view = model_view(tiny_config(features={"layers": None}))
    resolved = resolve_connectome(view, [0, 1, 2, 3])
    assert resolved["layers"] == [1, 2, 3]  # layer 0's tokens are little more than patches
    assert resolved["pruning"]["A"] == -111 and resolved["random_sets"] == 10
    assert resolve_connectome(view, list(range(12)))["layers"] == [1, 4, 8, 11]
    assert resolve_connectome(view, [0, 1])["layers"] == [0, 1]
    with pytest.raises(ValueError, match="two analysed layers or more"):
        resolve_connectome(view, [3])
    view["connectome"]["layers"] = [1, 2]
    with pytest.raises(ValueError, match=r"connectome.layers \[2\] are not analysed layers"):
        resolve_connectome(view, [1, 3])
    view["connectome"]["layers"] = None
    view["features"]["residual"] = False
    with pytest.raises(ValueError, match="features.residual: true, or connectome.enabled"):
        resolve_connectome(view, [1, 3])
    hub = model_view(tiny_config(models={"m": {"checkpoint": "demo", "family": "videomae"}}))
    hub["model"]["checkpoint"] = "MCG-NJU/videomae-base"  # not a demo model: the paper's
    hub["connectome"]["compactness"] = 0.2  # (the family's would read the hub config)
    assert resolve_connectome(hub, [1, 3])["pruning"] == PAPER_PRUNING
