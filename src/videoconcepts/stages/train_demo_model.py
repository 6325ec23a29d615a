"""train_demo_model: retrain a shipped demo model from its seed (not in the default run)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from videoconcepts.demo.train import MODELS, train

HELP = "retrain a shipped demo model from its seed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=sorted(MODELS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-per-event", type=int, help="default: the model's own (150, or 300)"
    )
    parser.add_argument("--val-per-event", type=int, default=30)
    parser.add_argument("--epochs", type=int, help="default: the model's own (15 or 25)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, required=True, help="CPU threads for torch")


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    report = train(
        args.model,
        args.out,
        args.seed,
        args.train_per_event,
        args.val_per_event,
        args.epochs,
        args.batch,
    )
    print({k: v for k, v in report.items() if k.startswith("val_")})
