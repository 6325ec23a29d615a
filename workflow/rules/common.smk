import json
import os
import sys
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from videoconcepts.checkpoints import MissingCheckpointError, checkpoint_files
from videoconcepts.samples import SampleSheetError, load_samples
from videoconcepts.settings import resolve_decode, resolve_features, settings_hash, shards
from videoconcepts.synthetic import dataset_ids

min_version("9.0")

# Jobs call the `videoconcepts` command; without a conda env the one next to this
# interpreter is used, so an un-activated venv works too.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

validate(config, "../schemas/config.schema.yaml", set_default=True)

RESULTS = config["results"]
ENV = "../../envs/videoconcepts.yaml"
DEMO = config["samples"] == "demo"
DEMO_DIR = f"{RESULTS}/demo/n{config['demo']['videos_per_event']}-seed{config['demo']['seed']}"


def _load_samples() -> pd.DataFrame:
    if DEMO:
        ids = dataset_ids(config["demo"]["videos_per_event"])
        paths = [f"{DEMO_DIR}/videos/{i}.mp4" for i in ids]
        return pd.DataFrame({"id": ids, "path": paths, "label": ""})
    try:
        return load_samples(config["samples"])
    except SampleSheetError as err:
        raise WorkflowError(f"bad sample source: {err}") from None


try:
    DECODE_SETTINGS = resolve_decode(config)
    CHECKPOINT_FILES = checkpoint_files(config["model"]["checkpoint"])
except MissingCheckpointError as err:
    raise WorkflowError(f"model.checkpoint: {err}") from None

SAMPLES = _load_samples()
for _, row in SAMPLES.iterrows():
    validate(row.to_dict(), "../schemas/samples.schema.yaml")
SAMPLES = SAMPLES.set_index("id", drop=False)

FEATURE_SETTINGS = resolve_features(config)
DECODE_DIR = f"{RESULTS}/decode/{settings_hash(DECODE_SETTINGS)}"
FEATURES_DIR = (
    f"{RESULTS}/features/{settings_hash(DECODE_SETTINGS)}-{settings_hash(FEATURE_SETTINGS)}"
)
SHARDS = shards(list(SAMPLES.index), config["features"]["videos_per_job"])


wildcard_constraints:
    video="[A-Za-z0-9][A-Za-z0-9._-]*",
    shard="[0-9]{3}",


def log_path(stage: str, name: str) -> str:
    return f"{RESULTS}/logs/{stage}/{name}.log"


def benchmark_path(stage: str, name: str) -> str:
    return f"{RESULTS}/benchmarks/{stage}/{name}.tsv"


def decode_store(video: str) -> str:
    return f"{DECODE_DIR}/{video}.zarr"


def skipped_table() -> str:
    return f"{DECODE_DIR}/skipped.tsv"


def feature_stores() -> list[str]:
    return [f"{FEATURES_DIR}/shard-{i:03d}.zarr" for i in range(len(SHARDS))]


def shard_decode_stores(wildcards) -> list[str]:
    return [decode_store(video) for video in SHARDS[int(wildcards.shard)]]
