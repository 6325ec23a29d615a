"""straightening: how straight each video's trajectory is at each layer and in pixels.

A layer's trajectory of a video is its residual tokens at each time step of the token
grid, flattened (all patch tokens together, as ReStraV takes a frame's tokens); the
pixel trajectory is the clip's frames averaged over the same time steps. Per video and
layer: the mean turning angle (curvature, degrees), the mean step distance, ReStraV's
21 numbers (token grids of 8 time steps or more), and the curvature of the same
trajectory with its time steps shuffled (the null: how curved this representation is
when time order carries nothing). With ``random_weights`` the same layers of the model
with every weight redrawn are measured too: what the architecture alone does to the
geometry. A sample sheet marking natural and generated videos labels each video for
the detector.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import zarr
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
from videoconcepts.models.base import ModelAdapter
from videoconcepts.models.random_checkpoints import randomise_weights
from videoconcepts.plan.samples import detection_labels
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stores.base import atomic_store, write_array, write_table
from videoconcepts.stores.decode import open_decoded
from videoconcepts.stores.features import open_features
from videoconcepts.stores.straightening import COLUMNS, KIND, PIXELS

HELP = "trajectory curvature per video and layer, against pixels, random weights and shuffled time"


@dataclass(frozen=True)
class StraighteningSettings:
    permutations: int  # shuffled orders per video for the null
    seed: int  # of the null's orders and of the random weights
    random_weights: bool  # the same layers of the architecture with every weight redrawn


Settings = StraighteningSettings


def video_points(tokens: np.ndarray, frames: np.ndarray) -> list[np.ndarray]:
    """One video's trajectories, pixels first: (T', dims) per layer from its residual
    tokens (L, T', H', W', D) and its frames (T, H, W, 3) binned to the T' time steps."""
    n_steps = tokens.shape[1]
    pixels = frame_bins(frames[None], n_steps)[0]
    return [pixels, *(layer.reshape(n_steps, -1) for layer in tokens.astype(np.float32))]


def random_model(store: zarr.Group, seed: int, runtime: Runtime) -> ModelAdapter:
    """The feature store's model, at its precision, with every weight redrawn (seeded)."""
    from videoconcepts.models import load_adapter

    captured = store.attrs["settings"]
    adapter = load_adapter(captured["model"], runtime.device, captured["precision"])
    randomise_weights(adapter.model, seed)
    return adapter


def clips(
    store: zarr.Group, batch_size: int, control: ModelAdapter | None
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Each video's frames (T, H, W, 3), in the feature store's order, read once, with
    its residual tokens (L, T', H', W', D) from ``control`` at the store's layers (None
    without one), run a batch at a time."""
    decoded = store.attrs["decode_stores"]
    for start in range(0, len(decoded), batch_size):
        frames = np.stack(
            [open_decoded(d)["frames"][...] for d in decoded[start : start + batch_size]]
        )
        if control is None:
            yield from ((clip, None) for clip in frames)
            continue
        tokens = control.capture(torch.from_numpy(frames), store.attrs["layers"], (), residual=True)
        yield from zip(frames, tokens.residual.cpu().numpy(), strict=True)


def straightening(
    name: str,
    features: Sequence[str | Path],
    settings: StraighteningSettings,
    out: str | Path,
    labels: dict[str, tuple[str, str]] | None = None,
    runtime: Runtime | None = None,
) -> pd.DataFrame:
    """Write the store (distances, angles, ReStraV vectors, per video and trajectory:
    pixels, each layer, each layer with random weights) and return the per-video table.
    ``labels`` (video id -> natural or generated, and its cross-validation group) go
    into both; ``runtime`` runs the random-weights model. Video ``v`` (in shard order)
    draws its shuffled orders from the seed and ``v``."""
    if settings.random_weights and runtime is None:
        raise ValueError("straightening with random_weights needs a runtime to run the model")
    ids, layers, weights, distances, angles, null = [], [], [], [], [], []
    control = None
    for path in features:
        store = open_features(path)
        if "residual" not in store:
            raise ValueError(
                f"{path}: no residual tokens (features.residual is false); straightening "
                "needs them (or set straightening.enabled: false)"
            )
        model_layers = list(store.attrs["layers"])
        layers = [PIXELS, *model_layers] + (model_layers if settings.random_weights else [])
        weights = ["pixels"] + ["trained"] * len(model_layers)
        weights += ["random"] * len(model_layers) if settings.random_weights else []
        if settings.random_weights:
            control = control or random_model(store, settings.seed, runtime)
        videos = clips(store, runtime.batch_size if control else 1, control)
        total = len(store.attrs["decode_stores"])
        progress = tqdm(videos, total=total, desc=f"straightening {Path(path).name}")
        for v, (frames, redrawn) in enumerate(progress):
            points = video_points(store["residual"][v], frames)
            if redrawn is not None:
                points += video_points(redrawn, frames)[1:]
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
    video_labels, groups = zip(*((labels or {}).get(i, ("", i)) for i in ids), strict=True)
    with atomic_store(
        out,
        KIND,
        video_ids=ids,
        labels=list(video_labels),
        groups=list(groups),
        layers=layers,
        weights=weights,
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
            "model": name,
            "weights": np.asarray(weights)[li.ravel()],
            "layer": np.asarray(layers)[li.ravel()],
            "video": np.asarray(ids)[v.ravel()],
            "label": np.asarray(video_labels)[v.ravel()],
            "curvature": curvature.ravel(),
            "shuffled_curvature": null.ravel(),
            "distance": distances.mean(axis=-1).ravel(),
        }
    )[list(COLUMNS)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the model's name in the run")
    parser.add_argument("--out", required=True, help="the straightening store (.zarr)")
    parser.add_argument("--table", required=True, help="per video and layer (.tsv)")
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument(
        "--labels", default=None, help="sample sheet marking natural and generated videos"
    )
    parser.add_argument("--column", default="label", help="the sheet's column of classes")
    parser.add_argument("--natural", default="natural", help="the natural videos' class")
    Runtime.add_arguments(parser, precision=False)
    parser.add_argument("features", nargs="+", help="the model's feature stores")


def run(args: argparse.Namespace) -> None:
    labels = detection_labels(args.labels, args.column, args.natural) if args.labels else None
    runtime = Runtime.from_args(args)
    table = straightening(args.name, args.features, args.settings, args.out, labels, runtime)
    write_table(table, args.table, "%.6g")
    columns = ["curvature", "shuffled_curvature", "distance"]
    summary = table.groupby(["weights", "layer", "label"])[columns].mean()
    print(summary.to_string(), file=sys.stderr)
