"""features: per-head keys/queries/values, residual tokens and logits for a shard of videos.

One hooked forward pass per batch of clips, the model loaded once per shard.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import zarr
from tqdm import tqdm

from videoconcepts.devices import dtype_name
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stores.base import atomic_store
from videoconcepts.stores.decode import open_decoded, split_decoded
from videoconcepts.stores.features import KIND, create_feature_arrays

if TYPE_CHECKING:  # the model code loads only in the features job itself
    from videoconcepts.models import HeadKind, ModelAdapter

HELP = "capture features for a shard of videos"


@dataclass(frozen=True)
class FeatureSettings:
    """What to capture. ``layers=None`` means every layer; ``videos_per_job`` shapes the
    shards (the workflow splits the videos), so it names the output but is not used here."""

    model: dict | str  # a resolved ModelSpec as a dict, or a bare checkpoint
    layers: list[int] | None
    heads: list[HeadKind]
    residual: bool
    dtype: str
    videos_per_job: int
    # hashed, unlike the masking stages' precision: bf16 features move SLIC's segments and
    # the concept counts (162 concepts on the demo instead of 154), beyond rounding noise;
    # never "auto", which would name results by the machine that computed them
    precision: Literal["float32", "bfloat16"]


Settings = FeatureSettings


def _check_clip_shape(store: Path, frames: zarr.Array, adapter: ModelAdapter) -> None:
    expected = (adapter.num_frames, adapter.image_size, adapter.image_size, 3)
    if tuple(frames.shape) != expected:
        raise ValueError(
            f"{store}: decoded clip has shape {tuple(frames.shape)} but the model "
            f"({adapter.family}) expects {expected}; set decode.num_frames/decode.size to "
            "the model's input or leave them unset to use its defaults"
        )


def write_feature_store(
    decode_stores: Sequence[str | Path],
    out: str | Path,
    settings: FeatureSettings,
    runtime: Runtime,
) -> int:
    """Capture features for every decoded (not skipped) video; return how many were stored."""
    from videoconcepts.models import load_adapter

    ok, _, skipped = split_decoded(decode_stores)
    adapter = load_adapter(settings.model, runtime.device, settings.precision)
    layers = list(range(adapter.num_layers)) if settings.layers is None else settings.layers
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
        "precision": dtype_name(adapter.precision),
        "settings": {**asdict(settings), "layers": layers},
    }
    with atomic_store(out, KIND, **attrs) as store:
        create_feature_arrays(
            store,
            adapter,
            len(layers),
            settings.heads,
            settings.residual,
            settings.dtype,
            len(groups),
        )
        starts = range(0, len(groups), runtime.batch_size)
        for start in tqdm(starts, desc=f"features {Path(out).name}", unit="batch"):
            batch = groups[start : start + runtime.batch_size]
            frames = torch.from_numpy(np.stack([group["frames"][...] for group in batch]))
            captured = adapter.capture(frames, layers, settings.heads, settings.residual)
            rows = slice(start, start + len(batch))
            store["logits"][rows] = captured.logits.cpu().numpy()
            for kind, tensor in captured.heads.items():
                store[kind][rows] = tensor.cpu().numpy().astype(settings.dtype)
            if captured.residual is not None:
                store["residual"][rows] = captured.residual.cpu().numpy().astype(settings.dtype)
    return len(groups)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True)
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    Runtime.add_arguments(parser, precision=False)
    parser.add_argument("decode_stores", nargs="+")


def run(args: argparse.Namespace) -> None:
    count = write_feature_store(
        args.decode_stores, args.out, args.settings, Runtime.from_args(args)
    )
    print(f"features for {count} videos in {args.out}", file=sys.stderr)
