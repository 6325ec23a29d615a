"""Locate model checkpoints and read their configs without importing torch.

The Snakefile uses this at parse time (input size defaults, early errors for missing
checkpoints), so it must stay light: json files only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_WEIGHTS = Path(__file__).parents[1] / "demo" / "weights"
# The shipped demo models by checkpoint name (see videoconcepts.demo.train).
DEMO_CHECKPOINTS = {
    "demo": _WEIGHTS / "videomae",
    "demo-timesformer": _WEIGHTS / "timesformer",
    "demo-videomae-ssl": _WEIGHTS / "videomae_ssl",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MissingCheckpointError(FileNotFoundError):
    """A checkpoint cannot be found locally; the message says where we looked."""


def resolve_checkpoint(spec: str) -> Path | str:
    """A demo name (``"demo"``, ``"demo-timesformer"``, ``"demo-videomae-ssl"``) to its
    shipped weights, a directory to itself, anything else is a hub id."""
    if spec in DEMO_CHECKPOINTS:
        return DEMO_CHECKPOINTS[spec]
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")):
        return path
    return spec


def _checkpoint_file(spec: str, filename: str) -> Path | None:
    where = resolve_checkpoint(spec)
    if isinstance(where, Path):
        if not where.is_dir():
            raise MissingCheckpointError(f"checkpoint {spec!r}: directory {where} does not exist")
        candidate = where / filename
        return candidate if candidate.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(where, filename)
    return Path(cached) if isinstance(cached, str) else None


def read_model_config(spec: str) -> dict[str, Any]:
    """The checkpoint's ``config.json`` as a dict; raises if it is not available offline."""
    path = _checkpoint_file(spec, "config.json")
    if path is None:
        raise MissingCheckpointError(
            f"checkpoint {spec!r}: no config.json found (not a local directory with a saved "
            "model, and not in the Hugging Face cache; workflows never download: fetch it "
            f"ahead of time on a machine with network access with `hf download {spec}` "
            "(same HF_HOME), or save it to a directory and give that path)"
        )
    return json.loads(path.read_text())


WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER = ("tokenizer.json", "vocab.json")


def require_files(spec: str, what: str, names: tuple[str, ...]) -> None:
    """Raise unless the checkpoint has one of ``names`` offline (``what`` names them)."""
    if not any(_checkpoint_file(spec, name) for name in names):
        raise MissingCheckpointError(
            f"checkpoint {spec!r}: no {what} found ({' or '.join(names)}); the download or "
            "save is incomplete: fetch it again with `hf download` or `save_pretrained`"
        )


def normalisation(spec: str) -> tuple[list[float], list[float]]:
    """Pixel mean and std from the checkpoint's image or video processor config
    (ImageNet's if it has neither)."""
    processor: dict[str, Any] = {}
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):
        path = _checkpoint_file(spec, name)
        if path:
            processor = json.loads(path.read_text())
            break
    return (
        list(processor.get("image_mean", IMAGENET_MEAN)),
        list(processor.get("image_std", IMAGENET_STD)),
    )


def checkpoint_files(spec: str) -> list[str]:
    """Files of a local checkpoint (rule inputs, so replaced weights rerun features).

    Raises :class:`MissingCheckpointError` when the checkpoint cannot be found offline.
    """
    read_model_config(spec)
    where = resolve_checkpoint(spec)
    if not isinstance(where, Path):
        return []
    return sorted(str(p) for p in where.iterdir() if p.is_file())
