"""CRIS's two estimators on the same scores: regression vs. difference of means.

    python benchmarks/cris_estimators.py UNITS_STORE SHARD [SHARD ...]

Reads a finished run's units store and CRIS shards (``results/units/*/units.zarr``,
``results/cris/*/shards-*/shard-*.zarr``), redraws the masks from the shards' settings
and prints, over the units present in some video:

- the median standard error of each estimator and the median of their per-unit ratio
  (difference / regression); its square is the factor more masks the difference
  estimator needs for the same precision;
- a check of those errors against the masks themselves: the spread of half the
  even-minus-odd difference, over units, should match the reported error (ratio ~1);
- split-half Spearman at equal masks (even- vs. odd-numbered masks), at several counts;
- how far the two agree: Spearman and Pearson between their importances, top-20 overlap,
  and the ratio of their sums of importance (both estimate the same quantity: ~1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from videoconcepts.methods.cris import (
    ESTIMATES,
    half_importances,
    sample_masks,
    split_half_stability,
)
from videoconcepts.stores.base import open_store
from videoconcepts.stores.cris import KIND
from videoconcepts.stores.units import open_units


def load(units_path: str, shard_paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores (V, K), masks (K, U), presence (V, U)) of the shards, in mask order."""
    units = open_units(units_path)
    shards = sorted((open_store(p, KIND) for p in shard_paths), key=lambda g: g.attrs["mask_start"])
    cris = shards[0].attrs["cris"]
    masks = sample_masks(cris["num_masks"], units.n_units, cris["mask_ratio"], cris["seed"])
    index = np.concatenate([np.arange(g.attrs["mask_start"], g.attrs["mask_stop"]) for g in shards])
    scores = np.concatenate([g["scores"][...] for g in shards], axis=1)
    return scores, masks[index], units.presence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("units")
    parser.add_argument("shards", nargs="+")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()

    scores, masks, presence = load(args.units, args.shards)
    present = presence.any(0)
    n_videos, n_masks = scores.shape
    print(
        f"{n_videos} videos, {n_masks} masks, {presence.shape[1]} units "
        f"({present.sum()} present; {presence.sum(1).mean():.0f} per video on average)"
    )
    results, seconds = {}, {}
    for name, estimate in ESTIMATES.items():
        start = time.perf_counter()
        results[name] = [a[present] for a in estimate(scores, masks, presence)]
        seconds[name] = time.perf_counter() - start
    (reg, reg_se), (diff, diff_se) = results["regression"], results["difference"]
    ratio = np.median(diff_se / reg_se)
    for name, (_, se) in results.items():
        even, odd = (h[present] for h in half_importances(scores, masks, presence, name))
        check = np.sqrt(np.mean(((even - odd) / 2) ** 2) / np.mean(se**2))
        print(
            f"{name:<10}  median stderr {np.median(se):.5f}  "
            f"split-half spread / stderr {check:.2f}  ({seconds[name]:.2f} s)"
        )
    print(f"median stderr ratio difference / regression  {ratio:.2f}")
    print(f"masks for equal precision (ratio squared)    {ratio**2:.2f}")

    steps = np.unique(np.linspace(0, n_masks, 5).astype(int)[1:])
    stability = pd.DataFrame(
        {
            name: [split_half_stability(scores[:, :n], masks[:n], presence, name) for n in steps]
            for name in ESTIMATES
        },
        index=pd.Index(steps, name="masks"),
    )
    print("split-half Spearman at equal masks:")
    print(stability.to_string(float_format="%.3f"))

    top = args.top
    overlap = len(set(np.argsort(-reg)[:top]) & set(np.argsort(-diff)[:top]))
    spearman = pd.Series(reg).corr(pd.Series(diff), method="spearman")
    print(
        f"regression vs. difference: Spearman {spearman:.3f}, "
        f"Pearson {np.corrcoef(reg, diff)[0, 1]:.3f}, top-{top} overlap {overlap}/{top}, "
        f"sum ratio {reg.sum() / diff.sum():.3f}"
    )


if __name__ == "__main__":
    main()
