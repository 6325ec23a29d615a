"""Head importance and pruning: CRIS with whole attention heads as units.

Videos are split deterministically (by a hash of their id) into an estimation set,
on which every head of every layer is ranked with the CRIS estimator, and a held-out
set, on which the least important heads are pruned in steps (``remove`` mode with all
of a head's tokens masked: the head's output is zero). The pruning curve reports the
metric, accuracy and the share of attention and of model multiply-adds saved.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from videoconcepts.attribution import removal_masks
from videoconcepts.decode import decode_status
from videoconcepts.importance import (
    Clips,
    MaskingSettings,
    MaskScorer,
    cris_estimate,
    sample_masks,
    video_targets,
)
from videoconcepts.metrics import correctness, get_metric
from videoconcepts.models import load_adapter
from videoconcepts.units import head_unit_tokens


@dataclass(frozen=True)
class HeadSettings:
    num_masks: int = 256
    mask_ratio: float = 0.5
    held_out: float = 0.3
    pruning_steps: int = 16
    seed: int = 0


def split_held_out(video_ids: Sequence[str], share: float) -> np.ndarray:
    """Bool per video, True for held-out: the ``share`` of ids with the lowest CRC32 hash.

    Raises when either side would be empty (fewer than two videos, or a share that
    rounds to all or none of them).
    """
    n_held = int(np.ceil(share * len(video_ids)))
    if n_held < 1 or n_held >= len(video_ids):
        raise ValueError(
            f"heads.held_out={share} leaves {n_held} of {len(video_ids)} videos held out; "
            "both the estimation and the held-out set need at least one video"
        )
    order = np.argsort([zlib.crc32(v.encode()) for v in video_ids], kind="stable")
    held = np.zeros(len(video_ids), bool)
    held[order[:n_held]] = True
    return held


def head_importance(
    decode_stores: Sequence[str | Path],
    masking: MaskingSettings,
    settings: HeadSettings,
    samples: str | None = None,
    batch_size: int = 32,
    device: str = "auto",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(head importance table, pruning curve) for every head of the model."""
    ok = [p for p in decode_stores if decode_status(p)["status"] == "ok"]
    ids = [decode_status(p)["id"] for p in ok]
    if not ids:
        raise ValueError("head importance: no usable videos (decode skipped every one)")
    if len(ids) >= 2:
        held = split_held_out(ids, settings.held_out)
        evaluated_on = "held-out videos"
    else:  # one video: no split possible; say so in every row of the curve
        print(f"only {len(ids)} usable video: pruning is evaluated on it", file=sys.stderr)
        held = np.ones(len(ids), bool)
        evaluated_on = "estimation videos (too few for a held-out split)"
    adapter = load_adapter(masking.checkpoint, device)
    layers = list(range(adapter.num_layers))
    n_heads = adapter.num_heads
    tokens = head_unit_tokens(len(layers), n_heads, adapter.grid.size)
    n_units = len(layers) * n_heads
    clips = Clips(ids, ok)
    targets, baseline = video_targets(adapter, clips, masking, samples)
    held_out = np.flatnonzero(held)
    estimation = np.flatnonzero(~held) if (~held).any() else held_out
    masks = sample_masks(settings.num_masks, n_units, settings.mask_ratio, settings.seed)
    with MaskScorer(adapter, layers, masking, batch_size) as scorer:
        scores = np.stack(
            [
                scorer.scores(clips.frames(v), tokens, masks, int(targets[v]))
                for v in tqdm(estimation, desc="head importance", unit="video")
            ]
        )
    presence = np.ones((len(estimation), n_units), bool)
    importance, stderr = cris_estimate(scores, masks, presence)
    table = pd.DataFrame(
        {
            "layer": np.repeat(layers, n_heads),
            "head": np.tile(np.arange(n_heads), len(layers)),
            "importance": importance,
            "stderr": stderr,
        }
    )
    table["rank"] = table["importance"].rank(ascending=False, method="first").astype(int)

    least_first = np.argsort(importance, kind="stable")
    random_order = np.random.default_rng(settings.seed).permutation(n_units)
    prune = {"least_important": least_first, "random": random_order}
    steps = min(settings.pruning_steps, n_units)
    blocks = {name: removal_masks(order, steps)[0] for name, order in prune.items()}
    all_masks = np.concatenate(list(blocks.values()))
    metric = get_metric(masking.metric)
    logits = []
    with MaskScorer(adapter, layers, masking, batch_size, mode="remove") as scorer:
        for v in tqdm(held_out, desc="pruning", unit="video"):
            logits.append(scorer.logits(clips.frames(v), tokens, all_masks).cpu())
    stacked = torch.stack(logits)  # (held-out videos, masks, classes)
    target = torch.as_tensor(targets[held_out])[:, None].expand(-1, len(all_masks))
    flat_logits, flat_target = stacked.flatten(0, 1), target.flatten()
    values = metric(flat_logits, flat_target).view(len(held_out), -1).mean(0).numpy()
    accuracy = correctness(flat_logits, flat_target).view(len(held_out), -1).mean(0).numpy()
    flops = adapter.layer_flops()
    total = len(layers) * (n_heads * flops["attention_head"] + flops["mlp"])
    rows = []
    for b, (name, block) in enumerate(blocks.items()):
        for j, mask in enumerate(block):
            pruned = int(mask.sum())
            k = b * len(block) + j
            rows.append(
                {
                    "order": name,
                    "heads_pruned": pruned,
                    "share_pruned": pruned / n_units,
                    "metric": values[k],
                    "accuracy": accuracy[k],
                    "attention_flops_saved": pruned / n_units,
                    "model_flops_saved": pruned * flops["attention_head"] / total,
                    "gflops_per_clip": 2 * (total - pruned * flops["attention_head"]) / 1e9,
                    "evaluated_on": evaluated_on,
                }
            )
    curve = pd.DataFrame(rows)
    return table.sort_values("rank"), curve
