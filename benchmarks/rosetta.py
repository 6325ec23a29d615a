"""Rosetta mining as the rosetta stage does it vs. the all-combinations way, on a
paper-sized problem.

    python benchmarks/rosetta.py [--models 4] [--concepts 300] [--videos 30]
        [--grid 8 14 14] [--epsilon 0.15] [--delta 0.15] [--shared 60]

The paper (VTCD §4.5.7) mines four models, on the order of 300 concepts each, on 30 clips
of VideoMAE-B's 8 x 14 x 14 token grid, keeping the top 15 % by importance (45 per model).
Each concept's support is a random box per video (absent from about 30% of the videos);
``--shared`` latent objects appear in every model (moved a little and with voxels
dropped per model), the rest are the model's own, so Rosetta pairs and triples exist.
Only the candidates are built (the top epsilon of ``--concepts``).

- "all combinations": every d-tuple of the candidates for every set of d models scored
  (vectorised over the last model's concepts), then those at or above delta kept; the
  reference code does this concept tuple by concept tuple in Python, so this way is
  faster than the reference, and the ratio below a lower bound;
- "mining" (:func:`videoconcepts.methods.rosetta.mine`): pairs as one matrix product per
  video, longer tuples grown only from surviving ones, with bit-packed masks.

Both must find the same tuples with the same scores (checked). Printed: the time and
peak memory (tracemalloc, numpy's allocations) of each, in one run, and their ratios.
"""

from __future__ import annotations

import argparse
import itertools
import time
import tracemalloc

import numpy as np

from videoconcepts.methods.rosetta import Supports, all_tuple_scores, mine


def blobs(rng: np.random.Generator, n: int, videos: int, grid: tuple[int, int, int]):
    """(n, videos, *grid) bool: n random boxes per video (each a concept's support)."""
    masks = np.zeros((n, videos, *grid), bool)
    for c in range(n):
        for v in range(videos):
            if rng.random() < 0.3:  # a concept appears in ~70% of the videos
                continue
            lo = [rng.integers(0, g) for g in grid]
            size = [rng.integers(1, max(2, g // 2) + 1) for g in grid]
            masks[
                c, v, lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]
            ] = True
    return masks


def problem(args) -> list[Supports]:
    """Each model's candidates, its top epsilon: two thirds of them shared objects (a
    random subset per model), moved by up to one token in space and with 5% of their
    voxels dropped, the rest the model's own."""
    rng = np.random.default_rng(0)
    grid = tuple(args.grid)
    latent = blobs(rng, args.shared, args.videos, grid)
    keep = int(np.ceil(args.epsilon * args.concepts))
    n_shared = min(args.shared, 2 * keep // 3)
    models = []
    for _ in range(args.models):
        chosen = latent[rng.choice(args.shared, n_shared, replace=False)]
        noisy = chosen & (rng.random(chosen.shape) > 0.05)  # 5% of each object's voxels lost
        noisy = np.roll(noisy, int(rng.integers(-1, 2)), axis=int(rng.integers(3, 5)))
        own = blobs(rng, keep - n_shared, args.videos, grid)
        models.append(Supports.from_masks(np.concatenate([noisy, own])))
    return models


def all_combinations(models: list[Supports], delta: float) -> dict[tuple, float]:
    found = {}
    for d in range(2, len(models) + 1):
        for chosen in itertools.combinations(range(len(models)), d):
            scores = all_tuple_scores([models[m] for m in chosen])
            sizes = [len(models[m]) for m in chosen]
            for flat in np.flatnonzero(scores >= delta):
                combo = np.unravel_index(flat, sizes)
                found[tuple(zip(chosen, map(int, combo), strict=True))] = float(scores[flat])
    return found


def mined(models: list[Supports], delta: float) -> dict[tuple, float]:
    return {
        tuple(zip(t.models, map(int, row), strict=True)): float(score)
        for t in mine(models, delta)
        for row, score in zip(t.concepts, t.scores, strict=True)
    }


def measure(way, models, delta) -> tuple[dict, float, float]:
    tracemalloc.start()
    start = time.perf_counter()
    found = way(models, delta)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return found, seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--concepts", type=int, default=300)
    parser.add_argument("--videos", type=int, default=30)
    parser.add_argument("--grid", type=int, nargs=3, default=[8, 14, 14])
    parser.add_argument("--epsilon", type=float, default=0.15)
    parser.add_argument("--delta", type=float, default=0.15)
    parser.add_argument("--shared", type=int, default=60)
    args = parser.parse_args()
    models = problem(args)
    sizes = [len(m) for m in models]
    total = sum(
        int(np.prod([sizes[m] for m in chosen]))
        for d in range(2, len(sizes) + 1)
        for chosen in itertools.combinations(range(len(sizes)), d)
    )
    print(
        f"{args.models} models x {args.concepts} concepts, {args.videos} videos, grid "
        f"{args.grid}: {sizes[0]} candidates each (epsilon {args.epsilon}), {total:,} tuples"
    )
    fast, fast_s, fast_mb = measure(mined, models, args.delta)
    slow, slow_s, slow_mb = measure(all_combinations, models, args.delta)
    same = fast.keys() == slow.keys() and np.allclose([fast[k] for k in slow], list(slow.values()))
    per_d = {d: sum(len(k) == d for k in fast) for d in range(2, args.models + 1)}
    print(f"Rosetta tuples at delta {args.delta}: {per_d}; both ways agree: {same}")
    print(f"all combinations: {slow_s:8.2f} s, peak {slow_mb:8.1f} MiB")
    print(f"mining:           {fast_s:8.2f} s, peak {fast_mb:8.1f} MiB")
    print(f"speed-up {slow_s / fast_s:.1f}x, memory ratio {slow_mb / fast_mb:.1f}x")
    if not same:
        raise SystemExit("the two ways disagree")


if __name__ == "__main__":
    main()
