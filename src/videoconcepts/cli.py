"""The stages' command line, ``videoconcepts <stage> ...``, which the workflow rules call
(the command itself is :func:`videoconcepts.jobclient.main`).

Built from the stage modules themselves (``videoconcepts.stages``): each declares its
``HELP``, ``add_arguments`` and ``run``, and its module name is the subcommand, the rule
and the results folder. Only the stage that runs is imported (model code loads in the
jobs that use it); ``--help`` imports them all to list them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from videoconcepts import stages

# The command's entry point in environments installed before it moved to jobclient: their
# `videoconcepts` script imports it from here until `pip install -e .` runs again.
from videoconcepts.jobclient import main  # noqa: F401


def stage_names() -> list[str]:
    """Every stage module's name (= subcommand = rule = results folder)."""
    return sorted(m.name for m in pkgutil.iter_modules(stages.__path__))


def load_stage(name: str) -> ModuleType:
    return importlib.import_module(f"{stages.__name__}.{name}")


def build_parser(names: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser with a subcommand for each of ``names`` (default: every stage)."""
    parser = argparse.ArgumentParser(prog="videoconcepts", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for name in names or stage_names():
        stage = load_stage(name)
        command = commands.add_parser(name, help=stage.HELP, description=stage.__doc__)
        stage.add_arguments(command)
        command.set_defaults(run=stage.run)
    return parser


def run(argv: list[str]) -> None:
    """Run the stage ``argv`` names in this process."""
    from videoconcepts.stores.base import StoreError

    known = stage_names()
    args = build_parser(argv[:1] if argv[:1] and argv[0] in known else None).parse_args(argv)
    try:
        args.run(args)
    except StoreError as err:  # the message names the file and the problem
        sys.exit(f"videoconcepts {args.command}: error: {err}")
