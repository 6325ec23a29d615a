"""Shared fixtures: small real H.264 videos, tiny saved checkpoints of every family,
one finished tiny workflow run (run once per session; tests that change it copy it) and
small tmpfs mounts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import messages, run_snakemake, write_config

from videoconcepts.demo.synthetic import write_mp4
from videoconcepts.models.random_checkpoints import save_random
from videoconcepts.plan.families import FAMILIES


def gradient_frames(n_frames: int, height: int, width: int) -> np.ndarray:
    """Frames whose pixels encode (frame, row, col), so sampling and cropping are checkable."""
    t, y, x = np.meshgrid(np.arange(n_frames), np.arange(height), np.arange(width), indexing="ij")
    frames = np.stack(
        [t * 255 // max(1, n_frames - 1), y * 255 // (height - 1), x * 255 // (width - 1)], axis=-1
    )
    return frames.astype(np.uint8)


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    write_mp4(root / "wide.mp4", gradient_frames(40, 48, 64), fps=20)
    write_mp4(root / "short.mp4", gradient_frames(6, 32, 32), fps=20)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random 2-layer VideoMAE classifier saved like a downloaded checkpoint."""
    return save_random("videomae", tmp_path_factory.mktemp("tiny_videomae"))


@pytest.fixture(scope="session", params=sorted(FAMILIES))
def family_checkpoint(request, tmp_path_factory) -> tuple[str, Path]:
    """(family, directory) of a tiny random saved checkpoint, for every family."""
    return request.param, save_random(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """The tiny config run locally to the end; treat as read-only (copy it with
    ``copy_run``). The SLURM test compares its results to this run's. What Snakemake
    printed is in ``snakemake.out``."""
    workdir = tmp_path_factory.mktemp("run")
    write_config(workdir)
    (workdir / "snakemake.out").write_text(messages(run_snakemake(workdir)))
    return workdir


@pytest.fixture
def mount_tmpfs() -> Iterator[Callable[[Path, str], None]]:
    """Mount a small tmpfs (``options`` as for mount -o) at a folder; unmounted afterwards.

    Root ignores permission bits, so a read-only or full file system is the honest test."""
    mounted: list[Path] = []

    def mount(folder: Path, options: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
        mounted.append(folder)

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)
