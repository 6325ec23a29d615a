"""Tubelet proposals on one VideoMAE-B-sized head volume: SLIC, then descriptors + stats.

    python benchmarks/proposals.py [--grid 8 14 14] [--upsample 2 4 4] [--channels 64]

Times the trilinear upsampling, SLIC on the upsampled volume, and the vectorised
descriptors + stats against a per-tubelet Python loop (``mask = labels == k``), alternating
the two so drift on a busy machine hits both alike; checks both give the same numbers.
Medians; ``--segments`` repeats it for more tubelets, where the loop's cost grows linearly.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.ndimage as ndi

from videoconcepts.methods.proposals import (
    ProposalSettings,
    slic_tubelets,
    tubelet_descriptors,
    tubelet_stats,
    upsample_volume,
)


def smooth_features(grid: tuple[int, int, int], channels: int, seed: int) -> np.ndarray:
    """Spatially smooth random features (regions that drift over time) plus token noise."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=(*grid, channels)), sigma=(1.5, 2.5, 2.5, 0))
    field /= field.std()
    return (field + 0.3 * rng.normal(size=field.shape)).astype(np.float32)


def vectorised(volume: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    return tubelet_descriptors(volume, labels), tubelet_stats(labels)


def naive(volume: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    descriptors, rows = [], []
    for k in range(1, int(labels.max()) + 1):
        mask = labels == k
        descriptors.append(volume[mask].mean(0))
        t, y, x = np.nonzero(mask)
        box = [t.min(), t.max() + 1, y.min(), y.max() + 1, x.min(), x.max() + 1]
        rows.append([k, int(mask.sum()), *box])
    columns = ["label", "voxels", "t_start", "t_stop", "y0", "y1", "x0", "x1"]
    return np.stack(descriptors), pd.DataFrame(rows, columns=columns)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(volume: np.ndarray, labels: np.ndarray, repeats: int) -> tuple[float, float]:
    """Median seconds of (vectorised, loop) descriptors + stats, after checking they agree."""
    fast, slow = vectorised(volume, labels), naive(volume, labels)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-4, atol=1e-5)
    pd.testing.assert_frame_equal(fast[1], slow[1], check_dtype=False)
    fast_s, slow_s = [], []
    for _ in range(repeats):
        fast_s.append(timed(lambda: vectorised(volume, labels)))
        slow_s.append(timed(lambda: naive(volume, labels)))
    return statistics.median(fast_s), statistics.median(slow_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, nargs=3, default=[8, 14, 14])
    parser.add_argument("--upsample", type=int, nargs=3, default=[2, 4, 4])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--segments", type=int, nargs="+", default=[12, 100])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    factors = tuple(args.upsample)
    coarse = smooth_features(tuple(args.grid), args.channels, args.seed)
    upsample_s = statistics.median(
        timed(lambda: upsample_volume(coarse, factors)) for _ in range(args.repeats)
    )
    volume = upsample_volume(coarse, factors)
    print(f"volume {tuple(args.grid)} x{factors} -> {volume.shape[:3]}, C={args.channels}")
    print(f"upsample (trilinear)  {upsample_s * 1e3:7.1f} ms (median of {args.repeats})")
    for n_segments in args.segments:
        settings = ProposalSettings(
            method="slic",
            upsample=factors,
            min_share=0.01,
            n_segments=n_segments,
            compactness=0.1,
        )
        slic_s = statistics.median(
            timed(lambda s=settings: slic_tubelets(volume, s)) for _ in range(args.repeats)
        )
        labels = slic_tubelets(volume, settings)
        fast, slow = compare(volume, labels, args.repeats)
        print(
            f"n_segments={n_segments}: {labels.max()} tubelets; SLIC {slic_s * 1e3:.1f} ms; "
            f"descriptors+stats vectorised {fast * 1e3:.1f} ms, per-tubelet loop "
            f"{slow * 1e3:.1f} ms -> loop / vectorised {slow / fast:.1f}x"
        )


if __name__ == "__main__":
    main()
