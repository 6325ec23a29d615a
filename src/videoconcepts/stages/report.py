"""report: the run's HTML report, one section per stage, from what the stages wrote.

Inputs arrive by name (``NAME=path``, a name repeated for a list): the rule passes each
of its named inputs, and each section reads the ones it shows.
"""

from __future__ import annotations

import argparse
import json
import sys

from videoconcepts.report import (
    connectome,
    cris,
    curves,
    heads,
    rosetta,
    sae,
    static_dynamic,
    straightening,
    validation,
)
from videoconcepts.report import run as run_section
from videoconcepts.report.page import Inputs, ReportSettings, write_report
from videoconcepts.runtime import named_paths, typed_json

HELP = "the HTML report of a run"
Settings = ReportSettings
# The overview compares the models (its first section), then has a card per analysis
# and the run's details; each model's page has its own sections; each analysis its page.
OVERVIEW = [run_section.section, run_section.details]
PER_MODEL = [
    run_section.model_section,
    curves.section,
    cris.section,
    heads.section,
    validation.section,
]
ANALYSES = [
    rosetta.ANALYSIS,
    straightening.ANALYSIS,
    static_dynamic.ANALYSIS,
    connectome.ANALYSIS,
    sae.ANALYSIS,
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="report folder (index.html inside)")
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("--run-settings", required=True, help="JSON resolved settings per stage")
    parser.add_argument("--threads", type=int, required=True, help="pages drawn at once")
    parser.add_argument("inputs", nargs="+", help="NAME=path, one per input file")


def run(args: argparse.Namespace) -> None:
    index = write_report(
        args.out,
        OVERVIEW,
        PER_MODEL,
        ANALYSES,
        Inputs(named_paths(args.inputs)),
        args.settings,
        json.loads(args.run_settings),
        args.threads,
    )
    print(f"report: {index}", file=sys.stderr)
