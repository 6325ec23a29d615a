"""curves: remove units cumulatively by CRIS, occlusion and random order; areas per curve."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from videoconcepts.methods.curves import attribution_curves, fidelity_checks
from videoconcepts.models.scorer import MaskingSettings, UnitJob
from videoconcepts.runtime import Runtime, named_paths, typed_json
from videoconcepts.stores.base import write_table

HELP = "attribution curves and their areas"


@dataclass(frozen=True)
class CurveSettings:
    """``steps`` removal steps per curve, ``random_orders`` random permutations (seeded)."""

    steps: int
    random_orders: int
    seed: int


Settings = CurveSettings


def curve_tables(
    units_path: str | Path,
    targets_path: str | Path,
    importance_tables: Mapping[str, str | Path],
    masking: MaskingSettings,
    settings: CurveSettings,
    runtime: Runtime,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(curves, areas, checks) for methods given as importance tables.

    The first method is checked against every other one and against random orders.
    """
    job = UnitJob.load(units_path, targets_path, masking, runtime)
    importance = {
        method: pd.read_csv(path, sep="\t")
        .set_index("unit")["importance"]
        .reindex(job.units.table["unit"])
        .to_numpy()
        for method, path in importance_tables.items()
    }
    with job.scorer(masking, runtime.batch_size) as scorer:
        curves, areas = attribution_curves(
            scorer, job.clips, job.units, job.targets, importance, **asdict(settings)
        )
    methods = list(importance)
    return curves, areas, fidelity_checks(areas, methods[0], [*methods[1:], "random"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", required=True)
    parser.add_argument("--targets", required=True, help="the targets stage's table")
    parser.add_argument("--masking", required=True, type=typed_json(MaskingSettings))
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("--curves", required=True)
    parser.add_argument("--fidelity", required=True, help="area under each curve")
    parser.add_argument("--checks", required=True, help="first method vs. each baseline")
    Runtime.add_arguments(parser)
    parser.add_argument("importance", nargs="+", help="METHOD=importance table")


def run(args: argparse.Namespace) -> None:
    tables = {method: paths[0] for method, paths in named_paths(args.importance).items()}
    curves, areas, checks = curve_tables(
        args.units, args.targets, tables, args.masking, args.settings, Runtime.from_args(args)
    )
    write_table(curves, args.curves, "%.6g")
    write_table(areas, args.fidelity, "%.6g")
    write_table(checks, args.checks, "%.6g")
    print(areas.to_string(index=False), file=sys.stderr)
    print(checks.to_string(index=False), file=sys.stderr)
