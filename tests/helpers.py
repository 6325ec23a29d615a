"""Running the workflow from tests: the tiny config, Snakemake runs, dry-run plans and
copies of finished runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import snakemake_forks
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake_command(
    workdir: Path, *args: str, configfile: Path | None = None, cores: int | None = 2
) -> list[str]:
    """``cores=None`` leaves out ``--cores`` (a cluster run)."""
    return [
        *SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(configfile or workdir / "config.yaml"),
        *(["--cores", str(cores)] if cores else []),
        *args,
    ]


def snakemake_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a run: ours plus ``env``, this interpreter's `videoconcepts`
    first on PATH."""
    full = {**os.environ, **(env or {})}
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full['PATH']}"
    return full


def run_snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    configfile: Path | None = None,
    cores: int | None = 2,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Snakemake on the repository's Snakefile in ``workdir`` with its ``config.yaml``."""
    cmd = snakemake_command(workdir, *args, configfile=configfile, cores=cores)
    env = snakemake_env(env)
    if "-n" in args and timeout is None:  # a dry run: forked, without Snakemake's import
        result = snakemake_forks.run(cmd[len(SNAKEMAKE) :], workdir, env)
    else:
        result = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=workdir, timeout=timeout
        )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def messages(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def tiny_config(**overrides) -> dict:
    """The default config shrunk for tests (6 videos, 2 layers, few masks, the demo
    VideoMAE alone), then overrides: ``section={key: value}`` updates a section,
    ``section=value`` replaces it, and ``models`` replaces the models."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    for section, spec in schema["properties"].items():  # the schema's defaults, in full
        config.setdefault(section, defaults(section) if "properties" in spec else spec["default"])
    config["models"] = {"demo": {"checkpoint": "demo"}}
    config["demo"]["videos_per_event"] = 1
    config["features"]["videos_per_job"] = 4
    config["features"]["layers"] = [1, 3]
    config["concepts"]["max_iter"] = 500
    config["cris"].update(num_masks=16, shards=2)  # two CRIS jobs, as on a cluster
    config["masking"].update(masks_per_batch=4)
    config["curves"].update(steps=4, random_orders=1)
    config["heads"].update(num_masks=8, pruning_steps=4)
    config["sae"].update(epochs=20, random_repeats=2)  # 4 training videos: 7 steps an epoch
    for section, values in overrides.items():
        if isinstance(values, dict) and section != "models":
            config[section].update(values)
        else:
            config[section] = values
    return config


def model_view(config: dict) -> dict:
    """The one model's view of a one-model config (``model`` its section, its stage
    overrides applied), what ``plan.settings.resolve_*`` take."""
    from videoconcepts.plan.settings import model_configs

    (view,) = model_configs(config).values()
    return view


def write_config(workdir: Path, name: str = "config.yaml", **overrides) -> dict:
    config = tiny_config(**overrides)
    (workdir / name).write_text(yaml.safe_dump(config))
    return config


@dataclass
class Job:
    rule: str
    inputs: list[str]
    outputs: list[str]


@dataclass
class Plan:
    """The jobs a dry run would execute."""

    job_list: list[Job]

    @property
    def jobs(self) -> dict[str, int]:
        """Rule -> number of jobs, plus ``total``; {} when there is nothing to do."""
        counts = Counter(job.rule for job in self.job_list)
        return {**counts, "total": len(self.job_list)} if counts else {}

    @property
    def outputs(self) -> list[str]:
        return [path for job in self.job_list for path in job.outputs]


def dry_run(workdir: Path, *args: str, configfile: Path | None = None) -> Plan:
    """Parse ``snakemake -n``: one block per job (``rule x:``, ``input:``, ``output:``)."""
    out = run_snakemake(workdir, *args, "-n", configfile=configfile).stdout
    jobs: list[Job] = []
    for line in out.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            jobs.append(Job(match[1], [], []))
        elif match := re.match(r"^    (input|output): (.*)$", line):
            getattr(jobs[-1], f"{match[1]}s").extend(match[2].split(", "))
    return Plan(jobs)


def job_stats(output: str) -> dict[str, int]:
    """Rule name -> jobs, from the first "Job stats" table Snakemake printed ({} if none)."""
    table = re.search(r"^Job stats:\n(?:.*\n){2}((?:\w+ +\d+\n)+)", output, re.MULTILINE)
    rows = table[1].splitlines() if table else []
    return {rule: int(count) for rule, count in (row.split() for row in rows)}


def planned(workdir: Path, *targets: str, configfile: Path | None = None) -> dict[str, int]:
    """Rule name -> number of jobs a dry run would execute (and ``total``)."""
    return dry_run(workdir, *targets, configfile=configfile).jobs


def copy_run(source: Path, dest: Path) -> Path:
    """A copy of a finished run (results and Snakemake's metadata, with their mtimes)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("results", ".snakemake", "config.yaml"):
        if (source / name).is_dir():
            shutil.copytree(source / name, dest / name, symlinks=True)
        else:
            shutil.copy2(source / name, dest / name)
    return dest


def file_states(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime in ns) of every result file, except logs and benchmark records."""
    states = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in ("logs", "benchmarks"):
            stat = path.stat()
            states[str(rel)] = (stat.st_size, stat.st_mtime_ns)
    return states


def defaults(section: str) -> dict:
    """The config schema's defaults of one section: settings types have none of their own."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    properties = schema["properties"][section]["properties"]
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}


def proposal_settings(**overrides):
    """ProposalSettings from the schema's tubelet defaults (the method's own parameters),
    on the feature grid itself (no upsampling), with VideoMAE's compactness and the
    segments of a model that is not a demo model unless given."""
    from videoconcepts.methods.proposals import ProposalSettings
    from videoconcepts.plan.settings import BY_MODEL

    segments = BY_MODEL[("tubelets", "n_segments")]["default"]
    values = {**defaults("tubelets"), "n_segments": segments, "compactness": 0.1}
    values = {**values, "upsample": (1, 1, 1), **overrides}
    other = ("n_crops", "seed") if values["method"] == "slic" else ("n_segments", "compactness")
    for key in (*other, "head_kind"):
        values.pop(key)
    return ProposalSettings(**values)


def tubelet_settings(**overrides):
    """The tubelets stage's settings: proposal defaults plus the head kind."""
    from dataclasses import asdict

    from videoconcepts.stages.tubelets import TubeletSettings

    head_kind = overrides.pop("head_kind", defaults("tubelets")["head_kind"])
    return TubeletSettings(**asdict(proposal_settings(**overrides)), head_kind=head_kind)


def masking_settings(**overrides):
    """Masking settings of the demo model: remove mode on keys, correctness of the label."""
    from videoconcepts.models.scorer import MaskingSettings

    values = {"mode": "remove", "head_kind": "keys", "metric": "correctness", "target": "label"}
    return MaskingSettings("demo", **{**values, **overrides})


def decode_all(root: Path, table, decode=None) -> list[str]:
    """Decode stores of the demo videos of ``table`` (generated under ``root / "demo"``),
    for the demo VideoMAE unless ``decode`` says otherwise; their paths, in table order."""
    from videoconcepts.methods.decoding import DecodeSettings
    from videoconcepts.stages.decode import write_decode_store

    decode = decode or DecodeSettings(
        num_frames=16, frame_stride=2, clip_start="center", size=48, sampling="index", window=None
    )
    stores = []
    for path, video_id in zip(table["path"], table["id"], strict=True):
        stores.append(str(root / f"{video_id}-{decode.num_frames}x{decode.size}.zarr"))
        write_decode_store(root / "demo" / path, stores[-1], video_id, decode)
    return stores


def cpu(batch_size: int):
    """The runtime options of a test job: CPU, ``batch_size`` per forward, one thread."""
    from videoconcepts.runtime import Runtime

    return Runtime("cpu", "float32", batch_size, 1)


# The planted units of the masking stages' tests (tests/stages/conftest.py): unit 0 covers
# every token of the 4-layer, 4-head demo model, unit 7 no token in any video.
GRID = (8, 6, 6)
N_TOKENS, N_LAYERS, N_HEADS = 288, 4, 4
PLANTED, ABSENT = 0, 7


@contextmanager
def edited(path: Path) -> Iterator[None]:
    """A package module with a comment appended (content and mtime change: Snakemake
    ignores a bare mtime bump when the checksum it recorded still matches), restored
    byte for byte with its mtime afterwards."""
    source, before = path.read_bytes(), path.stat()
    try:
        path.write_bytes(source + b"\n# edited by a test, restored right after\n")
        yield
    finally:
        path.write_bytes(source)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
