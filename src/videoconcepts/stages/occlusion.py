"""occlusion: baseline importance, each unit masked alone on each video where it appears."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from videoconcepts.methods.occlusion import occlusion_importance
from videoconcepts.models.scorer import MaskingSettings, UnitJob
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stores.base import write_table

HELP = "importance of each unit masked alone"


def occlusion_table(
    units_path: str | Path,
    targets_path: str | Path,
    masking: MaskingSettings,
    runtime: Runtime,
) -> pd.DataFrame:
    """Every unit of a units store masked alone on every video."""
    job = UnitJob.load(units_path, targets_path, masking, runtime)
    with job.scorer(masking, runtime.batch_size) as scorer:
        return occlusion_importance(scorer, job.clips, job.units, job.targets, job.baseline)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", required=True)
    parser.add_argument("--targets", required=True, help="the targets stage's table")
    parser.add_argument("--out", required=True)
    parser.add_argument("--masking", required=True, type=typed_json(MaskingSettings))
    Runtime.add_arguments(parser)


def run(args: argparse.Namespace) -> None:
    runtime = Runtime.from_args(args)
    table = occlusion_table(args.units, args.targets, args.masking, runtime)
    write_table(table, args.out, "%.6g")
    print(table.head(20).to_string(index=False), file=sys.stderr)
