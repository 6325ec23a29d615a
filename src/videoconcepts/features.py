"""Features stage: per-head keys/queries/values, residual tokens and logits for a shard of videos.

One hooked forward pass per batch of clips. Arrays are chunked one (video, layer) per
chunk, so a later stage reading one video at one layer touches exactly one chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import zarr
from tqdm import tqdm

from videoconcepts.decode import decode_status, open_decoded
from videoconcepts.stores import atomic_store, create_array, open_store

if TYPE_CHECKING:  # the model code loads only in the features job itself
    from videoconcepts.models import HeadKind, ModelAdapter

KIND = "features"


@dataclass(frozen=True)
class FeatureSettings:
    """What to capture. ``layers=None`` means every layer."""

    model: dict | str  # a resolved ModelSpec as a dict, or a bare checkpoint
    layers: list[int] | None = None
    heads: list[HeadKind] = field(default_factory=lambda: ["keys"])
    residual: bool = True
    dtype: str = "float32"
    batch_size: int = 8
    device: str = "auto"


def _split_ok(decode_stores: Sequence[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    ok, skipped = [], []
    for store in decode_stores:
        status = decode_status(store)
        if status["status"] == "ok":
            ok.append(Path(store))
        else:
            skipped.append(status)
    return ok, skipped


def _create_arrays(
    group: zarr.Group, adapter: ModelAdapter, settings: FeatureSettings, n_videos: int
) -> None:
    g, n_layers = adapter.grid, len(settings.layers)
    grid = (g.frames, g.height, g.width)
    create_array(
        group, "logits", (n_videos, adapter.num_classes), "float32", (1, adapter.num_classes)
    )
    head_shape = (n_layers, adapter.num_heads, *grid, adapter.head_dim)
    for kind in settings.heads:
        create_array(group, kind, (n_videos, *head_shape), settings.dtype, (1, 1, *head_shape[1:]))
    if settings.residual:
        shape = (n_layers, *grid, adapter.hidden_size)
        create_array(group, "residual", (n_videos, *shape), settings.dtype, (1, 1, *shape[1:]))


def _check_clip_shape(store: Path, frames: zarr.Array, adapter: ModelAdapter) -> None:
    expected = (adapter.num_frames, adapter.image_size, adapter.image_size, 3)
    if tuple(frames.shape) != expected:
        raise ValueError(
            f"{store}: decoded clip has shape {tuple(frames.shape)} but the model "
            f"({adapter.family}) expects {expected}; set decode.num_frames/decode.size to "
            "the model's input or leave them unset to use its defaults"
        )


def write_feature_store(
    decode_stores: Sequence[str | Path], out: str | Path, settings: FeatureSettings
) -> int:
    """Capture features for every decoded (not skipped) video; return how many were stored."""
    from videoconcepts.models import load_adapter

    ok, skipped = _split_ok([Path(s) for s in decode_stores])
    adapter = load_adapter(settings.model, settings.device)
    layers = list(range(adapter.num_layers)) if settings.layers is None else settings.layers
    settings = FeatureSettings(**{**asdict(settings), "layers": layers})
    groups = [open_decoded(store) for store in ok]
    for store, group in zip(ok, groups, strict=True):
        _check_clip_shape(store, group["frames"], adapter)
    g = adapter.grid
    attrs = {
        "video_ids": [group.attrs["video_id"] for group in groups],
        "decode_stores": [str(store) for store in ok],
        "skipped": skipped,
        "layers": layers,
        "head_kinds": list(settings.heads),
        "grid": [g.frames, g.height, g.width],
        "num_heads": adapter.num_heads,
        "head_dim": adapter.head_dim,
        "hidden_size": adapter.hidden_size,
        "class_names": adapter.class_names,
        "family": adapter.family,
        "device": str(adapter.device),
        "autocast": "bfloat16" if adapter.device.type == "cuda" else "none",
        "settings": asdict(settings),
    }
    with atomic_store(out, KIND, **attrs) as store:
        _create_arrays(store, adapter, settings, len(groups))
        starts = range(0, len(groups), settings.batch_size)
        for start in tqdm(starts, desc=f"features {Path(out).name}", unit="batch"):
            batch = groups[start : start + settings.batch_size]
            frames = torch.from_numpy(np.stack([group["frames"][...] for group in batch]))
            captured = adapter.capture(frames, layers, settings.heads, settings.residual)
            rows = slice(start, start + len(batch))
            store["logits"][rows] = captured.logits.cpu().numpy()
            for kind, tensor in captured.heads.items():
                store[kind][rows] = tensor.cpu().numpy().astype(settings.dtype)
            if captured.residual is not None:
                store["residual"][rows] = captured.residual.cpu().numpy().astype(settings.dtype)
    return len(groups)


def open_features(path: str | Path) -> zarr.Group:
    return open_store(path, KIND)
