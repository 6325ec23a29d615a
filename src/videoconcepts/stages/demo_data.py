"""demo_data: the synthetic event videos (H.264) and their ground-truth masks, from a seed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from videoconcepts.demo.synthetic import generate_dataset

HELP = "generate the synthetic demo videos"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--videos-per-event", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--styles", type=int, required=True, help="stylized copies per video")
    parser.add_argument(
        "--manipulated", action="store_true", help="each scene's manipulated variant too"
    )


def run(args: argparse.Namespace) -> None:
    table = generate_dataset(
        args.out,
        args.videos_per_event,
        args.seed,
        styles=args.styles,
        manipulated=args.manipulated,
        progress=True,
    )
    print(f"{len(table)} demo videos in {args.out}", file=sys.stderr)
