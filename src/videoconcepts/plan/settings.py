"""Resolve each stage's settings from the workflow config and name its output folder.

Hyperparameters that change a stage's results go into a short hash in that stage's
output path, so earlier variants stay on disk and switching back reuses them. The
resolved values are also written into each store's attributes. No torch here: the
Snakefile imports this at parse time.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import asdict
from typing import Any

from videoconcepts.plan.checkpoints import DEMO_CHECKPOINTS
from videoconcepts.plan.families import FAMILIES, ModelSpec, class_names, model_facts, resolve_model


def settings_hash(settings: dict[str, Any]) -> str:
    """Eight hex digits naming a resolved settings dict (key order does not matter)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def job_gpus(device: str) -> int:
    """GPUs a job running on ``device`` asks the scheduler for (its ``gpu`` resource).

    ``cuda`` and ``cuda:N`` ask for one, ``cpu`` for none. ``auto`` asks for one when
    the machine parsing the workflow shows an NVIDIA GPU (a ``/dev/nvidia<N>`` node that
    ``CUDA_VISIBLE_DEVICES`` does not hide), judged without torch because this runs at
    parse time. On a cluster that machine is the submit host, so ``auto`` on a login
    node without a GPU asks for none and the job runs on whatever node it gets.
    """
    if device == "cpu":
        return 0
    if device.startswith("cuda"):
        return 1
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1")
    return int(not hidden and bool(glob.glob("/dev/nvidia[0-9]*")))


# Sections one model of a run may override (``models.<name>.<section>``): every stage's.
STAGE_SECTIONS = (
    "decode",
    "features",
    "tubelets",
    "concepts",
    "validation",
    "masking",
    "cris",
    "curves",
    "heads",
    "straightening",
    "detector",
    "static_dynamic",
    "connectome",
    "sae",
)


def model_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each model's view of the run's config: ``model`` its own section (family,
    checkpoint, family options) and every stage section with the model's overrides laid
    over the run's, so each ``resolve_*`` below works per model unchanged."""
    views = {}
    for name, section in config["models"].items():
        shared = sorted(set(section.get("detector", {})) & set(DETECTOR_RUN_KEYS))
        if shared:
            raise ValueError(
                f"models.{name}.detector sets {', '.join(shared)}: the detector's videos "
                "and classes are the run's; set them in the top-level detector section"
            )
        view = {key: value for key, value in config.items() if key != "models"}
        for stage in STAGE_SECTIONS:
            view[stage] = {**config[stage], **section.get(stage, {})}
        view["model"] = {k: v for k, v in section.items() if k not in STAGE_SECTIONS}
        views[name] = view
    return views


def resolve_model_section(config: dict[str, Any], labels: list[str] | None = None) -> dict:
    """The ``model`` section resolved against its checkpoint (family, defaults)."""
    return asdict(resolve_model(config["model"], labels))


def resolve_decode(config: dict[str, Any]) -> dict[str, Any]:
    """Decode settings with the model's own input size and clip length filled in.

    Position embeddings fix a model's clip length and input side, so other values
    are refused here, before any job runs.
    """
    decode = config["decode"]
    facts = model_facts(config["model"])
    for key, expected in (("num_frames", facts["num_frames"]), ("size", facts["size"])):
        if decode.get(key) not in (None, expected):
            raise ValueError(
                f"decode.{key} is {decode[key]} but the model ({facts['family']}, "
                f"{config['model']['checkpoint']}) takes {expected}; leave decode.{key} "
                "unset to use the model's own"
            )
    if decode["window"] is not None and decode["sampling"] != "time":
        raise ValueError(
            f"decode.window ({decode['window']} s) spreads the frames over time: it needs "
            "decode.sampling: time"
        )
    if decode["window"] is not None and facts["num_frames"] < 2:
        raise ValueError("decode.window needs a clip of 2 frames or more")
    return {
        "num_frames": facts["num_frames"],
        "frame_stride": decode["frame_stride"],
        "clip_start": decode["clip_start"],
        "size": facts["size"],
        "sampling": decode["sampling"],
        "window": decode["window"],
    }


def decode_naming(config: dict[str, Any]) -> dict[str, Any]:
    """What names the decode stores' folder (and the report shows): the frames' settings
    and the videos a decode job takes (the stores lie in a folder per job, and a new
    layout must not overwrite the old)."""
    return {**resolve_decode(config), "videos_per_job": config["decode"]["videos_per_job"]}


def resolve_features(config: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """Feature settings that shape the stored results (batch size, device, threads do not).

    ``model`` is the resolved model section (:func:`resolve_model_section`).
    """
    features = config["features"]
    return {
        "model": model,
        "layers": sorted(features["layers"]) if features.get("layers") else None,
        "heads": list(features["heads"]),
        "residual": features["residual"],
        "dtype": features["dtype"],
        "videos_per_job": for_model(config, "features", "videos_per_job"),
        "precision": features["precision"],
    }


def shards(ids: list[str], per_job: int) -> list[list[str]]:
    """Split sorted video ids into consecutive groups of at most ``per_job``."""
    ordered = sorted(ids)
    return [ordered[i : i + per_job] for i in range(0, len(ordered), per_job)]


def analysed_layers(config: dict[str, Any]) -> list[int]:
    """Model layers the features stage captures (all when unset), checked against the model."""
    n_layers = model_facts(config["model"])["num_layers"]
    layers = config["features"].get("layers")
    if not layers:
        return list(range(n_layers))
    bad = [layer for layer in layers if layer >= n_layers]
    if bad:
        raise ValueError(
            f"features.layers {bad} out of range: the model has {n_layers} layers (0-based)"
        )
    return sorted(layers)


def resolve_proposals(config: dict[str, Any], method: str | None = None) -> dict[str, Any]:
    """Tubelet settings the method uses (``method`` overrides the configured one).

    Only the method's own parameters are kept, so tuning the random crops leaves SLIC's
    outputs valid, and so does tuning SLIC for crops of a fixed count. Crops matched to
    SLIC's counts carry SLIC's settings hash (``matched_to``): tuning SLIC names new crops.
    """
    tubelets = config["tubelets"]
    method = method or tubelets["method"]
    resolved = {
        "method": method,
        "upsample": list(tubelets["upsample"]),
        "min_share": tubelets["min_share"],
        "head_kind": tubelets["head_kind"],
    }
    if method == "slic":
        compactness = tubelets.get("compactness")
        if compactness is None:
            compactness = model_facts(config["model"])["compactness"]
        n_segments = for_model(config, "tubelets", "n_segments")
        resolved.update(n_segments=n_segments, compactness=compactness)
    else:
        resolved.update(n_crops=tubelets["n_crops"], seed=tubelets["seed"])
        if tubelets["n_crops"] == "matched":
            resolved["matched_to"] = settings_hash(resolve_proposals(config, "slic"))
    return resolved


def resolve_concepts(config: dict[str, Any]) -> dict[str, Any]:
    """Concept settings; the elbow threshold only with the elbow rule, so tuning it leaves
    silhouette runs valid."""
    concepts = config["concepts"]
    keys = (
        "max_concepts",
        "selection",
        "max_iter",
        "tol",
        "max_relaxation",
        "stable_iters",
        "dtype",
        "fit_max_rows",
        "seed",
    )
    fit_max_rows = concepts["fit_max_rows"]
    if fit_max_rows is not None and fit_max_rows < concepts["max_concepts"]:
        raise ValueError(
            f"concepts.fit_max_rows ({fit_max_rows}) is below concepts.max_concepts "
            f"({concepts['max_concepts']}): a subsample must hold a tubelet per concept"
        )
    elbow = concepts["selection"] == "elbow"
    threshold = concepts["elbow_threshold"] if elbow else None
    return {**{key: concepts[key] for key in keys}, "elbow_threshold": threshold}


# Defaults that depend on the model, taken where the config leaves the key null: the
# paper's settings for real models, smaller ones for the tiny demo model, whose demo must
# run in 2 minutes on 2 cores (docs/BENCHMARKS.md, "The demo's time").
# - CRIS masks: the paper's 4,000. The demo's 96 keep every fidelity check of its three
#   models (CRIS beats occlusion and random in both orders, as at 128) at a less settled
#   ranking (Spearman 0.76 to 0.86 against 128's); see docs/ARCHITECTURE.md, "Choosing
#   the defaults".
# - Head-CRIS masks: about 7 per head for a ViT-B's 144 heads, 4 per head for the demo's 16
#   (64: with three demo models the demo stays within 3 minutes).
# - Curve steps: 10 for the demo (its areas moved by 0.01 at most against 20).
# - Threads: one-thread model jobs ran the demo in 1 min 53 s, two-thread ones in 2 min
#   17 s: they run beside the single-threaded tubelet and concept jobs.
# - SAE training: 6 epochs at step 0.003 for a demo model (width 64): explained variance
#   0.82 on held-out videos in about 1 s, against 0.83 for 10 epochs and 0.81 for 20 at
#   0.001 (4.7 s), the contrastive term's gain in coherence kept; a wider model takes the
#   smaller step (Adam's steps do not shrink with the width).
# - Job layout: the demo's 18 videos in one feature shard, and every layer of a demo
#   model in one concepts job (64 is more than it has): a start-up outweighs their work.
# Eq. 5.5's constants as the paper gives them (paper 002, §5.3.2).
PAPER_PRUNING = {"A": -102, "K": 115, "C": 1, "Q": 1, "B": 0.0004, "nu": 1}

BY_MODEL: dict[tuple[str, str], dict[str, Any]] = {
    # skimage seeds SLIC on a grid of the upsampled volume: 12 seeds made about 8
    # tubelets a (video, head) on the 64-px demo models' 16x32x32 volumes and 16 on the
    # 48-px ones' 16x24x24 (Convex NMF's work grows with their square); 10 makes 6.4.
    ("tubelets", "n_segments"): {"demo": 10, "default": 12},
    ("cris", "num_masks"): {"demo": 96, "default": 4000},
    ("cris", "shards"): {"demo": 1, "default": 2},
    ("heads", "num_masks"): {"demo": 48, "default": 1024},
    ("curves", "steps"): {"demo": 8, "default": 20},
    ("features", "threads"): {"demo": 1, "default": 2},
    ("masking", "threads"): {"demo": 1, "default": 2},
    ("features", "videos_per_job"): {"demo": 32, "default": 16},
    ("concepts", "layers_per_job"): {"demo": 64, "default": 1},
    ("sae", "epochs"): {"demo": 6, "default": 20},
    ("sae", "learning_rate"): {"demo": 0.003, "default": 0.001},
    # The demo's connectomes within its time: fewer random sets, segments a parent and
    # suppression strengths (docs/BENCHMARKS.md).
    ("connectome", "random_sets"): {"demo": 10, "default": 20},
    ("connectome", "max_segments"): {"demo": 2, "default": 3},
    ("connectome", "eps"): {"demo": [1.0, 2.0], "default": [0.5, 1.0, 2.0]},
    # The demo's classes have three videos each, a few dozen segments per layer: with the
    # paper's pruning (a concept needs 7 segments or more) its top layers keep one concept.
    ("connectome", "pruning"): {"demo": {**PAPER_PRUNING, "A": -111}, "default": PAPER_PRUNING},
}


def for_model(config: dict[str, Any], section: str, key: str) -> Any:
    """``section.key``, or when null the model's entry in ``BY_MODEL`` ("demo" for every
    shipped demo model)."""
    given = config[section].get(key)
    if given is not None:
        return given
    table = BY_MODEL[(section, key)]
    demo = config["model"]["checkpoint"] in DEMO_CHECKPOINTS
    return table["demo" if demo else "default"]


def resolve_masking(config: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """How units are masked and scored; shared by CRIS, occlusion, curves and heads.

    The metric defaults to the family's own (target class for classifiers, text
    similarity for video-text models, reconstruction for self-supervised VideoMAE).
    """
    masking = config["masking"]
    family = FAMILIES[model["family"]]
    metric = masking.get("metric") or family.default_metric
    if metric not in family.metrics:
        raise ValueError(
            f"masking.metric {metric!r} does not apply to {family.name} models "
            f"(use one of: {', '.join(family.metrics)})"
        )
    if masking["mode"] == "remove" and masking["head_kind"] != "keys":
        raise ValueError(
            f"masking.head_kind is {masking['head_kind']!r} but masking.mode is 'remove', "
            "which takes masked tokens out of attention as keys whatever the head kind; "
            "masking.head_kind only applies to masking.mode: zero (set that, or leave "
            "masking.head_kind at keys)"
        )
    target = masking["target"] if family.has_classes else "none"
    return {
        "model": model,
        "metric": metric,
        "target": target,
        **{key: masking[key] for key in ("mode", "head_kind")},
    }


def resolve_head_masking(masking: dict[str, Any]) -> dict[str, Any]:
    """The heads stage's masking settings: always ``remove`` on keys, whatever the
    configured mode (which the concept units keep).

    Pruning a head removes it (its output is zero), and the heads are ranked under the
    same intervention, so the ranking estimates what the pruning curve then does;
    ``zero`` on all of a head's keys would leave it averaging its values instead. It
    also keeps the heads' folder when only the concepts' masking mode changes.
    """
    return {**masking, "mode": "remove", "head_kind": "keys"}


def check_targets(masking: dict[str, Any], labels: list[str]) -> None:
    """Refuse, before any job runs, targets the model cannot score: a fixed target or a
    sample-sheet label that is not one of its classes (names or indices)."""
    if masking["target"] in ("none", "predicted"):
        return
    names = class_names(ModelSpec(**masking["model"]))
    known = set(names) | {str(i) for i in range(len(names))}
    fixed = masking["target"] not in ("auto", "label")
    wanted = [str(masking["target"])] if fixed else sorted({label for label in labels if label})
    unknown = [name for name in wanted if name not in known]
    if unknown:
        source = "masking.target" if fixed else "sample sheet labels"
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise ValueError(
            f"{source} {unknown[:5]} are not classes of the model "
            f"({masking['model']['checkpoint']}: {shown})"
        )


def resolve_targets(masking: dict[str, Any]) -> dict[str, Any]:
    """What the targets stage needs of the masking settings: model, metric, target rule."""
    return {key: masking[key] for key in ("model", "metric", "target")}


def resolve_cris(config: dict[str, Any]) -> dict[str, Any]:
    cris = config["cris"]
    return {
        "num_masks": for_model(config, "cris", "num_masks"),
        **{key: cris[key] for key in ("mask_ratio", "seed", "stop_when_stable", "estimator")},
    }


def resolve_cris_gather(config: dict[str, Any]) -> dict[str, Any]:
    """The gather's settings: the shards' CRIS settings and its own video bootstrap, which
    names the gather's folder only, so changing it reruns no CRIS shard."""
    return {**resolve_cris(config), "video_bootstrap": config["cris"]["video_bootstrap"]}


def resolve_validation(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config["validation"])


def resolve_curves(config: dict[str, Any]) -> dict[str, Any]:
    return {**config["curves"], "steps": for_model(config, "curves", "steps")}


def resolve_heads(config: dict[str, Any]) -> dict[str, Any]:
    return {**config["heads"], "num_masks": for_model(config, "heads", "num_masks")}


def resolve_rosetta(config: dict[str, Any]) -> dict[str, Any]:
    """Rosetta's settings; ``enabled`` decides whether the stage runs, not what it finds."""
    return {key: value for key, value in config["rosetta"].items() if key != "enabled"}


def resolve_straightening(config: dict[str, Any]) -> dict[str, Any]:
    """The stage's settings; ``enabled`` decides whether it runs, not what it finds."""
    straightening = config["straightening"]
    if straightening["enabled"] and not config["features"]["residual"]:
        raise ValueError(
            "straightening needs the residual tokens: set features.residual: true, or "
            "straightening.enabled: false"
        )
    return {key: value for key, value in straightening.items() if key != "enabled"}


# The detector's settings that belong to the run (its videos and their classes), not a model.
DETECTOR_RUN_KEYS = ("samples", "column", "natural", "score")


def resolve_detector(config: dict[str, Any]) -> dict[str, Any]:
    """The detector's own settings (``enabled`` and the run's keys apart)."""
    skip = ("enabled", *DETECTOR_RUN_KEYS)
    return {key: value for key, value in config["detector"].items() if key not in skip}


def resolve_static_dynamic(config: dict[str, Any], layers: list[int]) -> dict[str, Any]:
    """The stage's settings over the analysed ``layers``: its units are the concepts'
    head features (tubelets.head_kind) and the residual stream; removal at the last
    analysed layer unless ``removal_layers`` names others."""
    section = config["static_dynamic"]
    removal = sorted(section["removal_layers"] or layers[-1:])
    bad = [layer for layer in removal if layer not in layers]
    if bad:
        raise ValueError(
            f"static_dynamic.removal_layers {bad} are not analysed layers (features.layers: "
            f"{layers})"
        )
    kept = ("pairs", "threshold", "removal_fractions", "random_repeats", "random_weights", "seed")
    return {
        "layers": layers,
        "head_kind": config["tubelets"]["head_kind"],
        **{key: section[key] for key in kept},
        "removal_layers": removal,
    }


def resolve_connectome(config: dict[str, Any], layers: list[int]) -> dict[str, Any]:
    """The connectome's settings over the analysed ``layers``; unset layers are up to
    four of them evenly spaced up to the last (the paper's four-layer connectomes),
    leaving out layer 0, whose tokens are little more than their patches."""
    section = config["connectome"]
    if section["enabled"] and not config["features"]["residual"]:
        raise ValueError(
            "connectome segments the residual tokens: set features.residual: true, or "
            "connectome.enabled: false"
        )
    chosen = section["layers"]
    if chosen is None:
        above = [layer for layer in layers if layer > 0]
        above = above if len(above) >= 2 else layers
        n, last = min(4, len(above)), len(above) - 1
        chosen = {above[last - int(i * last / max(1, n - 1) + 0.5)] for i in range(n)}
    bad = sorted(set(chosen) - set(layers))
    if bad:
        raise ValueError(
            f"connectome.layers {bad} are not analysed layers (features.layers: {layers})"
        )
    if section["enabled"] and len(set(chosen)) < 2:
        raise ValueError(f"connectome needs two analysed layers or more, got {sorted(chosen)}")
    compactness = section["compactness"] or model_facts(config["model"])["compactness"]
    kept = (
        "min_tokens",
        "clusters",
        "cav_alpha",
        "alpha",
        "fidelity_concepts",
        "seed",
    )
    return {
        "layers": sorted(chosen),
        "compactness": compactness,
        "pruning": for_model(config, "connectome", "pruning"),
        "random_sets": for_model(config, "connectome", "random_sets"),
        "eps": sorted(for_model(config, "connectome", "eps")),
        "max_segments": for_model(config, "connectome", "max_segments"),
        **{key: section[key] for key in kept},
    }


# The training settings of one SAE (``stages.sae.SaeSettings``); the section's lists (k,
# contrastive, layers) pick which SAEs are trained, the rest is shared by all of them.
SAE_TRAINING = (
    "expansion",
    "matryoshka_groups",
    "temperature",
    "batch_size",
    "holdout",
    "buffer_videos",
    "seed",
)
SAE_MEASURES = ("ablate_features", "random_repeats", "gallery_features", "gallery_videos", "seed")


def resolve_sae(config: dict[str, Any], layers: list[int]) -> list[dict[str, Any]]:
    """One training settings dict per SAE: every (layer, k, lambda), lambda 0 (the plain
    SAE, the baseline of the coherence comparison) always among them. ``layers`` are the
    analysed layers; the section's null picks the deepest one before the model's last
    block: a classifier that reads its CLS token out of the last block never sees an edit
    of that block's patch tokens, so the causal ablation there would measure nothing."""
    section = config["sae"]
    if section["enabled"] and not config["features"]["residual"]:
        raise ValueError(
            "sae trains on the residual tokens: set features.residual: true, or sae.enabled: false"
        )
    last = model_facts(config["model"])["num_layers"] - 1
    below = [layer for layer in layers if layer < last]
    chosen = sorted(section["layers"] or (below or layers)[-1:])
    bad = [layer for layer in chosen if layer not in layers]
    if bad:
        raise ValueError(f"sae.layers {bad} are not analysed layers (features.layers: {layers})")
    lambdas = sorted({0.0, *map(float, section["contrastive"])})
    shared = {key: section[key] for key in SAE_TRAINING}
    for key in ("epochs", "learning_rate"):
        shared[key] = for_model(config, "sae", key)
    return [
        {"layer": layer, "k": k, "contrastive": weight, **shared}
        for layer in chosen
        for k in sorted(section["k"])
        for weight in lambdas
    ]


def resolve_sae_metrics(config: dict[str, Any]) -> dict[str, Any]:
    """The measures' own settings (the SAEs they read name their folder too)."""
    return {key: config["sae"][key] for key in SAE_MEASURES}


def resolve_report(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config["report"])
