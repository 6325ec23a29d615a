"""Model adapters, one module per family; :func:`load_adapter` picks one from the checkpoint."""

from __future__ import annotations

import torch
from transformers import VideoMAEForVideoClassification

from videoconcepts.checkpoints import (
    MissingCheckpointError,
    normalisation,
    read_model_config,
    resolve_checkpoint,
)
from videoconcepts.models.base import HEAD_KINDS, Capture, HeadKind, ModelAdapter, TokenGrid
from videoconcepts.models.videomae import VideoMAEAdapter

__all__ = [
    "VideoMAEAdapter",
    "HEAD_KINDS",
    "Capture",
    "HeadKind",
    "ModelAdapter",
    "TokenGrid",
    "load_adapter",
    "pick_device",
]

FAMILIES = {"videomae": (VideoMAEAdapter, VideoMAEForVideoClassification)}


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_adapter(checkpoint: str, device: str = "auto") -> ModelAdapter:
    """Load a checkpoint (``"demo"``, a local directory or a cached hub id) offline."""
    config = read_model_config(checkpoint)
    family = config.get("model_type")
    if family not in FAMILIES:
        raise ValueError(
            f"checkpoint {checkpoint!r}: model_type {family!r} has no adapter "
            f"(supported: {', '.join(sorted(FAMILIES))})"
        )
    adapter_cls, model_cls = FAMILIES[family]
    try:
        # SDPA attention: the `remove` masking mode passes its bias through it.
        model = model_cls.from_pretrained(
            resolve_checkpoint(checkpoint), local_files_only=True, attn_implementation="sdpa"
        )
    except OSError as err:
        raise MissingCheckpointError(f"checkpoint {checkpoint!r}: {err}") from err
    mean, std = normalisation(checkpoint)
    return adapter_cls(model.to(pick_device(device)), mean, std)
