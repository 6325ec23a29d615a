"""SAE training throughput: bf16 autocast (the stage's way where the CPU computes bf16,
``masking.precision: auto``) against fp32, at the demo's width and at a ViT-B's.

    python benchmarks/sae.py [--steps 60] [--threads 2]

Trains :func:`methods.sae.train_sae` (Matryoshka groups, the temporal contrastive term,
the auxiliary loss: everything a step does) on random token pairs of one clip grid, the
two precisions alternated so that drift hits both alike, and prints token pairs per
second and their ratio per width. It also checks that a bf16 run's first-step loss is the
fp32 one within bf16 rounding (the same computation, only the matrix products rounded).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

from videoconcepts.methods.sae import TrainSettings, pair_batches, train_sae

SIZES = {  # width -> (k, tokens per time step): the demo model's and a ViT-B's
    64: (8, 64),
    768: (32, 196),
}


def measure(width: int, k: int, positions: int, args: argparse.Namespace) -> None:
    """Alternate fp32 and bf16 training runs on one width; print the rates and ratio."""
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(8, positions, width)).astype(np.float32) for _ in range(8)]
    pairs_per_epoch = len(clips) * 7 * positions
    epochs = -(-args.steps * args.batch_size // pairs_per_epoch)
    settings = TrainSettings(
        k=k, contrastive=1.0, expansion=4, matryoshka_groups=2, temperature=0.5,
        learning_rate=1e-3, epochs=epochs, batch_size=args.batch_size, seed=0,
    )  # fmt: skip

    def batches(epoch: int):
        return pair_batches(iter(clips), args.batch_size, np.random.default_rng([0, epoch]))

    def run(precision: torch.dtype, chosen: TrainSettings) -> tuple[float, float]:
        autocast = torch.autocast("cpu", dtype=precision, enabled=precision != torch.float32)
        started = time.perf_counter()
        _, history = train_sae(width, batches, chosen, autocast=autocast, log=lambda _: None)
        seconds = time.perf_counter() - started
        return len(history) * args.batch_size / seconds, history[0][1]

    run(torch.bfloat16, replace(settings, epochs=1))  # warm up
    rates: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    first: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            rate, first[name] = run(dtype, settings)
            rates[name].append(rate)
    fp32, bf16 = (statistics.median(rates[n]) for n in ("float32", "bfloat16"))
    print(
        f"width {width} ({4 * width} features, k={k}): fp32 {fp32:,.0f} pairs/s, "
        f"bf16 {bf16:,.0f} pairs/s, bf16 / fp32 {bf16 / fp32:.2f}x "
        f"(first-step loss {first['float32']:.4f} vs {first['bfloat16']:.4f})"
    )
    if abs(first["float32"] - first["bfloat16"]) > 0.02 * abs(first["float32"]):
        raise SystemExit("bf16's first-step loss is not fp32's within rounding")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.steps} steps per run")
    for width, (k, positions) in SIZES.items():
        measure(width, k, positions, args)


if __name__ == "__main__":
    main()
