"""skipped: the table of videos the decode stage skipped, with reasons (empty when none)."""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from videoconcepts.stores.base import write_table
from videoconcepts.stores.decode import decode_status

HELP = "table of videos the decode stage skipped"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True)
    parser.add_argument("stores", nargs="+")


def run(args: argparse.Namespace) -> None:
    table = pd.DataFrame([decode_status(store) for store in args.stores])
    table = table[table["status"] != "ok"].drop(columns="status")
    write_table(table, args.out)
    print(f"{len(table)} of {len(args.stores)} videos skipped", file=sys.stderr)
