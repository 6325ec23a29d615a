"""The connectome stage's ITCAV gradients: many segment clips per forward and backward (the
stage's way, fp32 as the stage runs them) against one clip per pass (the reference code's
way, which also rebuilds its cut model per image); and what bf16 would change.

    python benchmarks/connectome.py [--checkpoint demo|base|PATH] [--clips 64] [--batch 32]

Times :func:`stages.connectome.lower_gradients` of eq. 5.6's objective on blanked demo
clips (each a random half of the token grid shown alone), alternating the two ways so
that drift hits both alike, checks that the gradients agree (the share of matching signs
of their dot products with random CAVs, what eq. 5.7 counts), and prints the ratio.
``base`` is a random VideoMAE-B-sized classifier (16 x 224 px, 12 layers x 768).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from videoconcepts.demo import EVENTS
from videoconcepts.demo.synthetic import render_video
from videoconcepts.methods.decoding import DecodeSettings, sample_indices
from videoconcepts.models import load_adapter
from videoconcepts.models.random_checkpoints import save_random
from videoconcepts.stages.connectome import blanked, concept_objective, lower_gradients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    checkpoint = args.checkpoint
    if checkpoint == "base":
        checkpoint = str(save_random("videomae", tempfile.mkdtemp(), "base"))
    adapter = load_adapter(checkpoint, "auto", "float32")
    n_frames, size, grid = adapter.num_frames, adapter.image_size, adapter.grid
    index = sample_indices(32, DecodeSettings(n_frames, 2, "center", size, "index", None))
    rng = np.random.default_rng(0)
    fill = np.round(adapter.mean.numpy() * 255)
    clips, masks = [], []
    for c in range(args.clips):
        frames = render_video(EVENTS[c % len(EVENTS)], rng, 32, max(64, size)).frames[index]
        mask = rng.random((grid.frames, grid.height, grid.width)) < 0.5
        masks.append(mask.reshape(-1))
        clips.append(blanked(np.ascontiguousarray(frames[:, :size, :size]), mask, fill))
    clips = np.stack(clips)
    masks = torch.as_tensor(np.stack(masks), dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    centres = torch.randn(args.clips, adapter.hidden_size, generator=generator)
    lower, upper = adapter.num_layers - 2, adapter.num_layers - 1

    def run(batch: int, bf16: bool = False) -> tuple[float, np.ndarray]:
        objective = concept_objective(adapter, upper, masks, centres)
        start = time.perf_counter()
        grads = lower_gradients(adapter, clips, lower, objective, batch, bf16)
        return time.perf_counter() - start, grads

    run(args.batch), run(1)  # warm-up
    ours_s, plain_s = [], []
    for _ in range(args.repeats):
        t, fast = run(args.batch)
        ours_s.append(t)
        t, slow = run(1)
        plain_s.append(t)
    cavs = np.random.default_rng(2).standard_normal((20, adapter.hidden_size))
    agree = float(np.mean(np.sign(fast @ cavs.T) == np.sign(slow @ cavs.T)))
    # what bf16 autocast would do to them (the stage keeps them in fp32)
    bf16_s, rounded = run(args.batch, bf16=True)
    flipped = float(np.mean(np.sign(rounded @ cavs.T) != np.sign(slow @ cavs.T)))
    a, b = statistics.median(ours_s), statistics.median(plain_s)
    print(
        f"{args.checkpoint}: ITCAV gradients of {args.clips} segment clips, layer {lower} from "
        f"layer {upper}: batched ({args.batch} a pass) {a:.2f} s, one clip a pass {b:.2f} s; "
        f"ratio {b / a:.2f}x; signs against random CAVs agree {agree:.1%}; bf16 would take "
        f"{bf16_s:.2f} s and flip {flipped:.1%} of them"
    )


if __name__ == "__main__":
    main()
