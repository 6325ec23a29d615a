"""sae: train one sparse autoencoder (TopK, Matryoshka groups, temporal contrastive term;
paper 000) on one layer's residual tokens of one model.

Tokens stream from the feature stores a buffer of videos at a time (memory does not grow
with the number of videos): each epoch shuffles the training videos, then every (t,
t+1) pair of one position within a buffer, from the seed and the epoch alone, so a
killed job resumes from its checkpoint (beside the output, kept until the store is
written) to the weights an uninterrupted run ends with. Held-out videos (``holdout``)
are never trained on; the measures stage reads the split from the store.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from videoconcepts.devices import describe, dtype_name, pick_device, pick_precision
from videoconcepts.methods.sae import TrainSettings, pair_batches, train_sae
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stores.base import atomic_store, write_array, write_table
from videoconcepts.stores.features import open_features
from videoconcepts.stores.sae import HISTORY_COLUMNS, KIND

HELP = "train a sparse autoencoder (TopK, Matryoshka, temporal contrastive) on one layer"


@dataclass(frozen=True)
class SaeSettings(TrainSettings):
    layer: int
    holdout: float  # share of the videos never trained on
    buffer_videos: int  # videos whose tokens are shuffled together


Settings = SaeSettings


class LayerTokens:
    """One layer's residual tokens of every video in a model's feature stores, one video
    (T', H', W', width) at a time; ``normalised`` applies the SAE's input scaling."""

    def __init__(self, feature_stores: Sequence[str | Path], layer: int):
        self.layer = layer
        self.stores, self.at, self.ids = [], [], []
        for path in feature_stores:
            store = open_features(path)
            if "residual" not in store:
                raise ValueError(
                    f"{path}: no residual tokens (features.residual is false); the SAE "
                    "trains on them (or set sae.enabled: false)"
                )
            if layer not in store.attrs["layers"]:
                raise ValueError(
                    f"{path}: layer {layer} was not captured (features.layers "
                    f"{store.attrs['layers']})"
                )
            if store["residual"].shape[2] < 2:
                raise ValueError(
                    f"{path}: the token grid has one time step; the SAE trains on tokens "
                    "one time step apart (or set sae.enabled: false)"
                )
            index = store.attrs["layers"].index(layer)
            for v, video in enumerate(store.attrs["video_ids"]):
                self.at.append((len(self.stores), v, index))
                self.ids.append(video)
            self.stores.append(store)
        self.mean = np.zeros(self.width, np.float32)
        self.scale = 1.0

    @property
    def width(self) -> int:
        return int(self.stores[0]["residual"].shape[-1])

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(self.stores[0]["residual"].shape[2:5])

    def raw(self, video: int) -> np.ndarray:
        store, v, layer = self.at[video]
        return self.stores[store]["residual"][v, layer].astype(np.float32)

    def normalised(self, video: int) -> np.ndarray:
        return (self.raw(video) - self.mean) / self.scale

    def fit_normalisation(self, videos: Sequence[int]) -> None:
        """Mean token and one scale (the RMS distance to it) over ``videos``, streamed:
        one scalar scale keeps every direction's share of the variance as it was."""
        n, total, squares = 0, 0.0, 0.0
        for v in videos:
            x = self.raw(v).reshape(-1, self.width).astype(np.float64)
            n, total, squares = n + len(x), total + x.sum(0), squares + (x**2).sum(0)
        mean = total / n
        self.mean = mean.astype(np.float32)
        self.scale = float(np.sqrt(max((squares / n - mean**2).sum(), 1e-12)))


def holdout_split(ids: Sequence[str], share: float, seed: int) -> tuple[list[int], list[int]]:
    """(training, held-out) video positions: ``share`` of them held out (one at least),
    drawn from the seed."""
    n_held = max(1, int(round(share * len(ids))))
    if len(ids) - n_held < 2:
        raise ValueError(
            f"sae: {len(ids)} videos leave {len(ids) - n_held} to train on with holdout "
            f"{share}; give it 3 videos or more, or a smaller sae.holdout"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    return sorted(order[n_held:].tolist()), sorted(order[:n_held].tolist())


def epoch_batches(tokens: LayerTokens, videos: Sequence[int], settings: SaeSettings):
    """``batches(epoch)`` for :func:`train_sae`: the order depends on (seed, epoch) only."""

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([settings.seed, epoch])
        order = [videos[i] for i in rng.permutation(len(videos))]
        for start in range(0, len(order), settings.buffer_videos):
            chunk = order[start : start + settings.buffer_videos]
            yield from pair_batches((tokens.normalised(v) for v in chunk), settings.batch_size, rng)

    return batches


def sae(
    name: str,
    feature_stores: Sequence[str | Path],
    settings: SaeSettings,
    runtime: Runtime,
    out: str | Path,
    checkpoint_every: int,
) -> pd.DataFrame:
    """Train, write the store and return the training history."""
    tokens = LayerTokens(feature_stores, settings.layer)
    train, held = holdout_split(tokens.ids, settings.holdout, settings.seed)
    tokens.fit_normalisation(train)
    device = pick_device(runtime.device)
    dtype = pick_precision(runtime.precision or "float32", device)
    print(describe(device, dtype), file=sys.stderr)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    out = Path(out)
    checkpoint = out.with_name(f"{out.name}.checkpoint.pt")
    identity = {
        "videos": [tokens.ids[v] for v in train],
        "precision": dtype_name(dtype),
        "device": device.type,
    }
    pairs = len(train) * (tokens.grid[0] - 1) * tokens.grid[1] * tokens.grid[2]
    started = time.perf_counter()
    model, history = train_sae(
        tokens.width,
        epoch_batches(tokens, train, settings),
        settings,
        checkpoint=checkpoint,
        every=checkpoint_every,
        autocast=autocast,
        device=device,
        identity=identity,
        log=lambda line: print(line, file=sys.stderr),
        steps_per_epoch=-(-pairs // settings.batch_size),
    )
    seconds = time.perf_counter() - started
    print(
        f"trained {len(history)} steps in {seconds:.1f} s "
        f"({2 * pairs * settings.epochs / max(seconds, 1e-9):.0f} tokens/s)",
        file=sys.stderr,
    )
    with atomic_store(
        out,
        KIND,
        model=name,
        layer=settings.layer,
        settings=asdict(settings),
        scale=tokens.scale,
        grid=list(tokens.grid),
        video_ids=tokens.ids,
        train_videos=[tokens.ids[v] for v in train],
        heldout_videos=[tokens.ids[v] for v in held],
        feature_stores=[str(p) for p in feature_stores],
        precision=dtype_name(dtype),
        steps=len(history),
    ) as group:
        for key, value in model.state_dict().items():
            write_array(group, key, value.detach().float().cpu().numpy())
        write_array(group, "mean", tokens.mean)
    checkpoint.unlink(missing_ok=True)
    return pd.DataFrame(history, columns=list(HISTORY_COLUMNS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the model's name in the run")
    parser.add_argument("--out", required=True, help="the SAE store (.zarr)")
    parser.add_argument("--history", required=True, help="loss per step (.tsv)")
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument(
        "--checkpoint-every", type=int, required=True, help="steps between checkpoints"
    )
    Runtime.add_arguments(parser, batch=False)
    parser.add_argument("features", nargs="+", help="the model's feature stores")


def run(args: argparse.Namespace) -> None:
    runtime = Runtime.from_args(args)
    history = sae(args.name, args.features, args.settings, runtime, args.out, args.checkpoint_every)
    write_table(history, args.history, "%.6g")
    last = history.tail(max(1, len(history) // 10)).mean()
    print(
        f"last tenth of training: loss {last['loss']:.4f}, reconstruction "
        f"{last['reconstruction']:.4f}, contrastive {last['contrastive']:.4f}",
        file=sys.stderr,
    )
