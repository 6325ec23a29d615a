"""What every stage's command line shares: typed settings from JSON, and the runtime options.

A stage's settings arrive as the JSON the workflow resolved (and hashed into the output
path) and are read straight into the stage's settings type, which has no defaults of
its own: defaults live in the config schema only. Runtime options (device, precision,
batch size, threads) change speed, and results by rounding noise at most (bf16; the
README gives the demo's comparison), so they travel apart as one :class:`Runtime` and
are never hashed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def typed_json(kind: type[T]) -> Callable[[str], T]:
    """An argparse ``type`` reading a JSON object into ``kind`` (unknown or missing keys fail)."""

    def parse(text: str) -> T:
        try:
            return kind(**json.loads(text))
        except (TypeError, json.JSONDecodeError) as err:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}: {err}") from None

    parse.__name__ = kind.__name__
    return parse


def named_paths(items: Sequence[str]) -> dict[str, list[str]]:
    """``NAME=path`` arguments grouped by name, in order (a name repeated gives a list)."""
    named: dict[str, list[str]] = {}
    for item in items:
        name, _, path = item.partition("=")
        named.setdefault(name, []).append(path)
    return named


@dataclass(frozen=True)
class Runtime:
    """How a model-running job runs: device, compute precision, items per forward pass,
    CPU threads for torch."""

    device: str
    precision: str | None  # None where the stage's hashed settings carry it (features)
    batch_size: int | None  # None where the stage runs no model (sae: its batch is hashed)
    threads: int

    @staticmethod
    def add_arguments(
        parser: argparse.ArgumentParser, precision: bool = True, batch: bool = True
    ) -> None:
        parser.add_argument("--device", required=True, help="auto, cpu, cuda or cuda:N")
        if precision:
            parser.add_argument(
                "--precision",
                required=True,
                choices=["auto", "float32", "bfloat16"],
                help="auto: bf16 on CUDA and on CPUs with native bf16, else fp32",
            )
        if batch:
            parser.add_argument("--batch-size", type=int, required=True, help="items per forward")
        parser.add_argument("--threads", type=int, required=True, help="CPU threads for torch")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Runtime:
        """The job's runtime options; also sets torch's CPU threads for the job."""
        import torch

        torch.set_num_threads(args.threads)
        return cls(
            args.device,
            getattr(args, "precision", None),
            getattr(args, "batch_size", None),
            args.threads,
        )
