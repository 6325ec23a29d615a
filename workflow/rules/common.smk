import json
import os
import re
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from videoconcepts.plan.checkpoints import MissingCheckpointError, checkpoint_files
from videoconcepts.plan.samples import (
    GENERATED,
    NATURAL,
    SampleSheetError,
    load_detection,
    load_samples,
    styled_paths,
)
from videoconcepts.plan.settings import (
    decode_naming,
    analysed_layers,
    resolve_targets,
    check_targets,
    for_model,
    job_gpus,
    model_configs,
    resolve_concepts,
    resolve_cris,
    resolve_cris_gather,
    resolve_curves,
    resolve_detector,
    resolve_head_masking,
    resolve_validation,
    resolve_heads,
    resolve_masking,
    resolve_report,
    resolve_rosetta,
    resolve_straightening,
    resolve_static_dynamic,
    resolve_connectome,
    resolve_sae,
    resolve_sae_metrics,
    resolve_proposals,
    resolve_decode,
    resolve_features,
    resolve_model_section,
    settings_hash,
    shards,
)
from videoconcepts.plan.sources import stage_sources
from videoconcepts.demo import (
    dataset_ids,
    manipulated_id,
    manipulated_path,
    styled_path,
)

min_version("9.0")


envvars:
    "PATH",


# Jobs call the `videoconcepts` command; without a conda env the one installed next to
# the interpreter running Snakemake is used, so an un-activated venv works too.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

SCHEMA = "../schemas/config.schema.yaml"
if "model" in config:
    raise WorkflowError(
        "config: the `model:` section is now `models:`, a mapping from a short name to "
        "a model section (one entry for one model), e.g.\n  models:\n    mymodel:\n"
        "      checkpoint: MCG-NJU/videomae-base-finetuned-kinetics"
    )
validate(config, SCHEMA, set_default=True)

RESULTS = config["results"]
ENV = "../../envs/videoconcepts.yaml"
DEMO = config["samples"] == "demo"
# Each model's view of the config: its section as `model`, its stage overrides applied.
MODEL_CONFIGS = model_configs(config)
DEMO_DIR = f"{RESULTS}/demo_data/n{config['demo']['videos_per_event']}-seed{config['demo']['seed']}"


def _load_samples() -> pd.DataFrame:
    if DEMO:
        ids = dataset_ids(config["demo"]["videos_per_event"])
        paths = [f"{DEMO_DIR}/videos/{i}.mp4" for i in ids]
        styles = range(1, config["demo"]["styles"] + 1)
        styled = [
            ";".join(f"{DEMO_DIR}/{styled_path(i, k)}" for k in styles) for i in ids
        ]
        return pd.DataFrame({"id": ids, "path": paths, "label": "", "styled": styled})
    # With on_bad_video: skip a missing file is not an error here: its decode job (see
    # video_input) writes a skip record for it, like for any other unusable video.
    try:
        return load_samples(
            config["samples"],
            check_files=all(
                view["decode"]["on_bad_video"] == "fail"
                for view in MODEL_CONFIGS.values()
            ),
        )
    except SampleSheetError as err:
        raise WorkflowError(f"bad sample source: {err}") from None


SAMPLES = _load_samples()
validate(SAMPLES, "../schemas/samples.schema.yaml", set_default=False)  # each row
SAMPLES = SAMPLES.set_index("id", drop=False)
LABELS_OF_SAMPLES = list(SAMPLES["label"].fillna("").astype(str))
# A sample sheet with labels (the demo's own, or the user's file) gives the targets.
if DEMO:
    LABELS = [f"{DEMO_DIR}/samples.tsv"]
else:
    LABELS = [config["samples"]] if Path(config["samples"]).is_file() else []
REPORT_SETTINGS = resolve_report(config)


def _load_detection() -> tuple[pd.DataFrame | None, str | None]:
    """The videos straightening and the detector measure beside the run's own, marked
    natural or generated (columns id, path, label, group), and the sheet that marks them: the
    demo's natural and manipulated scenes, or detector.samples; (None, None) without."""
    section = config["detector"]
    if DEMO:
        if not config["demo"]["manipulated"]:
            return None, None
        ids = dataset_ids(config["demo"]["videos_per_event"])
        table = pd.DataFrame(
            {
                "id": ids + [manipulated_id(i) for i in ids],
                "path": [f"{DEMO_DIR}/videos/{i}.mp4" for i in ids]
                + [f"{DEMO_DIR}/{manipulated_path(i)}" for i in ids],
                "label": [NATURAL] * len(ids) + [GENERATED] * len(ids),
                "group": ids + ids,
            }
        )
        return table, f"{DEMO_DIR}/detection.tsv"
    if section["samples"] is None:
        return None, None
    column, natural = section["column"], section["natural"]
    try:
        table = load_detection(section["samples"], column, natural)
    except SampleSheetError as err:
        raise WorkflowError(f"bad detector.samples: {err}") from None
    paths = table.set_index("id")["path"]
    known = SAMPLES.loc[SAMPLES.index.intersection(paths.index), "path"]
    moved = [i for i in known.index if known[i] != paths[i]]
    if moved:
        raise WorkflowError(
            f"detector.samples ({section['samples']}) gives other files than the run's "
            f"samples for the ids {', '.join(moved[:10])}: one id, one video"
        )
    return table[["id", "path", "label", "group"]], section["samples"]


DETECTION, DETECTION_SHEET = _load_detection()
# Videos only straightening and the detector measure (decoded and captured like the rest).
EXTRA = (
    DETECTION[~DETECTION["id"].isin(SAMPLES.index)].set_index("id", drop=False)
    if DETECTION is not None
    else SAMPLES.iloc[:0]
)
VIDEOS = pd.concat([SAMPLES["path"], EXTRA["path"]])
# The detection sheet's classes as the stages read them (the demo's sheet: label, natural).
DETECTION_CLASSES = (
    ("label", "natural")
    if DEMO
    else (config["detector"]["column"], config["detector"]["natural"])
)
# What the detection sheet adds to straightening's folder name: its videos and classes.
DETECTION_NAMING = (
    {
        "videos": dict(zip(DETECTION["id"], DETECTION["label"], strict=True)),
        "classes": DETECTION_CLASSES,
    }
    if DETECTION is not None
    else None
)


def plan_model(name: str, view: dict) -> SimpleNamespace:
    """One model's resolved settings and output folder names (tags).

    Every stage writes below results/<stage>/<tag>/, its tag the model's name and the
    hashes of its own settings and of everything upstream; decode stores carry no name,
    so models that sample clips identically share them.
    """
    m = SimpleNamespace(name=name, config=view)
    # The model is resolved against its checkpoint before any job runs: a missing
    # checkpoint, a family mismatch or an input size it cannot take stops here.
    m.checkpoint_files = checkpoint_files(view["model"]["checkpoint"])
    m.model = resolve_model_section(view, LABELS_OF_SAMPLES)
    m.decode = resolve_decode(view)
    m.masking = resolve_masking(view, m.model)
    m.concepts = resolve_concepts(view)
    check_targets(m.masking, [] if DEMO else LABELS_OF_SAMPLES)
    m.features = resolve_features(view, m.model)
    if view["tubelets"]["head_kind"] not in view["features"]["heads"]:
        raise ValueError(
            f"tubelets.head_kind={view['tubelets']['head_kind']!r} is not captured: add "
            f"it to features.heads (now {view['features']['heads']})"
        )
    m.decode_naming = decode_naming(view)
    m.decode_hash = settings_hash(m.decode_naming)
    m.features_tag = f"{name}-{m.decode_hash}-{settings_hash(m.features)}"
    m.shards = shards(list(SAMPLES.index), m.features["videos_per_job"])
    m.layers = analysed_layers(view)
    # Concepts jobs each fit a group of consecutive layers (a runtime layout: the stores
    # are per layer either way); the group names the job's folder.
    per_job = for_model(view, "concepts", "layers_per_job")
    m.concept_groups = {}
    for start in range(0, len(m.layers), per_job):
        group = m.layers[start : start + per_job]
        last = f"-{group[-1]:02d}" if len(group) > 1 else ""
        m.concept_groups[f"layers-{group[0]:02d}{last}"] = group
    # Tubelets of both methods: the configured one, and the other for the demo's concept
    # validation (SLIC vs. the random-crop baseline).
    m.proposals = {
        method: resolve_proposals(view, method) for method in ("slic", "random_crops")
    }
    m.method = view["tubelets"]["method"]
    concepts_hash = settings_hash(m.concepts)
    m.tubelets_tags = {
        method: f"{m.features_tag}-{settings_hash(p)}"
        for method, p in m.proposals.items()
    }
    m.concepts_tags = {
        method: f"{tag}-{concepts_hash}" for method, tag in m.tubelets_tags.items()
    }
    m.concepts_tag = m.concepts_tags[m.method]
    m.validation = resolve_validation(view)
    hashes = "-".join(settings_hash(m.proposals[k]) for k in ("slic", "random_crops"))
    m.validation_tag = (
        f"{m.features_tag}-{hashes}-{concepts_hash}-{settings_hash(m.validation)}"
    )
    # Importance: masking (shared), targets, CRIS, curves and heads each name their own folder.
    masking_hash = settings_hash(m.masking)
    m.targets = resolve_targets(m.masking)
    m.targets_tag = f"{name}-{m.decode_hash}-{settings_hash(m.targets)}"
    m.cris = resolve_cris(view)
    m.gather = resolve_cris_gather(view)
    m.curves = resolve_curves(view)
    m.heads = resolve_heads(view)
    # Heads are always ranked and pruned by removing them, whatever the concepts' mode.
    m.head_masking = resolve_head_masking(m.masking)
    m.cris_shards = for_model(view, "cris", "shards")
    # CRIS shard contents depend on the shard count and the masks per batch, so both name
    # the folder. The gathered tables do not, but named so too, switching the layout back
    # finds them instead of rerunning the gather, the curves and the report.
    layout = f"shards-{m.cris_shards}x{view['masking']['masks_per_batch']}"
    m.cris_tag = f"{m.concepts_tag}-{masking_hash}-{settings_hash(m.cris)}/{layout}"
    # The gather's own settings (the video bootstrap) name its folder only: a new
    # bootstrap count writes new tables and reruns no shard.
    m.gather_tag = f"{m.cris_tag}-{settings_hash(m.gather)}"
    m.occlusion_tag = f"{m.concepts_tag}-{masking_hash}"
    m.curves_tag = f"{m.gather_tag}-{settings_hash(m.curves)}"
    m.heads_tag = f"{name}-{m.decode_hash}-{settings_hash(m.head_masking)}-{settings_hash(m.heads)}"
    # Straightening reads the feature stores, also of the detection sheet's other videos
    # (their shards numbered after the run's): named by them, the sheet's classes and its
    # own settings. The detector by the straightening it reads and its own settings.
    m.straightening_on = view["straightening"]["enabled"]
    m.straightening = resolve_straightening(view)
    m.extra_shards = (
        shards(list(EXTRA.index), m.features["videos_per_job"])
        if m.straightening_on and len(EXTRA)
        else []
    )
    m.straightening_tag = f"{m.features_tag}-{settings_hash({**m.straightening, 'detection': DETECTION_NAMING})}"
    m.detector_on = (
        m.straightening_on and view["detector"]["enabled"] and DETECTION is not None
    )
    m.detector = resolve_detector(view)
    if m.detector_on:  # a fold needs videos of both classes and whole groups
        smallest = DETECTION["label"].value_counts().min()
        groups = DETECTION["group"].nunique()
        if min(smallest, groups) < m.detector["folds"]:
            raise ValueError(
                f"detector.folds is {m.detector['folds']} but the detection sheet has "
                f"{smallest} videos in its smaller class and {groups} groups; lower "
                "detector.folds or add videos"
            )
    m.detector_tag = f"{m.straightening_tag}-{settings_hash(m.detector)}"
    # Static/dynamic runs the model on its own restyled and shuffled clips: named by the
    # concepts it scores, the targets it removes units against, and its own settings.
    m.static_dynamic_on = view["static_dynamic"]["enabled"]
    m.static_dynamic = resolve_static_dynamic(view, m.layers)
    m.static_dynamic_tag = (
        f"{m.concepts_tag}-{settings_hash(m.targets)}-{settings_hash(m.static_dynamic)}"
    )
    # Connectomes segment the run's feature stores and score the targets: named by them
    # and their own settings.
    m.connectome_on = view["connectome"]["enabled"]
    m.connectome = resolve_connectome(view, m.layers)
    m.connectome_tag = (
        f"{m.features_tag}-{settings_hash(m.targets)}-{settings_hash(m.connectome)}"
    )
    # SAEs train on the feature stores: each named by them and its own settings. Their
    # measures by the SAEs they read, the targets they score against and their own.
    m.sae_on = view["sae"]["enabled"]
    m.saes = resolve_sae(view, m.layers) if m.sae_on else []
    m.sae_tags = [f"{m.features_tag}-{settings_hash(s)}" for s in m.saes]
    m.sae_metrics = resolve_sae_metrics(view)
    sae_hash = settings_hash(
        {"saes": m.sae_tags, "targets": m.targets, **m.sae_metrics}
    )
    m.sae_metrics_tag = f"{name}-{sae_hash}"
    m.sae_every = view["sae"]["checkpoint_every"]
    # CPU threads of the model-running jobs (runtime options, never hashed).
    m.feature_threads = for_model(view, "features", "threads")
    m.masking_threads = for_model(view, "masking", "threads")
    return m


MODELS = {}
for _name, _view in MODEL_CONFIGS.items():
    try:
        validate(
            {
                **{k: v for k, v in _view.items() if k != "model"},
                "models": config["models"],
            },
            SCHEMA,
        )
        MODELS[_name] = plan_model(_name, _view)
    except MissingCheckpointError as err:
        raise WorkflowError(f"models.{_name}.checkpoint: {err}") from None
    except (ValueError, WorkflowError) as err:
        raise WorkflowError(f"models.{_name}: {err}") from None


def tag_index(attribute: str) -> dict:
    """Tag -> (model, method) over every model, for a stage whose tag is per method (a
    dict attribute), else tag -> (model, None)."""
    index = {}
    for m in MODELS.values():
        value = getattr(m, attribute)
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for method, tag in items:
            index[tag] = (m, method)
    return index


# Each rule's folder is one wildcard, the stage's tag, constrained to this run's tags;
# a job finds its model (and tubelet method) by it.
TAGS = {
    # models sampling clips alike share the first one's decode stores and job options
    # (on_bad_video, backend)
    "decode": {m.decode_hash: (m, None) for m in reversed(MODELS.values())},
    "features": tag_index("features_tag"),
    "tubelets": tag_index("tubelets_tags"),
    "concepts": tag_index("concepts_tags"),
    "validation": tag_index("validation_tag"),
    "units": tag_index("concepts_tag"),
    "targets": tag_index("targets_tag"),
    "cris": tag_index("cris_tag"),
    "cris_gather": tag_index("gather_tag"),
    "occlusion": tag_index("occlusion_tag"),
    "curves": tag_index("curves_tag"),
    "heads": tag_index("heads_tag"),
    "straightening": {
        m.straightening_tag: (m, None) for m in MODELS.values() if m.straightening_on
    },
    "detector": {m.detector_tag: (m, None) for m in MODELS.values() if m.detector_on},
    "static_dynamic": {
        m.static_dynamic_tag: (m, None) for m in MODELS.values() if m.static_dynamic_on
    },
    "connectome": {
        m.connectome_tag: (m, None) for m in MODELS.values() if m.connectome_on
    },
    # an SAE's tag gives its model and its position in the model's list of SAEs
    "sae": {tag: (m, i) for m in MODELS.values() for i, tag in enumerate(m.sae_tags)},
    "sae_metrics": {m.sae_metrics_tag: (m, None) for m in MODELS.values() if m.sae_on},
}


def job_of(stage: str, wildcards) -> tuple:
    """(model plan, tubelet method or None) of a job of ``stage``, by its tag wildcard."""
    return TAGS[stage][getattr(wildcards, stage)]


def model_of(stage: str):
    """The model plan of a job of ``stage``, as a function of the wildcards."""
    return lambda wildcards: job_of(stage, wildcards)[0]


wildcard_constraints:
    **{stage: "|".join(map(re.escape, tags)) for stage, tags in TAGS.items()},
    shard="[0-9]{3}",
    scored="[0-9a-f]{8}",
    cris_shard="[0-9]{3}",
    group="layers-[0-9]{2}(-[0-9]{2})?",


def code(stage: str) -> list[str]:
    """Package files the rule's `videoconcepts <stage>` command runs (the stage module and
    all it imports), as inputs: editing one reruns the rule and everything downstream.
    """
    return stage_sources(f"stages.{stage}")


# Scheduling. Snakemake's greedy scheduler starts ready jobs by priority, then by the
# size of their inputs: at equal priority the analyses that read every decoded clip
# (heads, connectome, SAEs, static/dynamic) went first and the VTCD chain (tubelets to
# curves, the run's longest path of jobs) last, so one core idled at the end while the
# last model's CRIS and curves ran. The chain goes first; the other analyses fill the
# cores around it. Within it, CRIS shards before occlusion (the gather waits for the
# last shard), and each model's gather and curves, its last jobs, as soon as they can.
# Straightening and the detector go with the chain: they need only the feature shards,
# and left for last a detector (up to 9 s on the demo, with its layer choice nested)
# kept one core idle before the report.
CHAIN = [
    "features",
    "targets",
    "tubelets",
    "concepts",
    "validation",
    "units",
    "occlusion",
]
PRIORITY = {
    **dict.fromkeys(CHAIN, 1),
    "cris": 2,
    "cris_gather": 3,
    "curves": 3,
    "straightening": 1,
    "detector": 1,
}


# Logs and benchmarks mirror the output paths.
def log_path(stage: str, name: str) -> str:
    return f"{RESULTS}/logs/{stage}/{name}.log"


def benchmark_path(stage: str, name: str) -> str:
    return f"{RESULTS}/benchmarks/{stage}/{name}.tsv"


def shard_videos(wildcards) -> list[str]:
    """The ids of the videos a decode job decodes."""
    return DECODE_SHARDS[wildcards.decode][int(wildcards.shard)]


def video_inputs(wildcards) -> list[str]:
    """The decode job's videos as its inputs, without a listed file that is missing
    (possible only with on_bad_video: skip): the job records its skip. The demo's videos
    are made by the demo_data rule."""
    paths = [VIDEOS[video] for video in shard_videos(wildcards)]
    return [p for p in paths if DEMO or Path(p).is_file()]


def decode_shards(per_job: int) -> list[list[str]]:
    """The videos each decode job decodes, ``per_job`` at a time: the run's, then the
    detection sheet's others. A video costs no job of its own: a job's start took longer
    than a demo video (0.1 CPU-seconds)."""
    return shards(list(SAMPLES.index), per_job) + shards(list(EXTRA.index), per_job)


# Decode hash -> each decode job's videos (models sharing a hash share videos_per_job, hashed
# into it), and -> video -> the folder of the job that writes its store.
DECODE_SHARDS = {
    m.decode_hash: decode_shards(m.config["decode"]["videos_per_job"])
    for m in MODELS.values()
}
DECODE_DIRS = {
    decode_hash: {
        video: f"{RESULTS}/decode/{decode_hash}/shard-{i:03d}"
        for i, shard in enumerate(groups)
        for video in shard
    }
    for decode_hash, groups in DECODE_SHARDS.items()
}


def decode_store(m, video: str) -> str:
    return f"{DECODE_DIRS[m.decode_hash][video]}/{video}.zarr"


def decode_stores(m, videos=None) -> list[str]:
    """The decode stores of ``videos`` (the run's samples by default), for a command line."""
    return [
        decode_store(m, video)
        for video in (SAMPLES.index if videos is None else videos)
    ]


def decode_dirs(m, videos=None) -> list[str]:
    """The folders of the decode jobs that write ``videos``' stores (the run's samples by
    default): the inputs of a rule whose command reads the stores inside."""
    ids = SAMPLES.index if videos is None else videos
    return sorted({DECODE_DIRS[m.decode_hash][video] for video in ids})


def skipped_table(m) -> str:
    return f"{RESULTS}/skipped/{m.decode_hash}/skipped.tsv"


def feature_store(m, shard) -> str:
    return f"{RESULTS}/features/{m.features_tag}/shard-{shard}.zarr"


def feature_stores(m) -> list[str]:
    """The feature stores of the run's videos."""
    return [feature_store(m, f"{i:03d}") for i in range(len(m.shards))]


def extra_feature_stores(m) -> list[str]:
    """The feature stores of the detection sheet's other videos (after the run's)."""
    first = len(m.shards)
    return [feature_store(m, f"{first + i:03d}") for i in range(len(m.extra_shards))]


def shard_samples(wildcards) -> list[str]:
    """The ids of the videos a features job captures."""
    m = model_of("features")(wildcards)
    return [*m.shards, *m.extra_shards][int(wildcards.shard)]


def tubelet_dir(m, method: str, shard) -> str:
    """One tubelets job's folder: a store per analysed layer, ``layer-NN.zarr``."""
    return f"{RESULTS}/tubelets/{m.tubelets_tags[method]}/shard-{shard}"


def tubelet_dirs(m, method: str) -> list[str]:
    """Every shard's tubelets folder (inputs: a path inside a folder output is none)."""
    return [tubelet_dir(m, method, f"{i:03d}") for i in range(len(m.shards))]


def concept_dirs(m, method: str | None = None) -> list[str]:
    """The concepts jobs' folders (what rules take as inputs) of one tubelet method."""
    tag = m.concepts_tags[method or m.method]
    return [f"{RESULTS}/concepts/{tag}/{group}" for group in m.concept_groups]


def concept_stores(m, method: str | None = None) -> list[str]:
    """Every analysed layer's concept store, inside its job's folder."""
    return [
        f"{folder}/layer-{layer:02d}.zarr"
        for folder, layers in zip(concept_dirs(m, method), m.concept_groups.values())
        for layer in layers
    ]


def validation_tables(m) -> list[str]:
    folder = f"{RESULTS}/validation/{m.validation_tag}"
    return [f"{folder}/concept_validation.tsv", f"{folder}/concept_scores.tsv"]


def samples_arg(wildcards, input) -> str:
    """``--samples <sheet>`` when a sheet with labels is an input, else nothing."""
    return f"--samples '{input.samples[0]}'" if input.samples else ""


def units_store(m) -> str:
    """Units of the configured tubelet method's concepts."""
    return f"{RESULTS}/units/{m.concepts_tag}/units.zarr"


def targets_table(m) -> str:
    return f"{RESULTS}/targets/{m.targets_tag}/targets.tsv"


def cris_shard(m, shard: str) -> str:
    return f"{RESULTS}/cris/{m.cris_tag}/shard-{shard}.zarr"


def cris_shards(m) -> list[str]:
    return [cris_shard(m, f"{i:03d}") for i in range(m.cris_shards)]


def cris_tables(m) -> dict[str, str]:
    folder = f"{RESULTS}/cris_gather/{m.gather_tag}"
    return {
        "importance": f"{folder}/concept_importance.tsv",
        "stability": f"{folder}/stability.tsv",
    }


def occlusion_table(m) -> str:
    return f"{RESULTS}/occlusion/{m.occlusion_tag}/concept_importance.tsv"


def curves_tables(m) -> dict[str, str]:
    folder = f"{RESULTS}/curves/{m.curves_tag}"
    names = ("attribution_curves", "fidelity", "fidelity_checks")
    return {name: f"{folder}/{name}.tsv" for name in names}


def heads_tables(m) -> dict[str, str]:
    folder = f"{RESULTS}/heads/{m.heads_tag}"
    return {
        "importance": f"{folder}/head_importance.tsv",
        "pruning": f"{folder}/pruning_curve.tsv",
    }


def straightening_outputs(m) -> dict[str, str]:
    """The straightening store and table of a model (none when it is switched off)."""
    if not m.straightening_on:
        return {}
    folder = f"{RESULTS}/straightening/{m.straightening_tag}"
    return {
        "store": f"{folder}/straightening.zarr",
        "table": f"{folder}/straightening.tsv",
    }


def straightening_features(m) -> list[str]:
    return feature_stores(m) + extra_feature_stores(m)


def detector_outputs(m) -> dict[str, str]:
    """The detector's tables and fitted detector of a model (none when it does not run)."""
    if not m.detector_on:
        return {}
    folder = f"{RESULTS}/detector/{m.detector_tag}"
    return {
        "cv": f"{folder}/detector_cv.tsv",
        "scores": f"{folder}/detector_scores.tsv",
        "detector": f"{folder}/detector.joblib",
    }


# Videos the detect rule scores with each model's fitted detector (detector.score).
def _load_scored() -> pd.DataFrame | None:
    source = config["detector"]["score"]
    if source is None:
        return None
    try:
        return load_samples(source)
    except SampleSheetError as err:
        raise WorkflowError(f"bad detector.score: {err}") from None


SCORED = _load_scored()


def detect_tables() -> list[str]:
    """The detect rule's scores, one table per model with a fitted detector."""
    if SCORED is None:
        return []
    tag = settings_hash({"videos": list(SCORED["path"])})
    return [
        f"{RESULTS}/detect/{m.detector_tag}/{tag}/scores.tsv"
        for m in MODELS.values()
        if m.detector_on
    ]


STATIC_DYNAMIC_TABLES = ("layers", "units", "concepts", "versions", "removal")


def static_dynamic_outputs(m) -> dict[str, str]:
    """The static/dynamic store and tables of a model (none when it is switched off)."""
    if not m.static_dynamic_on:
        return {}
    folder = f"{RESULTS}/static_dynamic/{m.static_dynamic_tag}"
    names = {name: f"static_dynamic_{name}" for name in STATIC_DYNAMIC_TABLES}
    names["removal"] = "unit_removal"
    tables = {name: f"{folder}/{file}.tsv" for name, file in names.items()}
    return {"store": f"{folder}/static_dynamic.zarr", **tables}


CONNECTOME_TABLES = ("nodes", "edges", "layers", "fidelity", "validation")


def connectome_outputs(m) -> dict[str, str]:
    """The connectome store, tables and GraphML folder of a model (none when off)."""
    if not m.connectome_on:
        return {}
    folder = f"{RESULTS}/connectome/{m.connectome_tag}"
    tables = {name: f"{folder}/connectome_{name}.tsv" for name in CONNECTOME_TABLES}
    return {
        "store": f"{folder}/connectome.zarr",
        "graphs": f"{folder}/graphs",
        **tables,
    }


def sae_settings(wildcards) -> dict:
    """The training settings of an ``sae`` job's SAE."""
    m, i = job_of("sae", wildcards)
    return m.saes[i]


def sae_store(m, tag: str) -> str:
    return f"{RESULTS}/sae/{tag}/sae.zarr"


SAE_TABLES = ("metrics", "features", "ablation")


def sae_outputs(m) -> dict[str, str]:
    """The SAE measures' tables and gallery of a model (none when switched off)."""
    if not m.sae_on:
        return {}
    folder = f"{RESULTS}/sae_metrics/{m.sae_metrics_tag}"
    tables = {name: f"{folder}/sae_{name}.tsv" for name in SAE_TABLES}
    return {**tables, "gallery": f"{folder}/sae_gallery.zarr"}


def styled_videos() -> list[str]:
    """Every stylized copy the sample sheet lists (the demo's: made by demo_data)."""
    return [p for cell in SAMPLES["styled"] for p in styled_paths(cell)]


def importance_outputs(m) -> list[str]:
    return [
        cris_tables(m)["importance"],
        curves_tables(m)["fidelity"],
        heads_tables(m)["pruning"],
    ]


# Rosetta: over every model, named by each one's importance folder and its own settings,
# so adding or removing a model reruns only it (and the report).
ROSETTA_SETTINGS = resolve_rosetta(config)
ROSETTA = config["rosetta"]["enabled"] and len(MODELS) >= 2
ROSETTA_TAG = settings_hash(
    {"models": {name: m.gather_tag for name, m in MODELS.items()}, **ROSETTA_SETTINGS}
)


def rosetta_tables() -> dict[str, str]:
    folder = f"{RESULTS}/rosetta/{ROSETTA_TAG}"
    names = ["concepts", "layers", "summary"] + (["roles"] if DEMO else [])
    return {name: f"{folder}/rosetta_{name}.tsv" for name in names}


def model_settings(m) -> dict:
    """One model's resolved settings per stage, shown in the report."""
    settings = {
        "model": m.model,
        "decode": m.decode_naming,
        "features": m.features,
        "tubelets": m.proposals[m.method],
        "concepts": m.concepts,
        "masking": m.masking,
        "cris": {
            **m.gather,
            "shards": m.cris_shards,
            "masks_per_batch": m.config["masking"]["masks_per_batch"],
        },
        "curves": m.curves,
        "heads": m.heads,
        "straightening": m.straightening if m.straightening_on else None,
        "detector": m.detector if m.detector_on else None,
        "static_dynamic": m.static_dynamic if m.static_dynamic_on else None,
        "connectome": m.connectome if m.connectome_on else None,
        "sae": {"saes": m.saes, **m.sae_metrics} if m.sae_on else None,
    }
    if DEMO:  # the report shows the validation, which compares both tubelet methods
        settings["validation"] = {**m.proposals, "crossfit": m.validation}
    return settings


def run_settings() -> dict:
    """Every model's resolved settings and the report's: they name the report's folder."""
    return {
        "models": {name: model_settings(m) for name, m in MODELS.items()},
        "rosetta": ROSETTA_SETTINGS if ROSETTA else None,
        "report": REPORT_SETTINGS,
    }


def report_dir() -> str:
    return f"{RESULTS}/report/run-{settings_hash(run_settings())}"


def model_benchmarks(m) -> list[str]:
    """Benchmark files of one model's jobs (globs), for the report's times."""
    patterns = [
        f"decode/{m.decode_hash}/*.tsv",
        f"skipped/{m.decode_hash}.tsv",
        f"features/{m.features_tag}/*.tsv",
        *[f"tubelets/{tag}/*.tsv" for tag in m.tubelets_tags.values()],
        *[f"concepts/{tag}/*.tsv" for tag in m.concepts_tags.values()],
        f"units/{m.concepts_tag}.tsv",
        f"targets/{m.targets_tag}.tsv",
        f"occlusion/{m.occlusion_tag}.tsv",
        f"cris/{m.cris_tag}/shard-*.tsv",
        f"cris_gather/{m.gather_tag}.tsv",
        f"curves/{m.curves_tag}.tsv",
        f"heads/{m.heads_tag}.tsv",
        f"straightening/{m.straightening_tag}.tsv",
        f"detector/{m.detector_tag}.tsv",
        f"static_dynamic/{m.static_dynamic_tag}.tsv",
        f"connectome/{m.connectome_tag}.tsv",
        *[f"sae/{tag}.tsv" for tag in m.sae_tags],
        f"sae_metrics/{m.sae_metrics_tag}.tsv",
    ]
    if DEMO:
        patterns += ["demo_data/demo_data.tsv", f"validation/{m.validation_tag}.tsv"]
    return [f"{RESULTS}/benchmarks/{p}" for p in patterns]


def model_outputs(m) -> dict[str, list[str]]:
    """What the report reads of one model, by input name."""
    return {
        "units": [units_store(m)],
        "concepts": concept_stores(m),  # inside the folders report_inputs lists
        "features": feature_stores(m),
        "decoded": decode_stores(m),  # inside the folders report_inputs lists
        "cris": [cris_tables(m)["importance"]],
        "stability": [cris_tables(m)["stability"]],
        "cris_shards": cris_shards(m),
        "occlusion": [occlusion_table(m)],
        "curves": [curves_tables(m)["attribution_curves"]],
        "fidelity": [curves_tables(m)["fidelity"]],
        "checks": [curves_tables(m)["fidelity_checks"]],
        "heads": [heads_tables(m)["importance"]],
        "pruning": [heads_tables(m)["pruning"]],
        "skipped": [skipped_table(m)],
        "validation": validation_tables(m)[:1] if DEMO else [],
        "straightening": (
            [straightening_outputs(m)["table"]] if m.straightening_on else []
        ),
        **{
            f"detector_{name}": [path]
            for name, path in detector_outputs(m).items()
            if name != "detector"
        },
        **{
            f"static_dynamic_{name}": [path]
            for name, path in static_dynamic_outputs(m).items()
            if name != "store"
        },
        **{
            f"connectome_{name}": [path]
            for name, path in connectome_outputs(m).items()
            if name != "graphs"
        },
        **{f"sae_{name}": [path] for name, path in sae_outputs(m).items()},
    }


def run_outputs() -> dict[str, list[str]]:
    """What the report reads of the cross-model stages and the run, by input name."""
    outputs = {"detection": [DETECTION_SHEET]} if DETECTION_SHEET else {}
    if ROSETTA:
        outputs |= {
            f"rosetta_{name}": [path] for name, path in rosetta_tables().items()
        }
    return outputs


def report_benchmarks() -> list[str]:
    """``[MODEL:]benchmarks=<glob>`` of every job of this configuration, for the
    report's times (globs: not inputs)."""
    named = [
        f"{n}:benchmarks={p}" for n, m in MODELS.items() for p in model_benchmarks(m)
    ]
    if ROSETTA:
        named.append(f"benchmarks={RESULTS}/benchmarks/rosetta/{ROSETTA_TAG}.tsv")
    return named


def named_inputs(wildcards, input) -> list[str]:
    """``NAME=path`` for every input of the report, ``MODEL:NAME=path`` for a model's
    (the rule's named inputs are these, flattened)."""
    pairs = [f"{key}={path}" for key, paths in run_outputs().items() for path in paths]
    for name, m in MODELS.items():
        for key, paths in model_outputs(m).items():
            pairs += [f"{name}:{key}={path}" for path in paths]
    return pairs


# Runtime options (masks per forward pass, device, precision) are resources: they change
# speed, not results beyond bf16 rounding, so changing them reruns nothing (except the
# CRIS shard layout, see plan_model). Every model-running masking rule shares them, each
# job its own model's; `stage` is the rule's tag wildcard.
def masking_resources(stage: str) -> dict:
    def setting(key: str):
        return lambda wc: model_of(stage)(wc).config["masking"][key]

    return dict(
        mem_mb=4000,
        gpu=lambda wc: job_gpus(model_of(stage)(wc).config["masking"]["device"]),
        masks_per_batch=setting("masks_per_batch"),
        device=setting("device"),
        precision=setting("precision"),
    )


def masking_threads(stage: str):
    return lambda wc: model_of(stage)(wc).masking_threads


def use_jobserver() -> bool:
    """The job server (videoconcepts.jobserver) for a local run whose jobs all run on the
    CPU: a child forked after CUDA was touched cannot use it, and no GPU run tested it.
    """
    devices = {
        view[section]["device"]
        for view in MODEL_CONFIGS.values()
        for section in ("features", "concepts", "masking")
    }
    gpus = any(job_gpus(device) for device in devices)
    return config["jobserver"] and workflow.local_exec and not gpus


def cancel_rescheduling_timers_at_exit() -> None:
    """Let the process exit as soon as its main thread ends, however the run ends.

    Every scheduling round arms a `threading.Timer` (not a daemon) that starts another
    round after the rate limiter's timespan; the profiles lengthen it to 30 s (their
    max-jobs-per-timespan) so that those timers stop multiplying into thousands of
    rounds. Python waits for non-daemon threads once the main thread is done: this daemon
    thread then cancels the timers left (nothing else in a Snakemake process runs a
    `threading.Timer`). Not in `onsuccess`/`onerror` alone: Snakemake can fail between
    its last round and those (a full disk, say).
    """

    def cancel() -> None:
        threading.main_thread().join()
        for thread in threading.enumerate():
            if isinstance(thread, threading.Timer):
                thread.cancel()

    threading.Thread(
        target=cancel, name="cancel-rescheduling-timers", daemon=True
    ).start()


RUNTIME_ARGS = (
    " --device {resources.device} --precision {resources.precision}"
    " --batch-size {resources.masks_per_batch} --threads {threads}"
)


def tubelet_match(wildcards) -> list[str]:
    """Matched random crops take the counts of the SLIC tubelets of the same shard."""
    m, method = job_of("tubelets", wildcards)
    matched = m.proposals[method].get("matched_to")
    return [tubelet_dir(m, "slic", wildcards.shard)] if matched else []


def report_inputs() -> list[str]:
    """Every output the report reads (named in its command line: see named_inputs), the
    concepts and decode jobs' folders for the stores inside them."""
    outputs = [*map(model_outputs, MODELS.values()), run_outputs()]
    paths = [
        p
        for named in outputs
        for key, ps in named.items()
        if key not in ("concepts", "decoded")
        for p in ps
    ]
    folders = [
        folder
        for m in MODELS.values()
        for folder in [*concept_dirs(m), *decode_dirs(m)]
    ]
    return paths + list(dict.fromkeys(folders))
