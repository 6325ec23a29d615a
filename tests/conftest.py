"""Shared fixtures: small real H.264 videos, a tiny saved VideoMAE checkpoint and one
finished tiny workflow run (run once per session; tests that change it copy it)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import VideoMAEConfig, VideoMAEForVideoClassification
from workflow_helpers import run_snakemake, write_config

from videoconcepts.synthetic import write_mp4


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
    """A random 2-layer VideoMAE saved like a downloaded checkpoint (4 frames, 32 px)."""
    torch.manual_seed(0)
    config = VideoMAEConfig(
        image_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=3,
        # HF's default 0.02 leaves a random model's output nearly independent of its
        # attention (masking changes logits by < 1e-4); 0.2, as the demo model uses, does not.
        initializer_range=0.2,
    )
    path = tmp_path_factory.mktemp("tiny_videomae")
    VideoMAEForVideoClassification(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """The tiny config run end to end; treat as read-only (copy it with ``copy_run``)."""
    workdir = tmp_path_factory.mktemp("run")
    write_config(workdir)
    run_snakemake(workdir)
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
