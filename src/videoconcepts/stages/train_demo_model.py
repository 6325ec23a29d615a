"""train_demo_model: retrain the shipped demo model from its seed (not in the default run)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from videoconcepts.demo.train import train

HELP = "retrain the shipped demo model from its seed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-per-event", type=int, default=150)
    parser.add_argument("--val-per-event", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, required=True, help="CPU threads for torch")


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    report = train(
        args.out, args.seed, args.train_per_event, args.val_per_event, args.epochs, args.batch
    )
    print(f"held-out accuracy: {report['val_accuracy']:.3f}")
