"""cris_gather: reduce the CRIS shards to importance, standard errors and ranking stability."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from videoconcepts.methods.cris import (
    ESTIMATES,
    VIDEO_EFFECTS,
    CrisSettings,
    half_importances,
    sample_masks,
    split_half_stability,
    video_bootstrap,
)
from videoconcepts.methods.ranking import ranked
from videoconcepts.runtime import typed_json
from videoconcepts.stores.base import open_store, write_table
from videoconcepts.stores.cris import KIND
from videoconcepts.stores.units import open_units

HELP = "reduce CRIS shards to importance"


@dataclass(frozen=True)
class GatherSettings(CrisSettings):
    """The shards' CRIS settings, and the video-bootstrap replicates of the gather alone."""

    video_bootstrap: int

    @property
    def cris(self) -> CrisSettings:
        """The CRIS settings the shards ran with."""
        return CrisSettings(**{f.name: getattr(self, f.name) for f in fields(CrisSettings)})


Settings = GatherSettings


def gather_cris(
    units_path: str | Path, shard_paths: Sequence[str | Path], settings: GatherSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reduce CRIS shards to (importance table, stability table).

    The stability table gives the split-half rank correlation as masks accumulate, the
    curve a user checks to see whether ``num_masks`` was enough.
    """
    cris = settings.cris
    units = open_units(units_path)
    opened = [(p, open_store(p, KIND)) for p in shard_paths]
    opened.sort(key=lambda item: item[1].attrs["mask_start"])
    shard_paths, shards = [p for p, _ in opened], [g for _, g in opened]
    pieces, indices, expected_start = [], [], 0
    for path, group in zip(shard_paths, shards, strict=True):
        if group.attrs["video_ids"] != units.video_ids:
            raise ValueError(f"{path}: videos differ from {units_path}")
        if group.attrs["cris"] != asdict(cris):
            raise ValueError(f"{path}: CRIS settings {group.attrs['cris']} differ from {cris}")
        if group.attrs["mask_start"] != expected_start:
            raise ValueError(
                f"{path}: starts at mask {group.attrs['mask_start']}, "
                f"expected {expected_start} (missing or overlapping shards)"
            )
        expected_start = group.attrs["planned_stop"]
        pieces.append(group["scores"][...])
        indices.append(np.arange(group.attrs["mask_start"], group.attrs["mask_stop"]))
    if expected_start != cris.num_masks:
        raise ValueError(f"shards cover masks up to {expected_start} of {cris.num_masks}")
    scores, index = np.concatenate(pieces, axis=1), np.concatenate(indices)
    masks = sample_masks(cris.num_masks, units.n_units, cris.mask_ratio, cris.seed)[index]
    importance, stderr = ESTIMATES[cris.estimator](scores, masks, units.presence)
    table = units.table.copy()
    table["importance"], table["stderr"] = importance, stderr
    effects = VIDEO_EFFECTS[cris.estimator](scores, masks, units.presence)
    low, high, se = video_bootstrap(effects, settings.video_bootstrap, cris.seed)
    table["video_ci_low"], table["video_ci_high"], table["video_se"] = low, high, se
    table["importance_even"], table["importance_odd"] = half_importances(
        scores, masks, units.presence, cris.estimator
    )
    table["n_videos"] = units.presence.sum(0)
    steps = np.unique(np.linspace(0, len(index), 11).astype(int)[1:])
    stability = pd.DataFrame(
        {
            "n_masks": steps,
            "split_half_spearman": [
                split_half_stability(scores[:, :n], masks[:n], units.presence, cris.estimator)
                for n in steps
            ],
        }
    )
    return ranked(table), stability


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", required=True)
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("--importance", required=True)
    parser.add_argument("--stability", required=True)
    parser.add_argument("shards", nargs="+")


def run(args: argparse.Namespace) -> None:
    table, stability = gather_cris(args.units, args.shards, args.settings)
    write_table(table, args.importance, "%.6g")
    write_table(stability, args.stability, "%.4f")
    print(table.head(20).to_string(index=False), file=sys.stderr)
    print(stability.to_string(index=False), file=sys.stderr)
