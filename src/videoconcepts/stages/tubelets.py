"""tubelets: proposals for every (video, head) of each analysed layer of a feature shard.

One store per (layer, shard); one job writes a shard's layers, one after the other, so
a shard pays the start-up once and shards stay parallel jobs. It reads
``features[kind][:, layer]`` one video (one chunk) at a time, so its memory is bounded
by a video's layer, not by the data set. Random crops with ``n_crops: matched``
also read the SLIC tubelet store of the same layer and shard, and take its tubelet count
per (video, head), so the baseline's crops are as many, and as large, as SLIC's tubelets.
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
from videoconcepts.stores.tubelets import KIND, TABLE_COLUMNS, open_tubelets

HELP = "tubelet proposals for the layers of a shard"


@dataclass(frozen=True, kw_only=True)
class TubeletSettings(ProposalSettings):
    """The proposal settings, and which captured head features they run on.

    ``matched_to`` (random crops with ``n_crops`` "matched" only): the settings hash of the
    SLIC tubelets whose counts they take, so that tuning SLIC names new crops too.
    """

    head_kind: str
    matched_to: str | None = None


Settings = TubeletSettings


def video_rng(settings: ProposalSettings, video_id: str) -> np.random.Generator | None:
    """Per-video generator of random crops (None for SLIC, which draws nothing), so crops do
    not depend on shard layout or job order."""
    if settings.method != "random_crops":
        return None
    return np.random.default_rng([settings.seed, zlib.crc32(video_id.encode())])


def matched_counts(match: str | Path, expected: dict) -> np.ndarray:
    """(videos, heads) tubelet counts of the SLIC store ``match``, checked to hold the
    ``expected`` attributes (videos, layer, heads, grid) of the store being written."""
    slic = open_tubelets(match)
    if slic.attrs["settings"]["method"] != "slic":
        raise ValueError(f"{match}: not SLIC tubelets")
    for key, value in expected.items():
        if slic.attrs[key] != value:
            raise ValueError(f"{match}: {key} differ from the matched crops' ({value})")
    return np.diff(slic["offsets"][...]).reshape(len(expected["video_ids"]), -1)


def write_tubelet_store(
    feature_store: str | Path,
    layer: int,
    out: str | Path,
    settings: TubeletSettings,
    match: str | Path | None = None,
) -> int:
    """Propose tubelets for model layer ``layer`` of every video in a shard; return the count.

    ``match``: the SLIC tubelet store of the same layer and shard, for matched random crops.
    """
    features = open_features(feature_store)
    attrs = features.attrs
    matched = settings.method == "random_crops" and settings.n_crops == "matched"
    if matched != (match is not None):
        raise ValueError(
            "random crops with n_crops 'matched' need the SLIC tubelet store (match), "
            "and only they take one"
        )
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
    shape = {"video_ids": attrs["video_ids"], "layer": layer, "num_heads": n_heads, "grid": grid}
    counts = matched_counts(match, shape) if matched else None
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
        matched_store=str(match) if matched else None,
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
                n_crops = None if counts is None else int(counts[v, h])
                label_volume, desc = propose(volumes[h], settings, rng, n_crops)
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
    parser.add_argument(
        "--layers", type=int, nargs="+", required=True, help="model layers (0-based)"
    )
    parser.add_argument("--out", nargs="+", required=True, help="one store per layer")
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument(
        "--match", nargs="+", help="SLIC tubelets of the same layers and shard (matched crops)"
    )


def run(args: argparse.Namespace) -> None:
    matches = args.match or [None] * len(args.layers)
    if not len(args.out) == len(matches) == len(args.layers):
        sys.exit("videoconcepts tubelets: error: give one --out (and --match) per layer")
    for layer, out, match in zip(args.layers, args.out, matches, strict=True):
        count = write_tubelet_store(args.features, layer, out, args.settings, match)
        print(f"{count} tubelets in {out}", file=sys.stderr)
