"""straightening: how straight each video's trajectory is at each layer and in pixels.

A layer's trajectory of a video is its residual tokens at each time step of the token
grid, flattened (all patch tokens together, as ReStraV takes a frame's tokens); the
pixel trajectory is the clip's frames averaged over the same time steps. Per video and
layer: the mean turning angle (curvature, degrees), the mean step distance, ReStraV's
21 numbers (token grids of 8 time steps or more), and the curvature of the same
trajectory with its time steps shuffled (the null: how curved this representation is
when time order carries nothing).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from videoconcepts.methods.straightening import (
    RESTRAV_DISTANCES,
    RESTRAV_SIZE,
    frame_bins,
    restrav_vector,
    shuffled_curvature,
    shuffled_orders,
    steps,
)
from videoconcepts.runtime import typed_json
from videoconcepts.stores.base import atomic_store, write_array, write_table
from videoconcepts.stores.decode import open_decoded
from videoconcepts.stores.features import open_features
from videoconcepts.stores.straightening import COLUMNS, KIND, PIXELS

HELP = "trajectory curvature per video and layer, against pixels and shuffled time"


@dataclass(frozen=True)
class StraighteningSettings:
    permutations: int  # shuffled orders per video for the null
    seed: int


Settings = StraighteningSettings


def video_points(tokens: np.ndarray, frames: np.ndarray) -> list[np.ndarray]:
    """One video's trajectories, pixels first: (T', dims) per layer from its residual
    tokens (L, T', H', W', D) and its frames (T, H, W, 3) binned to the T' time steps."""
    n_steps = tokens.shape[1]
    pixels = frame_bins(frames[None], n_steps)[0]
    return [pixels, *(layer.reshape(n_steps, -1) for layer in tokens.astype(np.float32))]


def straightening(
    features: Sequence[str | Path], settings: StraighteningSettings, out: str | Path
) -> pd.DataFrame:
    """Write the store (distances, angles, ReStraV vectors, per video and layer) and
    return the per-video table. One video in memory at a time; video ``v`` (in shard
    order) draws its shuffled orders from the seed and ``v``."""
    ids, layers, distances, angles, null = [], None, [], [], []
    for path in features:
        store = open_features(path)
        if "residual" not in store:
            raise ValueError(
                f"{path}: no residual tokens (features.residual is false); straightening "
                "needs them (or set straightening.enabled: false)"
            )
        layers = [PIXELS, *store.attrs["layers"]]
        decoded = store.attrs["decode_stores"]
        for v, decode in enumerate(tqdm(decoded, desc=f"straightening {Path(path).name}")):
            points = video_points(store["residual"][v], open_decoded(decode)["frames"][...])
            rng = np.random.default_rng([settings.seed, len(ids) + v])
            orders = shuffled_orders(len(points[0]), settings.permutations, rng)
            d, a = zip(*(steps(p) for p in points), strict=True)
            distances.append(np.stack(d))
            angles.append(np.stack(a))
            null.append([shuffled_curvature(p, orders) for p in points])
        ids.extend(store.attrs["video_ids"])
    distances, angles, null = np.stack(distances), np.stack(angles), np.asarray(null)
    curvature = np.nanmean(angles, axis=-1)
    long_enough = distances.shape[-1] >= RESTRAV_DISTANCES
    vectors = (
        restrav_vector(distances, angles)
        if long_enough
        else np.full((*distances.shape[:2], RESTRAV_SIZE), np.nan)
    )
    with atomic_store(
        out,
        KIND,
        video_ids=ids,
        layers=layers,
        feature_stores=[str(p) for p in features],
        settings=asdict(settings),
        restrav=bool(long_enough),
    ) as group:
        write_array(group, "distances", distances.astype(np.float32))
        write_array(group, "angles", angles.astype(np.float32))
        write_array(group, "restrav", vectors.astype(np.float32))
    v, li = np.meshgrid(np.arange(len(ids)), np.arange(len(layers)), indexing="ij")
    return pd.DataFrame(
        {
            "layer": np.asarray(layers)[li.ravel()],
            "video": np.asarray(ids)[v.ravel()],
            "curvature": curvature.ravel(),
            "shuffled_curvature": null.ravel(),
            "distance": distances.mean(axis=-1).ravel(),
        }
    )[list(COLUMNS)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the straightening store (.zarr)")
    parser.add_argument("--table", required=True, help="per video and layer (.tsv)")
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("features", nargs="+", help="the model's feature stores")


def run(args: argparse.Namespace) -> None:
    table = straightening(args.features, args.settings, args.out)
    write_table(table, args.table, "%.6g")
    summary = table.groupby("layer")[["curvature", "shuffled_curvature", "distance"]].mean()
    print(summary.to_string(), file=sys.stderr)
