"""The static_dynamic stage's forward passes: each video's versions in one batch at the
chosen precision (the stage's way) against one clip per forward in fp32 (the plain way).

    python benchmarks/static_dynamic.py [--checkpoint demo] [--videos 6] [--pairs 2]

Times :func:`stages.static_dynamic.pooled_features` over the versions of real demo
videos (the video, ``pairs`` restyled copies, ``pairs`` pairs of shufflings), alternating
the two ways so that drift hits both alike, checks that they pool the same features
(within bf16 rounding), and prints the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from videoconcepts.demo import EVENTS
from videoconcepts.demo.synthetic import render_video
from videoconcepts.methods.decoding import DecodeSettings, sample_indices
from videoconcepts.methods.static_dynamic import restyle, shuffle_pairs
from videoconcepts.models import load_adapter
from videoconcepts.stages.static_dynamic import StaticDynamicSettings, pooled_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ours = load_adapter(args.checkpoint, "auto", args.precision)
    plain = load_adapter(args.checkpoint, "auto", "float32")
    n_frames, size = ours.num_frames, ours.image_size
    decode = DecodeSettings(n_frames, 2, "center", size, "index", None)
    index = sample_indices(32, decode)
    settings = StaticDynamicSettings(
        layers=list(range(ours.num_layers)), head_kind="keys", pairs=args.pairs,
        threshold=0.5, removal_layers=[ours.num_layers - 1], removal_fractions=[0.5],
        random_repeats=1, random_weights=False, seed=0,
    )  # fmt: skip
    videos = []
    for v in range(args.videos):
        rng = np.random.default_rng([0, v])
        frames = render_video(EVENTS[v % len(EVENTS)], rng, 32, max(64, size)).frames[index]
        frames = np.ascontiguousarray(frames[:, :size, :size])
        styled = [restyle(frames, rng) for _ in range(args.pairs)]
        orders = shuffle_pairs(n_frames, args.pairs, rng).reshape(-1, n_frames)
        videos.append(np.stack([frames, *styled, *(frames[o] for o in orders)]))

    def batched() -> list[dict]:
        return [pooled_features(ours, clips, settings, None, len(clips)) for clips in videos]

    def one_by_one() -> list[dict]:
        return [pooled_features(plain, clips, settings, None, 1) for clips in videos]

    def timed(fn) -> tuple[float, list[dict]]:
        start = time.perf_counter()
        out = fn()
        return time.perf_counter() - start, out

    batched(), one_by_one()  # warm-up
    ours_s, plain_s = [], []
    for _ in range(args.repeats):
        t, fast = timed(batched)
        ours_s.append(t)
        t, slow = timed(one_by_one)
        plain_s.append(t)
    gap = max(
        float(np.abs(f["residual"] - s["residual"]).max() / np.abs(s["residual"]).max())
        for f, s in zip(fast, slow, strict=True)
    )
    a, b = statistics.median(ours_s), statistics.median(plain_s)
    clips = sum(len(c) for c in videos)
    print(
        f"{args.checkpoint}: {args.videos} videos x {len(videos[0])} versions, "
        f"precision {ours.precision} vs float32, {args.threads} threads"
    )
    print(f"batched, chosen precision  {a:7.3f} s ({1e3 * a / clips:6.1f} ms per clip)")
    print(f"one clip per forward, fp32 {b:7.3f} s ({1e3 * b / clips:6.1f} ms per clip)")
    print(f"largest pooled-feature difference, relative to the largest value: {gap:.4f}")
    print(f"speed-up of the stage's way: {b / a:.2f}x")


if __name__ == "__main__":
    main()
