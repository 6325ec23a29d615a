"""targets: the target class and unmasked score of every usable video, resolved once.

Targets come from the sample sheet's labels, the model's own prediction, or one fixed
class (``target``); the baseline is the unmasked clip's score under the metric. Every
masking stage (cris, occlusion, curves, heads) reads this table instead of re-reading
the sheet and re-running the unmasked model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from videoconcepts.methods.objectives import get_metric, resolve_targets
from videoconcepts.models import load_adapter
from videoconcepts.plan.samples import load_samples
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stores.base import write_table
from videoconcepts.stores.decode import Clips, split_decoded
from videoconcepts.stores.targets import BASELINE_FORMAT, COLUMNS

HELP = "target class and unmasked score of every usable video"


@dataclass(frozen=True)
class TargetSettings:
    """Which class each video is scored on, and by which metric (the masking settings'
    model, metric and target)."""

    model: dict | str  # a resolved ModelSpec as a dict, or a bare checkpoint
    metric: str
    target: str


Settings = TargetSettings


def target_table(
    decode_stores: Sequence[str | Path],
    settings: TargetSettings,
    samples: str | None,
    runtime: Runtime,
) -> pd.DataFrame:
    """One row per decoded (not skipped) video: its label, prediction, target and score."""
    ok, ids, _ = split_decoded(decode_stores)
    adapter = load_adapter(settings.model, runtime.device, runtime.precision)
    clips = Clips(ids, ok)
    frames = (torch.from_numpy(clips.frames(v))[None] for v in range(len(clips)))
    logits = [adapter.logits(f) for f in tqdm(frames, total=len(ids), desc="targets")]
    logits = torch.cat(logits).cpu() if logits else torch.zeros(0, adapter.num_classes)
    labels = [""] * len(ids)
    if samples:
        sheet = load_samples(samples).set_index("id")["label"].fillna("").astype(str)
        labels = [sheet.get(v, "") for v in ids]
    predicted = logits.argmax(1).tolist()
    targets = torch.tensor(
        resolve_targets(settings.target, labels, predicted, adapter.class_names, ids),
        dtype=torch.long,
    )
    baseline = get_metric(settings.metric)(logits, targets).numpy()
    table = pd.DataFrame(
        {
            "video": ids,
            "label": labels,
            "predicted": predicted,
            "target": targets.numpy(),
            "baseline": baseline,
        }
    )
    return table[list(COLUMNS)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True)
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("--samples", default=None, help="sample sheet with labels")
    Runtime.add_arguments(parser)
    parser.add_argument("decode_stores", nargs="+")


def run(args: argparse.Namespace) -> None:
    runtime = Runtime.from_args(args)
    table = target_table(args.decode_stores, args.settings, args.samples, runtime)
    write_table(table, args.out, BASELINE_FORMAT)
    print(table.to_string(index=False), file=sys.stderr)
