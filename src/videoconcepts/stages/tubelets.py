"""tubelets: proposals for every (video, head) of one layer of a feature shard.

One job reads ``features[kind][:, layer]`` one video (one chunk) at a time, so its memory
is bounded by a video's layer, not by the data set.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from videoconcepts.methods.proposals import LABEL_DTYPE, ProposalSettings, propose, tubelet_stats
from videoconcepts.runtime import typed_json
from videoconcepts.stores.base import atomic_store, create_array, write_array
from videoconcepts.stores.features import open_features
from videoconcepts.stores.tubelets import KIND, TABLE_COLUMNS

HELP = "tubelet proposals for one layer of a shard"


@dataclass(frozen=True, kw_only=True)
class TubeletSettings(ProposalSettings):
    """The proposal settings, and which captured head features they run on."""

    head_kind: str


Settings = TubeletSettings


def video_rng(settings: ProposalSettings, video_id: str) -> np.random.Generator | None:
    """Per-video generator of random crops (None for SLIC, which draws nothing), so crops do
    not depend on shard layout or job order."""
    if settings.method != "random_crops":
        return None
    return np.random.default_rng([settings.seed, zlib.crc32(video_id.encode())])


def write_tubelet_store(
    feature_store: str | Path,
    layer: int,
    out: str | Path,
    settings: TubeletSettings,
) -> int:
    """Propose tubelets for model layer ``layer`` of every video in a shard; return the count."""
    features = open_features(feature_store)
    attrs = features.attrs
    if settings.head_kind not in attrs["head_kinds"]:
        raise ValueError(
            f"{feature_store}: has no {settings.head_kind!r} (stored: {attrs['head_kinds']})"
        )
    if layer not in attrs["layers"]:
        raise ValueError(f"{feature_store}: layer {layer} not captured (have {attrs['layers']})")
    heads = features[settings.head_kind]
    index = attrs["layers"].index(layer)
    n_videos, n_heads = heads.shape[0], heads.shape[2]
    grid = [g * f for g, f in zip(attrs["grid"], settings.upsample, strict=True)]
    rows, descriptors, offsets = [], [], [0]
    with atomic_store(
        out,
        KIND,
        video_ids=attrs["video_ids"],
        layer=layer,
        head_kind=settings.head_kind,
        num_heads=n_heads,
        grid=grid,
        feature_grid=attrs["grid"],
        feature_store=str(feature_store),
        table_columns=list(TABLE_COLUMNS),
        settings=asdict(settings),
    ) as store:
        labels = create_array(
            store,
            "labels",
            (n_videos, n_heads, *grid),
            np.dtype(LABEL_DTYPE).name,
            (1, 1, *grid),
        )
        for v, video_id in enumerate(tqdm(attrs["video_ids"], desc=f"tubelets layer {layer}")):
            volumes = heads[v, index]  # (heads, T', H', W', C): one chunk
            rng = video_rng(settings, video_id)
            for h in range(n_heads):
                label_volume, desc = propose(volumes[h], settings, rng)
                labels[v, h] = label_volume
                stats = tubelet_stats(label_volume)
                stats.insert(0, "head", h)
                stats.insert(0, "video", v)
                rows.append(stats)
                descriptors.append(desc)
                offsets.append(offsets[-1] + len(desc))
        empty = pd.DataFrame(columns=list(TABLE_COLUMNS))  # a shard whose videos were all skipped
        table = pd.concat([empty, *rows], ignore_index=True)[list(TABLE_COLUMNS)]
        write_array(store, "tubelets", table.to_numpy(np.int32), chunks=(max(1, len(table)), 10))
        n_dims = heads.shape[-1]
        stacked = np.concatenate([np.empty((0, n_dims)), *descriptors]).astype(np.float32)
        write_array(
            store,
            "descriptors",
            stacked,
            chunks=(max(1, min(len(stacked), 65536)), stacked.shape[1]),
        )
        write_array(store, "offsets", np.asarray(offsets, dtype=np.int64))
    return len(table)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", required=True)
    parser.add_argument("--layer", type=int, required=True, help="model layer (0-based)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--settings", required=True, type=typed_json(Settings))


def run(args: argparse.Namespace) -> None:
    count = write_tubelet_store(args.features, args.layer, args.out, args.settings)
    print(f"{count} tubelets in {args.out}", file=sys.stderr)
