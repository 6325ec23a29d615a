"""heads: every head ranked by CRIS on estimation videos; pruning curve on held-out videos."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from videoconcepts.methods.cris import Estimator, sample_masks
from videoconcepts.methods.pruning import pruning_curve, rank_heads, split_videos
from videoconcepts.methods.tokens import head_unit_tokens
from videoconcepts.models import load_adapter
from videoconcepts.models.scorer import MaskingSettings, MaskScorer
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stores.base import write_table
from videoconcepts.stores.decode import Clips, split_decoded
from videoconcepts.stores.targets import read_targets

HELP = "head importance and pruning curve"


@dataclass(frozen=True)
class HeadSettings:
    """CRIS over whole heads (``num_masks``, ``mask_ratio``, ``seed``) on the estimation
    videos; pruning in ``pruning_steps`` on the ``held_out`` share of the videos."""

    num_masks: int
    mask_ratio: float
    held_out: float
    pruning_steps: int
    seed: int
    estimator: Estimator


Settings = HeadSettings


def head_importance(
    decode_stores: Sequence[str | Path],
    targets_path: str | Path,
    masking: MaskingSettings,
    settings: HeadSettings,
    runtime: Runtime,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(head importance table, pruning curve) for every head of every layer of the model.

    ``masking`` must be in ``remove`` mode: heads are ranked by removing them, as the
    pruning curve does (``plan.settings.resolve_head_masking``).
    """
    if masking.mode != "remove":
        raise ValueError(
            f"heads: masking.mode is {masking.mode!r}; heads are ranked and pruned by "
            "removing them (mode 'remove'), so both estimate the same intervention"
        )
    ok, ids, _ = split_decoded(decode_stores)
    estimation, held_out, evaluated_on = split_videos(ids, settings.held_out)
    adapter = load_adapter(masking.model, runtime.device, runtime.precision)
    layers, n_heads = list(range(adapter.num_layers)), adapter.num_heads
    tokens = head_unit_tokens(len(layers), n_heads, adapter.grid.size)
    n_units = len(layers) * n_heads
    clips = Clips(ids, ok)
    targets, _ = read_targets(targets_path, ids)
    masks = sample_masks(settings.num_masks, n_units, settings.mask_ratio, settings.seed)
    with MaskScorer(adapter, layers, masking, runtime.batch_size) as scorer:
        table = rank_heads(
            scorer, clips, estimation, targets, tokens, masks, n_heads, settings.estimator
        )
    orders = {
        "least_important": np.argsort(table.sort_index()["importance"].to_numpy(), kind="stable"),
        "random": np.random.default_rng(settings.seed).permutation(n_units),
    }
    steps = min(settings.pruning_steps, n_units)
    with MaskScorer(adapter, layers, masking, runtime.batch_size) as scorer:
        curve = pruning_curve(
            scorer, clips, held_out, targets, tokens, orders, steps, masking.metric
        )
    curve["evaluated_on"] = evaluated_on
    return table, curve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--targets", required=True, help="the targets stage's table")
    parser.add_argument("--masking", required=True, type=typed_json(MaskingSettings))
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("--importance", required=True)
    parser.add_argument("--pruning", required=True)
    Runtime.add_arguments(parser)
    parser.add_argument("decode_stores", nargs="+")


def run(args: argparse.Namespace) -> None:
    runtime = Runtime.from_args(args)
    table, curve = head_importance(
        args.decode_stores, args.targets, args.masking, args.settings, runtime
    )
    write_table(table, args.importance, "%.6g")
    write_table(curve, args.pruning, "%.6g")
    print(table.to_string(index=False), file=sys.stderr)
    print(curve.to_string(index=False), file=sys.stderr)
