"""Importance stage: CRIS (Concept Randomized Importance Sampling), batched and sharded.

K random unit subsets are drawn once from the seed (each unit masked independently
with probability ``mask_ratio``). Mask k is scored on every video: one forward pass
per batch of masks, the clip repeated with a different mask in each row
(:class:`MaskScorer`). A unit's importance is the mean score over the masks that kept
it minus the mean over the masks that removed it, averaged over the videos it appears
in and counted as zero elsewhere (:func:`cris_estimate`), so a unit present in no
video scores exactly zero.

Masks are split into fixed batches of ``masks_per_batch``, and shards into whole
batches, so every forward pass sees the same rows whatever the shard count: sharded
and unsharded runs give identical scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

from videoconcepts.stores import atomic_store, open_store, write_array
from videoconcepts.units import open_units

if TYPE_CHECKING:
    from videoconcepts.scoring import MaskingSettings

KIND = "cris_shard"


@dataclass(frozen=True)
class CrisSettings:
    num_masks: int = 4000
    mask_ratio: float = 0.5
    seed: int = 0
    stop_when_stable: float | None = None


def sample_masks(n_masks: int, n_units: int, ratio: float, seed: int) -> np.ndarray:
    """(n_masks, n_units) bool: each unit masked independently with probability ``ratio``.

    Independent draws keep the estimator unbiased: with a fixed count per mask (the
    reference code's ``random.sample``), masking one unit makes masking any other less
    likely, and every unit inherits a spurious share of the important units' effect.
    """
    return np.random.default_rng(seed).random((n_masks, n_units)) < ratio


def batch_ranges(n_masks: int, batch_size: int, n_shards: int, shard: int) -> range:
    """Mask indices of one shard: whole batches, split as evenly as possible."""
    n_batches = -(-n_masks // batch_size)
    batches = np.array_split(np.arange(n_batches), n_shards)[shard]
    if len(batches) == 0:
        return range(0)
    return range(int(batches[0]) * batch_size, min(n_masks, (int(batches[-1]) + 1) * batch_size))


def cris_estimate(
    scores: np.ndarray, masks: np.ndarray, presence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Importance and standard error of each unit.

    ``scores`` (V, K) per video and mask, ``masks`` (K, U) bool, ``presence`` (V, U).
    Per mask, a unit's value is the video-mean score over the videos it appears in (zero
    elsewhere); importance is the mean value over masks keeping the unit minus the mean
    over masks removing it, with the Welch standard error of that difference.
    """
    n_videos = scores.shape[0]
    values = presence.T.astype(np.float64) @ scores.astype(np.float64) / n_videos  # (U, K)
    removed = masks.T
    out, var = [], []
    for group in (~removed, removed):
        n = group.sum(1)
        mean = np.where(group, values, 0).sum(1) / np.maximum(n, 1)
        sq = np.where(group, (values - mean[:, None]) ** 2, 0).sum(1)
        out.append(mean)
        var.append(sq / np.maximum(n - 1, 1) / np.maximum(n, 1))
    return out[0] - out[1], np.sqrt(var[0] + var[1])


def half_importances(
    scores: np.ndarray, masks: np.ndarray, presence: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Importance from the even-numbered masks and from the odd-numbered ones."""
    even, odd = (cris_estimate(scores[:, i::2], masks[i::2], presence)[0] for i in (0, 1))
    return even, odd


def split_half_stability(scores: np.ndarray, masks: np.ndarray, presence: np.ndarray) -> float:
    """Spearman rank correlation of importance from even- vs odd-numbered masks."""
    present = presence.any(0)
    if present.sum() < 2 or scores.shape[1] < 4:
        return float("nan")
    even, odd = half_importances(scores, masks, presence)
    return float(pd.Series(even[present]).corr(pd.Series(odd[present]), method="spearman"))


def ranked(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a 1-based ``rank`` by descending importance, sorted by it."""
    rank = table["importance"].rank(ascending=False, method="first").astype(int)
    return table.assign(rank=rank).sort_values("rank")


def write_cris_shard(
    units_path: str | Path,
    out: str | Path,
    masking: MaskingSettings,
    cris: CrisSettings,
    shard: int,
    n_shards: int,
    samples: str | None = None,
    batch_size: int = 32,
    device: str = "auto",
) -> int:
    """Score one shard of CRIS masks on every video; return how many masks it scored."""
    from videoconcepts.scoring import UnitJob  # the model code, only where models run

    job = UnitJob.load(units_path, masking, samples, device)
    units, clips, targets = job.units, job.clips, job.targets
    masks = sample_masks(cris.num_masks, units.n_units, cris.mask_ratio, cris.seed)
    indices = batch_ranges(cris.num_masks, batch_size, n_shards, shard)
    n_videos = len(clips)
    scores = np.zeros((n_videos, len(indices)), np.float32)
    done, stability = 0, float("nan")
    with job.scorer(masking, batch_size) as scorer:
        batches = range(indices.start, indices.stop, batch_size)
        for start in tqdm(batches, desc=f"CRIS shard {shard}", unit="batch"):
            stop = min(start + batch_size, indices.stop)
            for v in range(n_videos):
                scores[v, done : done + stop - start] = scorer.scores(
                    clips.frames(v), units.tokens(v), masks[start:stop], int(targets[v])
                )
            done += stop - start
            if cris.stop_when_stable is not None and done >= 8 * batch_size:
                stability = split_half_stability(
                    scores[:, :done], masks[indices.start : indices.start + done], units.presence
                )
                if stability >= cris.stop_when_stable:
                    break
    with atomic_store(
        out,
        KIND,
        video_ids=units.video_ids,
        mask_start=indices.start,
        mask_stop=indices.start + done,
        planned_stop=indices.stop,
        stopped_early=done < len(indices),
        stability=stability,
        shard=shard,
        n_shards=n_shards,
        batch_size=batch_size,
        device=str(job.adapter.device),
        masking=asdict(masking),
        cris=asdict(cris),
    ) as group:
        write_array(group, "scores", scores[:, :done])
        write_array(group, "baseline", job.baseline.astype(np.float32))
        write_array(group, "targets", np.asarray(targets, np.int32))
    return done


def gather_cris(
    units_path: str | Path, shard_paths: Sequence[str | Path], cris: CrisSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reduce CRIS shards to (importance table, stability table).

    The stability table gives the split-half rank correlation as masks accumulate, the
    curve a user checks to see whether ``num_masks`` was enough.
    """
    units = open_units(units_path)
    opened = [(p, open_store(p, KIND)) for p in shard_paths]
    opened.sort(key=lambda item: item[1].attrs["mask_start"])
    shard_paths, shards = [p for p, _ in opened], [g for _, g in opened]
    pieces, indices, expected_start = [], [], 0
    for path, group in zip(shard_paths, shards, strict=True):
        if group.attrs["video_ids"] != units.video_ids:
            raise ValueError(f"{path}: videos differ from {units_path}")
        if group.attrs["cris"] != asdict(cris):
            raise ValueError(f"{path}: CRIS settings {group.attrs['cris']} differ from {cris}")
        if group.attrs["mask_start"] != expected_start:
            raise ValueError(
                f"{path}: starts at mask {group.attrs['mask_start']}, "
                f"expected {expected_start} (missing or overlapping shards)"
            )
        expected_start = group.attrs["planned_stop"]
        pieces.append(group["scores"][...])
        indices.append(np.arange(group.attrs["mask_start"], group.attrs["mask_stop"]))
    if expected_start != cris.num_masks:
        raise ValueError(f"shards cover masks up to {expected_start} of {cris.num_masks}")
    scores, index = np.concatenate(pieces, axis=1), np.concatenate(indices)
    masks = sample_masks(cris.num_masks, units.n_units, cris.mask_ratio, cris.seed)[index]
    importance, stderr = cris_estimate(scores, masks, units.presence)
    table = units.table.copy()
    table["importance"], table["stderr"] = importance, stderr
    table["importance_even"], table["importance_odd"] = half_importances(
        scores, masks, units.presence
    )
    table["n_videos"] = units.presence.sum(0)
    steps = np.unique(np.linspace(0, len(index), 11).astype(int)[1:])
    stability = pd.DataFrame(
        {
            "n_masks": steps,
            "split_half_spearman": [
                split_half_stability(scores[:, :n], masks[:n], units.presence) for n in steps
            ],
        }
    )
    return ranked(table), stability
