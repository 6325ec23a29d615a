"""Helpers shared by the workflow tests: run the Snakemake CLI on a tiny demo config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def run_snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    cores: int | None = 2,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Snakemake on the repository's Snakefile in ``workdir`` with its ``config.yaml``.

    ``cores=None`` leaves out ``--cores`` (a cluster run). ``env`` adds variables to this
    process's environment (its PATH replaces ours); the venv's bin directory is put first
    on PATH so jobs find the ``videoconcepts`` command.
    """
    cmd = [
        *SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *(["--cores", str(cores)] if cores else []),
        *args,
    ]
    full_env = {**os.environ, **(env or {})}
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env['PATH']}"
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=full_env, cwd=workdir, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def messages(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def write_config(workdir: Path, **overrides) -> dict:
    """The default config shrunk to a run of a few minutes (6 demo videos, 2 layers)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["demo"]["videos_per_event"] = 1
    config["features"]["videos_per_job"] = 4
    config["features"]["layers"] = [1, 3]
    config["concepts"]["max_iter"] = 500
    config["importance"].update(num_masks=16, masks_per_batch=4)
    config["curves"].update(steps=4, random_orders=1)
    config["heads"].update(num_masks=8, pruning_steps=4)
    for section, values in overrides.items():
        if isinstance(values, dict):
            config[section].update(values)
        else:
            config[section] = values
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return config


def job_stats(output: str) -> dict[str, int]:
    """Rule name -> jobs, from the first "Job stats" table Snakemake printed ({} if none)."""
    table = re.search(r"^Job stats:\n(?:.*\n){2}((?:\w+ +\d+\n)+)", output, re.MULTILINE)
    rows = table[1].splitlines() if table else []
    return {rule: int(count) for rule, count in (row.split() for row in rows)}


def planned(workdir: Path, *targets: str) -> dict[str, int]:
    """Rule name -> number of jobs a dry run would execute."""
    return job_stats(run_snakemake(workdir, *targets, "-n", "--quiet", "rules").stdout)
