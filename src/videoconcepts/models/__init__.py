"""Model adapters, one module per family; :func:`load_adapter` loads one from its spec."""

from __future__ import annotations

import sys
from typing import Any

import transformers

from videoconcepts.devices import Precision, describe, pick_device, pick_precision
from videoconcepts.models.base import HEAD_KINDS, Capture, HeadKind, ModelAdapter, TokenGrid
from videoconcepts.models.dinov2 import Dinov2Adapter
from videoconcepts.models.timesformer import TimesformerAdapter
from videoconcepts.models.videomae import VideoMAEAdapter, VideoMAEPretrainingAdapter
from videoconcepts.models.vivit import VivitAdapter
from videoconcepts.models.vjepa2 import VJEPA2Adapter
from videoconcepts.models.xclip import XCLIPAdapter
from videoconcepts.plan.checkpoints import MissingCheckpointError, normalisation, resolve_checkpoint
from videoconcepts.plan.families import FAMILIES, ModelSpec, resolve_family, resolve_model

__all__ = [
    "HEAD_KINDS",
    "Capture",
    "HeadKind",
    "ModelAdapter",
    "TokenGrid",
    "load_adapter",
    "pick_device",
]

ADAPTERS: dict[str, type[ModelAdapter]] = {
    adapter.family: adapter
    for adapter in (
        VideoMAEAdapter,
        VideoMAEPretrainingAdapter,
        TimesformerAdapter,
        VivitAdapter,
        XCLIPAdapter,
        VJEPA2Adapter,
        Dinov2Adapter,
    )
}
assert ADAPTERS.keys() == FAMILIES.keys()


def load_adapter(
    spec: ModelSpec | dict[str, Any] | str,
    device: str = "auto",
    precision: Precision = "float32",
) -> ModelAdapter:
    """Load a model offline from its resolved spec (see :func:`families.resolve_model`),
    or from a bare checkpoint with its family's defaults; the device and the chosen
    precision go to stderr, the job's log."""
    if isinstance(spec, str):
        spec = resolve_model({"checkpoint": spec})
    elif isinstance(spec, dict):
        spec = ModelSpec(**spec)
    family = resolve_family(spec.checkpoint, spec.family)
    model_cls = getattr(transformers, family.architecture)
    adapter_cls = ADAPTERS[family.name]
    # SDPA attention: the `remove` masking mode passes its bias through it.
    options = {"attn_implementation": "sdpa"} if adapter_cls.attention_interface else {}
    try:
        model = model_cls.from_pretrained(
            resolve_checkpoint(spec.checkpoint), local_files_only=True, **options
        )
    except OSError as err:
        raise MissingCheckpointError(f"checkpoint {spec.checkpoint!r}: {err}") from err
    mean, std = normalisation(spec.checkpoint)
    torch_device = pick_device(device)
    dtype = pick_precision(precision, torch_device)
    print(f"{family.name} {spec.checkpoint}: {describe(torch_device, dtype)}", file=sys.stderr)
    return adapter_cls(model.to(torch_device), mean, std, spec, dtype)
