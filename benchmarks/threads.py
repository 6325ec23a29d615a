"""One two-thread model job against two one-thread jobs side by side: which does more?

    python benchmarks/threads.py [--model demo|base] [--masks 256] [--batch 32]

The workflow's model-running jobs (CRIS shards, occlusion, heads, targets, features)
take ``masking.threads``/``features.threads``, null meaning 1 for the demo model and 2
otherwise. This measures the choice on the machine at hand: batched CRIS masks per
second (remove mode, the default precision) of (1) one process with 2 torch threads and
(2) two processes with 1 thread each, started together. Prints the speed-up a second
thread gives one job and the throughput ratio (2)/(1). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np
import torch
from cris import box_units, build_adapter

from videoconcepts.devices import pick_precision
from videoconcepts.methods.cris import sample_masks
from videoconcepts.models.scorer import MaskingSettings, MaskScorer


def masks_per_second(model: str, threads: int, n_masks: int, batch: int, start_at) -> float:
    """Batched CRIS masks/s of one clip in a process limited to ``threads`` threads;
    timing starts once every process has warmed up (``start_at``, a barrier)."""
    torch.set_num_threads(threads)
    adapter = build_adapter(model, "cpu")
    adapter.precision = pick_precision("auto", adapter.device)
    tokens = box_units(adapter, 8, seed=0)
    masks = sample_masks(n_masks, int(tokens.max()) + 1, 0.5, seed=0)
    clip = np.random.default_rng(0).integers(
        0, 256, (adapter.num_frames, adapter.image_size, adapter.image_size, 3), np.uint8
    )
    settings = MaskingSettings("benchmark", "remove", "keys", "correctness", "none")
    with MaskScorer(adapter, range(adapter.num_layers), settings, batch) as scorer:
        scorer.scores(clip, tokens, masks[:batch], target=0)  # warm-up
        start_at.wait()
        start = time.perf_counter()
        scorer.scores(clip, tokens, masks, target=0)
    return n_masks / (time.perf_counter() - start)


def _worker(model: str, threads: int, n_masks: int, batch: int, barrier, results) -> None:
    results.put(masks_per_second(model, threads, n_masks, batch, barrier))


def run(model: str, threads: int, processes: int, n_masks: int, batch: int) -> float:
    """Total masks/s of ``processes`` processes of ``threads`` threads each."""
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_worker, args=(model, threads, n_masks, batch, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    rates = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["demo", "base"], default="demo")
    parser.add_argument("--masks", type=int, default=256, help="masks per process")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    one = run(args.model, 1, 1, args.masks, args.batch)
    print(f"model {args.model}: one job, 1 thread     {one:7.1f} masks/s", flush=True)
    single = run(args.model, 2, 1, args.masks, args.batch)
    print(f"model {args.model}: one job, 2 threads    {single:7.1f} masks/s", flush=True)
    pair = run(args.model, 1, 2, args.masks, args.batch)
    print(f"model {args.model}: two jobs, 1 thread each {pair:7.1f} masks/s in all")
    print(f"second thread speeds one job up: {single / one:.2f}x")
    print(f"ratio two one-thread jobs / one two-thread job: {pair / single:.2f}")


if __name__ == "__main__":
    main()
