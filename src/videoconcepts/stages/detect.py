"""detect: score new videos with a fitted detector (the detector stage's ``detector.joblib``).

Each video is decoded as the detector's training videos were, run through its model (not
for a pixel-space detector), its trajectory at the detector's layer reduced to ReStraV's
21 numbers, and scored: the probability that it is generated. A video that cannot be
decoded fails the command by name; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from videoconcepts.methods.decoding import DecodeSettings, decode_clip, resolve_backend
from videoconcepts.methods.straightening import frame_bins, restrav_vector, steps
from videoconcepts.plan.samples import load_samples
from videoconcepts.runtime import Runtime
from videoconcepts.stages.straightening import video_points
from videoconcepts.stores.base import write_table
from videoconcepts.stores.detector import load_detector
from videoconcepts.stores.straightening import PIXELS

HELP = "score videos with a fitted detector: the probability each one is generated"
COLUMNS = ("video", "path", "score", "generated")


def detect(
    detector_path: str | Path, videos: pd.DataFrame, runtime: Runtime, backend: str = "auto"
) -> pd.DataFrame:
    """Scores of ``videos`` (columns ``id``, ``path``), in their order."""
    fitted = load_detector(detector_path)
    settings = DecodeSettings(**fitted["decode"])
    decoder = resolve_backend(backend)
    adapter = None
    if fitted["layer"] != PIXELS:
        from videoconcepts.models import load_adapter

        adapter = load_adapter(fitted["model"], runtime.device, fitted["precision"])
    vectors = []
    for path in tqdm(videos["path"], desc="detect", unit="video"):
        frames = decode_clip(path, settings, decoder).frames
        if adapter is None:
            points = frame_bins(frames[None], fitted["time_steps"])[0]
        else:  # the layer's trajectory as straightening builds it
            clip = torch.from_numpy(frames[None])
            tokens = adapter.capture(clip, [fitted["layer"]], (), residual=True).residual[0]
            points = video_points(tokens.cpu().numpy(), frames)[1]
        distances, angles = steps(points)
        vectors.append(restrav_vector(distances, angles))
    scores = fitted["pipeline"].predict_proba(np.stack(vectors))[:, 1]
    return pd.DataFrame(
        {"video": videos["id"], "path": videos["path"], "score": scores, "generated": scores >= 0.5}
    )[list(COLUMNS)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", required=True, help="a fitted detector (.joblib)")
    parser.add_argument("--out", required=True, help="the scores (.tsv)")
    parser.add_argument("--backend", default="auto", choices=["auto", "decord", "pyav"])
    Runtime.add_arguments(parser, precision=False, batch=False)
    parser.add_argument("videos", help="a sample sheet, a folder of videos or a glob")


def run(args: argparse.Namespace) -> None:
    runtime = Runtime.from_args(args)
    table = detect(args.detector, load_samples(args.videos), runtime, args.backend)
    write_table(table, args.out, "%.6g")
    print(table.to_string(index=False), file=sys.stderr)
