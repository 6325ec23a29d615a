"""cris: one shard of CRIS masks scored on every video (shards run as parallel jobs).

Mask k is scored on every video: one forward pass per batch of masks, the clip repeated
with a different mask in each row (:class:`MaskScorer`). Masks are split into fixed
batches of ``batch_size``, and shards into whole batches, so every forward pass sees the
same rows whatever the shard count: sharded and unsharded runs give identical scores.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from videoconcepts.devices import dtype_name
from videoconcepts.methods.cris import (
    CrisSettings,
    batch_ranges,
    sample_masks,
    split_half_stability,
)
from videoconcepts.models.scorer import MaskingSettings, UnitJob
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stores.base import atomic_store, write_array
from videoconcepts.stores.cris import KIND

HELP = "score one shard of CRIS masks"
Settings = CrisSettings


def write_cris_shard(
    units_path: str | Path,
    targets_path: str | Path,
    out: str | Path,
    masking: MaskingSettings,
    cris: CrisSettings,
    shard: int,
    n_shards: int,
    runtime: Runtime,
) -> int:
    """Score one shard of CRIS masks on every video; return how many masks it scored."""
    job = UnitJob.load(units_path, targets_path, masking, runtime)
    batch_size = runtime.batch_size
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
                    scores[:, :done],
                    masks[indices.start : indices.start + done],
                    units.presence,
                    cris.estimator,
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
        precision=dtype_name(job.adapter.precision),
        masking=asdict(masking),
        cris=asdict(cris),
    ) as group:
        write_array(group, "scores", scores[:, :done])
        write_array(group, "baseline", job.baseline.astype(np.float32))
        write_array(group, "targets", np.asarray(targets, np.int32))
    return done


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", required=True)
    parser.add_argument("--targets", required=True, help="the targets stage's table")
    parser.add_argument("--out", required=True)
    parser.add_argument("--masking", required=True, type=typed_json(MaskingSettings))
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--shards", type=int, required=True)
    Runtime.add_arguments(parser)


def run(args: argparse.Namespace) -> None:
    count = write_cris_shard(
        args.units,
        args.targets,
        args.out,
        args.masking,
        args.settings,
        args.shard,
        args.shards,
        Runtime.from_args(args),
    )
    print(f"{count} masks scored in {args.out}", file=sys.stderr)
