"""Head pruning: CRIS with whole attention heads as units, and the pruning curve.

Videos are split deterministically (by a hash of their id) into an estimation set, on
which every head of every layer is ranked by CRIS's difference of means, and a held-out
set, on which the least important heads are pruned in steps (``remove`` mode with all of a
head's tokens masked: the head's output is zero). The pruning curve reports the metric,
accuracy, the share of the masked attention's and of the whole model's FLOPs saved
(counted on the model by ``FlopCounterMode``) and the multiply-adds left per clip.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from videoconcepts.methods.cris import ESTIMATES, Estimator
from videoconcepts.methods.objectives import correctness, get_metric
from videoconcepts.methods.ranking import ranked
from videoconcepts.methods.removal import removal_masks
from videoconcepts.models.base import FlopCount
from videoconcepts.models.scorer import MaskScorer
from videoconcepts.stores.decode import Clips


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


def split_videos(ids: Sequence[str], share: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Estimation and held-out video indices, and what the pruning curve is evaluated on."""
    if not ids:
        raise ValueError("head importance: no usable videos (decode skipped every one)")
    if len(ids) < 2:  # no split possible; every row of the curve says so
        print("only one usable video: pruning is evaluated on it", file=sys.stderr)
        return np.arange(1), np.arange(1), "estimation videos (too few for a held-out split)"
    held = split_held_out(ids, share)
    return np.flatnonzero(~held), np.flatnonzero(held), "held-out videos"


def rank_heads(
    scorer: MaskScorer,
    clips: Clips,
    videos: np.ndarray,
    targets: np.ndarray,
    tokens: np.ndarray,
    masks: np.ndarray,
    n_heads: int,
    estimator: Estimator,
) -> pd.DataFrame:
    """CRIS importance of every head (unit ``layer * n_heads + head``) on ``videos``."""
    scores = np.stack(
        [
            scorer.scores(clips.frames(v), tokens, masks, int(targets[v]))
            for v in tqdm(videos, desc="head importance", unit="video")
        ]
    )
    presence = np.ones((len(videos), masks.shape[1]), bool)
    importance, stderr = ESTIMATES[estimator](scores, masks, presence)
    n_layers = masks.shape[1] // n_heads
    table = pd.DataFrame(
        {
            "layer": np.repeat(np.arange(n_layers), n_heads),
            "head": np.tile(np.arange(n_heads), n_layers),
            "importance": importance,
            "stderr": stderr,
        }
    )
    return ranked(table)


def pruning_curve(
    scorer: MaskScorer,
    clips: Clips,
    videos: np.ndarray,
    targets: np.ndarray,
    tokens: np.ndarray,
    orders: dict[str, np.ndarray],
    steps: int,
    metric: str,
) -> pd.DataFrame:
    """Metric and accuracy on ``videos`` as heads are pruned in each order, in steps.

    ``scorer`` must mask in ``remove`` mode: a head with all tokens removed outputs zero.
    """
    blocks = {name: removal_masks(order, steps)[0] for name, order in orders.items()}
    masks = np.concatenate(list(blocks.values()))
    logits = torch.stack(
        [
            scorer.logits(clips.frames(v), tokens, masks).cpu()
            for v in tqdm(videos, desc="pruning", unit="video")
        ]
    ).flatten(0, 1)  # (videos x masks, classes)
    target = torch.as_tensor(targets[videos]).repeat_interleave(len(masks))
    rows = len(videos), len(masks)
    n_units = masks.shape[1]
    pruned = masks.sum(1)
    accuracy = correctness(logits, target).view(rows).mean(0).numpy()
    if not scorer.adapter.has_classes:
        accuracy = np.full(len(masks), np.nan)
    return pd.DataFrame(
        {
            "order": np.repeat(list(blocks), steps + 1),
            "heads_pruned": pruned,
            "share_pruned": pruned / n_units,
            "metric": get_metric(metric)(logits, target).view(rows).mean(0).numpy(),
            "accuracy": accuracy,
            **pruning_flops(scorer.adapter.flop_count(), masks),
        }
    )


def pruning_flops(flops: FlopCount, masks: np.ndarray) -> dict[str, np.ndarray]:
    """The pruning curve's compute columns for (K, layers x heads) bool head masks.

    Shares of the masked attention's FLOPs and of the whole scored forward pass's saved,
    and the multiply-adds left per clip in G (FLOPs / 2, the unit of the papers'
    "GFLOPs": 180.5 G for VideoMAE-B 16x224).
    """
    n_heads = masks.shape[1] // len(flops.head)
    per_unit = np.repeat(np.asarray(flops.head, dtype=float), n_heads)
    saved = masks @ per_unit
    return {
        "attention_flops_saved": saved / per_unit.sum(),
        "model_flops_saved": saved / flops.total,
        "gmacs_per_clip": (flops.total - saved) / 2e9,
    }
