import json
import os
import sys
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from videoconcepts.plan.checkpoints import MissingCheckpointError, checkpoint_files
from videoconcepts.plan.samples import SampleSheetError, load_samples
from videoconcepts.plan.settings import (
    analysed_layers,
    resolve_targets,
    check_targets,
    for_model,
    job_gpus,
    resolve_concepts,
    resolve_cris,
    resolve_cris_gather,
    resolve_curves,
    resolve_head_masking,
    resolve_validation,
    resolve_heads,
    resolve_masking,
    resolve_report,
    resolve_proposals,
    resolve_decode,
    resolve_features,
    resolve_model_section,
    settings_hash,
    shards,
)
from videoconcepts.plan.sources import stage_sources
from videoconcepts.demo.synthetic import dataset_ids

min_version("9.0")


envvars:
    "PATH",


# Jobs call the `videoconcepts` command; without a conda env the one installed next to
# the interpreter running Snakemake is used, so an un-activated venv works too.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

validate(config, "../schemas/config.schema.yaml", set_default=True)

RESULTS = config["results"]
ENV = "../../envs/videoconcepts.yaml"
DEMO = config["samples"] == "demo"
DEMO_DIR = f"{RESULTS}/demo_data/n{config['demo']['videos_per_event']}-seed{config['demo']['seed']}"


def _load_samples() -> pd.DataFrame:
    if DEMO:
        ids = dataset_ids(config["demo"]["videos_per_event"])
        paths = [f"{DEMO_DIR}/videos/{i}.mp4" for i in ids]
        return pd.DataFrame({"id": ids, "path": paths, "label": ""})
    # With on_bad_video: skip a missing file is not an error here: its decode job (see
    # video_input) writes a skip record for it, like for any other unusable video.
    try:
        return load_samples(
            config["samples"], check_files=config["decode"]["on_bad_video"] == "fail"
        )
    except SampleSheetError as err:
        raise WorkflowError(f"bad sample source: {err}") from None


SAMPLES = _load_samples()
for _, row in SAMPLES.iterrows():
    validate(row.to_dict(), "../schemas/samples.schema.yaml")
SAMPLES = SAMPLES.set_index("id", drop=False)

# The model is resolved against its checkpoint before any job runs: a missing
# checkpoint, a family mismatch or an input size it cannot take stops here.
try:
    CHECKPOINT_FILES = checkpoint_files(config["model"]["checkpoint"])
    MODEL = resolve_model_section(config, list(SAMPLES["label"].fillna("").astype(str)))
    DECODE_SETTINGS = resolve_decode(config)
    MASKING_SETTINGS = resolve_masking(config, MODEL)
    CONCEPT_SETTINGS = resolve_concepts(config)
    check_targets(MASKING_SETTINGS, [] if DEMO else list(SAMPLES["label"].fillna("")))
except MissingCheckpointError as err:
    raise WorkflowError(f"model.checkpoint: {err}") from None
except ValueError as err:
    raise WorkflowError(str(err)) from None

FEATURE_SETTINGS = resolve_features(config, MODEL)
if config["tubelets"]["head_kind"] not in config["features"]["heads"]:
    raise WorkflowError(
        f"tubelets.head_kind={config['tubelets']['head_kind']!r} is not captured: add it to "
        f"features.heads (now {config['features']['heads']})"
    )
DECODE_HASH = settings_hash(DECODE_SETTINGS)
DECODE_DIR = f"{RESULTS}/decode/{DECODE_HASH}"
FEATURES_TAG = f"{DECODE_HASH}-{settings_hash(FEATURE_SETTINGS)}"
FEATURES_DIR = f"{RESULTS}/features/{FEATURES_TAG}"
SHARDS = shards(list(SAMPLES.index), config["features"]["videos_per_job"])
LAYERS = analysed_layers(config)

# Tubelet settings of both methods: the configured one, and the other for the demo's
# concept validation (SLIC vs. the random-crop baseline). PROPOSALS maps hash -> settings.
PROPOSALS_BY_METHOD = {
    m: resolve_proposals(config, m) for m in ("slic", "random_crops")
}
PROPOSALS = {settings_hash(p): p for p in PROPOSALS_BY_METHOD.values()}
CONCEPTS_HASH = settings_hash(CONCEPT_SETTINGS)
VALIDATION_SETTINGS = resolve_validation(config)

# Importance: masking (shared), targets, CRIS, curves and heads each name their own folder.
MASKING_HASH = settings_hash(MASKING_SETTINGS)
TARGET_SETTINGS = resolve_targets(MASKING_SETTINGS)
CRIS_SETTINGS = resolve_cris(config)
CRIS_HASH = settings_hash(CRIS_SETTINGS)
GATHER_SETTINGS = resolve_cris_gather(config)
CURVES_SETTINGS = resolve_curves(config)
HEADS_SETTINGS = resolve_heads(config)
# Heads are always ranked and pruned by removing them, whatever the concepts' mode.
HEAD_MASKING_SETTINGS = resolve_head_masking(MASKING_SETTINGS)
HEAD_MASKING_HASH = settings_hash(HEAD_MASKING_SETTINGS)
# CPU threads of the model-running jobs (runtime options, never hashed).
FEATURE_THREADS = for_model(config, "features", "threads")
MASKING_THREADS = for_model(config, "masking", "threads")
REPORT_SETTINGS = resolve_report(config)
# A sample sheet with labels (the demo's own, or the user's file) gives the targets.
if DEMO:
    LABELS = [f"{DEMO_DIR}/samples.tsv"]
else:
    LABELS = [config["samples"]] if Path(config["samples"]).is_file() else []


wildcard_constraints:
    video="[A-Za-z0-9][A-Za-z0-9._-]*",
    shard="[0-9]{3}",
    layer="[0-9]{2}",
    cris_shard="[0-9]{3}",
    proposals="|".join(PROPOSALS),


def code(stage: str) -> list[str]:
    """Package files the rule's `videoconcepts <stage>` command runs (the stage module and
    all it imports), as inputs: editing one reruns the rule and everything downstream.
    """
    return stage_sources(f"stages.{stage}")


# Every stage writes below results/<stage>/<tag>/, its tag the hashes of its own settings
# and of everything upstream; logs and benchmarks mirror the output paths.
def log_path(stage: str, name: str) -> str:
    return f"{RESULTS}/logs/{stage}/{name}.log"


def benchmark_path(stage: str, name: str) -> str:
    return f"{RESULTS}/benchmarks/{stage}/{name}.tsv"


def video_input(wildcards) -> list[str]:
    """The decode job's video as its input, none when a listed file is missing (possible
    only with on_bad_video: skip): the job then runs without it and records the skip. The
    demo's videos are made by the demo_data rule."""
    path = SAMPLES.loc[wildcards.video, "path"]
    return [path] if DEMO or Path(path).is_file() else []


def decode_store(video: str) -> str:
    return f"{DECODE_DIR}/{video}.zarr"


def decode_stores() -> list[str]:
    return [decode_store(video) for video in SAMPLES.index]


def skipped_table() -> str:
    return f"{RESULTS}/skipped/{DECODE_HASH}/skipped.tsv"


def feature_stores() -> list[str]:
    return [f"{FEATURES_DIR}/shard-{i:03d}.zarr" for i in range(len(SHARDS))]


def shard_decode_stores(wildcards) -> list[str]:
    return [decode_store(video) for video in SHARDS[int(wildcards.shard)]]


def proposals_hash(method: str | None = None) -> str:
    return settings_hash(PROPOSALS_BY_METHOD[method or config["tubelets"]["method"]])


def tubelet_store(proposals: str, layer, shard) -> str:
    return f"{RESULTS}/tubelets/{FEATURES_TAG}-{proposals}/layer-{layer}/shard-{shard}.zarr"


def shard_tubelet_stores(proposals: str, shard) -> list[str]:
    """The tubelet stores one tubelets job writes: every analysed layer of a shard."""
    return [tubelet_store(proposals, f"{layer:02d}", shard) for layer in LAYERS]


def matched_stores(wildcards) -> list[str]:
    """The SLIC tubelets of the same layers and shard whose counts matched crops take."""
    matched_to = PROPOSALS[wildcards.proposals].get("matched_to")
    if matched_to is None:
        return []
    return shard_tubelet_stores(matched_to, wildcards.shard)


def match_arg(wildcards, input) -> str:
    """``--match <store>...`` (one per layer) for matched random crops, else nothing."""
    return (
        "--match " + " ".join(f"'{path}'" for path in input.match)
        if input.match
        else ""
    )


def concepts_tag(proposals: str | None = None) -> str:
    return f"{FEATURES_TAG}-{proposals or proposals_hash()}-{CONCEPTS_HASH}"


def concept_store(proposals: str, layer) -> str:
    return f"{RESULTS}/concepts/{concepts_tag(proposals)}/layer-{layer}.zarr"


def concept_stores(method: str | None = None) -> list[str]:
    return [concept_store(proposals_hash(method), f"{layer:02d}") for layer in LAYERS]


def validation_tag() -> str:
    hashes = "-".join(proposals_hash(m) for m in ("slic", "random_crops"))
    return (
        f"{FEATURES_TAG}-{hashes}-{CONCEPTS_HASH}-{settings_hash(VALIDATION_SETTINGS)}"
    )


def validation_tables() -> list[str]:
    folder = f"{RESULTS}/validation/{validation_tag()}"
    return [f"{folder}/concept_validation.tsv", f"{folder}/concept_scores.tsv"]


def samples_arg(wildcards, input) -> str:
    """``--samples <sheet>`` when a sheet with labels is an input, else nothing."""
    return f"--samples '{input.samples[0]}'" if input.samples else ""


def units_store() -> str:
    """Units of the configured tubelet method's concepts."""
    return f"{RESULTS}/units/{concepts_tag()}/units.zarr"


def targets_tag() -> str:
    return f"{DECODE_HASH}-{settings_hash(TARGET_SETTINGS)}"


def targets_table() -> str:
    return f"{RESULTS}/targets/{targets_tag()}/targets.tsv"


def cris_tag() -> str:
    """CRIS shards, and below the gathered tables and the curves on them. Shard contents depend on
    the shard count and the masks per batch, so both name the folder. The gathered tables
    do not, but named so too, switching the layout back finds them instead of rerunning
    the gather, the curves and the report (as with features.videos_per_job)."""
    layout = f"shards-{config['cris']['shards']}x{config['masking']['masks_per_batch']}"
    return f"{concepts_tag()}-{MASKING_HASH}-{CRIS_HASH}/{layout}"


def cris_shard(shard: str) -> str:
    return f"{RESULTS}/cris/{cris_tag()}/shard-{shard}.zarr"


def cris_shards() -> list[str]:
    return [cris_shard(f"{i:03d}") for i in range(config["cris"]["shards"])]


def gather_tag() -> str:
    """The gathered tables: the shards' folder and the gather's own settings (the video
    bootstrap), so a new bootstrap count writes new tables and reruns no shard."""
    return f"{cris_tag()}-{settings_hash(GATHER_SETTINGS)}"


def cris_tables() -> dict[str, str]:
    folder = f"{RESULTS}/cris_gather/{gather_tag()}"
    return {
        "importance": f"{folder}/concept_importance.tsv",
        "stability": f"{folder}/stability.tsv",
    }


def occlusion_tag() -> str:
    return f"{concepts_tag()}-{MASKING_HASH}"


def occlusion_table() -> str:
    return f"{RESULTS}/occlusion/{occlusion_tag()}/concept_importance.tsv"


def curves_tag() -> str:
    return f"{gather_tag()}-{settings_hash(CURVES_SETTINGS)}"


def curves_tables() -> dict[str, str]:
    folder = f"{RESULTS}/curves/{curves_tag()}"
    names = ("attribution_curves", "fidelity", "fidelity_checks")
    return {name: f"{folder}/{name}.tsv" for name in names}


def heads_tag() -> str:
    return f"{DECODE_HASH}-{HEAD_MASKING_HASH}-{settings_hash(HEADS_SETTINGS)}"


def heads_tables() -> dict[str, str]:
    folder = f"{RESULTS}/heads/{heads_tag()}"
    return {
        "importance": f"{folder}/head_importance.tsv",
        "pruning": f"{folder}/pruning_curve.tsv",
    }


def importance_outputs() -> list[str]:
    return [
        cris_tables()["importance"],
        curves_tables()["fidelity"],
        heads_tables()["pruning"],
    ]


def run_settings() -> dict:
    """Every stage's resolved settings, shown in the report and naming its folder."""
    settings = {
        "decode": DECODE_SETTINGS,
        "features": FEATURE_SETTINGS,
        "tubelets": PROPOSALS_BY_METHOD[config["tubelets"]["method"]],
        "concepts": CONCEPT_SETTINGS,
        "masking": MASKING_SETTINGS,
        "cris": {
            **GATHER_SETTINGS,
            "shards": config["cris"]["shards"],
            "masks_per_batch": config["masking"]["masks_per_batch"],
        },
        "curves": CURVES_SETTINGS,
        "heads": HEADS_SETTINGS,
        "report": REPORT_SETTINGS,
    }
    if DEMO:  # the report shows the validation, which compares both tubelet methods
        settings["validation"] = {
            **PROPOSALS_BY_METHOD,
            "crossfit": VALIDATION_SETTINGS,
        }
    return settings


def report_dir() -> str:
    return f"{RESULTS}/report/run-{settings_hash(run_settings())}"


def run_benchmarks() -> list[str]:
    """Benchmark files of this configuration's jobs (globs), for the report's times."""
    patterns = [
        f"decode/{DECODE_HASH}/*.tsv",
        f"skipped/{DECODE_HASH}.tsv",
        f"features/{FEATURES_TAG}/*.tsv",
        *[f"tubelets/{FEATURES_TAG}-{p}/*.tsv" for p in PROPOSALS],
        *[f"concepts/{concepts_tag(p)}/*.tsv" for p in PROPOSALS],
        f"units/{concepts_tag()}.tsv",
        f"targets/{targets_tag()}.tsv",
        f"occlusion/{occlusion_tag()}.tsv",
        f"cris/{cris_tag()}/shard-*.tsv",
        f"cris_gather/{gather_tag()}.tsv",
        f"curves/{curves_tag()}.tsv",
        f"heads/{heads_tag()}.tsv",
    ]
    if DEMO:
        patterns += ["demo_data/demo_data.tsv", f"validation/{validation_tag()}.tsv"]
    return [f"{RESULTS}/benchmarks/{p}" for p in patterns]


def named_inputs(wildcards, input) -> list[str]:
    """``NAME=path`` for every named input but the code: how the report takes its inputs."""
    pairs = []
    for name, paths in input.items():
        if name != "code":
            pairs += [
                f"{name}={path}"
                for path in ([paths] if isinstance(paths, str) else paths)
            ]
    return pairs
