"""CRIS to a given precision: our way against the reference way, and masks per second.

    python benchmarks/cris.py [--model demo|base] [--batch 32] [--masks 256]
        [--precision auto] [--estimator regression] [--device auto]

(a) plain batched forward, no masking (the ceiling), in the chosen precision;
(b) batched CRIS: one clip repeated, a different unit mask per batch row, token masks
    gathered on the device, hooks registered once (this package, both masking modes),
    in the chosen precision;
(c) the reference code's way: fp32, one mask per forward at batch size 1, concepts of
    the mask collected in a Python loop, key-zeroing hooks registered and removed per mask.

A mask costs one forward row of one video in all three, so the rates compare the same
work. Precision per mask differs by estimator: ``--se-masks`` masks scored our way give
the median standard error of the chosen estimator and of the reference's difference of
means on the same scores; the difference needs (their ratio)^2 as many masks for the same
error, so the time to equal standard error is (b)/(c) x that ratio^2 (``--se-masks 0``:
the rates and the roofline only, for a model where the errors take long).

The roofline lines say how far the hardware lets this go: FLOPs of one forward
(``FlopCounterMode``), what (a) and (b) achieve of them, and a dense matrix product of the
MLP's shape in bf16 and in fp32 on the same device. Where the forward is bound by its
matrix products, their bf16 / fp32 ratio is the most the precision can give; on CUDA
that rate is what CRIS's achieved share is of. With ``--model base`` it also prints the
time of the paper's setup (30 videos x 4000 masks) at (b)'s rate.

``--model base`` builds a random VideoMAE-B-sized classifier (16 x 224 px, 12 layers x
12 heads). Units: every (layer, head) of the model split into ``--units-per-head``
random box concepts.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from videoconcepts.devices import dtype_name, pick_precision
from videoconcepts.methods.cris import ESTIMATES, sample_masks
from videoconcepts.models import load_adapter
from videoconcepts.models.base import ModelAdapter
from videoconcepts.models.random_checkpoints import save_random
from videoconcepts.models.scorer import MaskingSettings, MaskScorer


def build_adapter(model: str, device: str) -> ModelAdapter:
    if model == "demo":
        return load_adapter("demo", device)
    with tempfile.TemporaryDirectory() as folder:  # a random VideoMAE-B, saved and loaded
        return load_adapter(str(save_random("videomae", Path(folder), "base")), device)


def box_units(adapter: ModelAdapter, per_head: int, seed: int) -> np.ndarray:
    """(layers, heads, N) unit ids: each head's grid cut into ``per_head`` time x row slabs."""
    g = adapter.grid
    rng = np.random.default_rng(seed)
    tokens = np.empty((adapter.num_layers, adapter.num_heads, g.frames, g.height, g.width), int)
    unit = 0
    for layer in range(adapter.num_layers):
        for head in range(adapter.num_heads):
            rows = np.sort(rng.choice(np.arange(1, g.height), per_head // 2 - 1, replace=False))
            row_of = np.searchsorted(rows, np.arange(g.height), side="right")
            half = (np.arange(g.frames) >= g.frames // 2).astype(int)
            local = half[:, None] * (per_head // 2) + row_of[None, :]
            tokens[layer, head] = unit + local[:, :, None]
            unit += per_head
    return tokens.reshape(adapter.num_layers, adapter.num_heads, -1)


def synchronise(adapter: ModelAdapter) -> None:
    if adapter.device.type == "cuda":
        torch.cuda.synchronize()


def plain_rate(adapter: ModelAdapter, clip: torch.Tensor, batch: int, n_masks: int) -> float:
    frames = clip.expand(batch, -1, -1, -1, -1)
    adapter.logits(frames)
    synchronise(adapter)
    start = time.perf_counter()
    for _ in range(0, n_masks, batch):
        adapter.logits(frames)
    synchronise(adapter)
    return n_masks / (time.perf_counter() - start)


def cris_scores(adapter, clip, tokens, masks, batch: int, mode: str, metric: str):
    """(scores, masks/s) of batched CRIS on one clip, after one warm-up batch."""
    settings = MaskingSettings("benchmark", mode, "keys", metric, "none")
    layers = range(adapter.num_layers)
    with MaskScorer(adapter, layers, settings, batch_size=batch) as scorer:
        scorer.scores(clip[0].numpy(), tokens, masks[:batch], target=0)
        synchronise(adapter)
        start = time.perf_counter()
        scores = scorer.scores(clip[0].numpy(), tokens, masks, target=0)
        synchronise(adapter)
    return scores, len(masks) / (time.perf_counter() - start)


def cris_rate(adapter, clip, tokens, masks, batch: int, mode: str) -> float:
    return cris_scores(adapter, clip, tokens, masks, batch, mode, "correctness")[1]


def median_stderr(scores: np.ndarray, masks: np.ndarray, estimator: str) -> float:
    """Median standard error over units of one clip's importance."""
    presence = np.ones((1, masks.shape[1]), bool)
    return float(np.median(ESTIMATES[estimator](scores[None], masks, presence)[1]))


def matmul_rate(adapter: ModelAdapter, rows: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """FLOP/s of one (rows x width) @ (width x 4 width) product in ``dtype``: the MLP's."""
    width = adapter.hidden_size
    a = torch.randn(rows, width, device=adapter.device).to(dtype)
    b = torch.randn(width, 4 * width, device=adapter.device).to(dtype)
    a @ b
    synchronise(adapter)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronise(adapter)
    return repeats * 2 * rows * width * 4 * width / (time.perf_counter() - start)


PAPER_FORWARDS = 30 * 4000  # the paper's CRIS on VideoMAE-B: 30 videos x 4000 masks


def reference_rate(adapter: ModelAdapter, clip, tokens, n_masks: int, ratio: float) -> float:
    """One mask per forward, batch 1, hooks registered per mask, as the reference code."""
    n_units = int(tokens.max()) + 1
    where = {u: np.argwhere(tokens == u) for u in range(n_units)}  # (layer, head, token)
    concept_masks = {}  # per-concept (N,) keep masks on the device, precomputed
    for u, hits in where.items():
        keep = torch.ones(tokens.shape[-1], device=adapter.device)
        keep[torch.as_tensor(hits[:, 2])] = 0
        concept_masks[u] = (int(hits[0, 0]), int(hits[0, 1]), keep)
    heads, dim = adapter.num_heads, adapter.head_dim
    pixels = adapter.preprocess(clip)

    def make_hook(entries):
        def hook(_module, _inputs, output):
            b, s, width = output.shape
            keys = output.view(b, s, heads, dim)
            mask = torch.ones_like(keys)
            for head, keep in entries:
                mask[0, :, head] *= keep[:, None]
            return (keys * mask).view(b, s, width)

        return hook

    def one_mask(rng: random.Random) -> float:
        chosen = rng.sample(range(n_units), int(ratio * n_units))
        per_layer: dict[int, list] = {}
        for unit in chosen:
            layer, head, keep = concept_masks[unit]
            per_layer.setdefault(layer, []).append((head, keep))
        handles = [
            adapter.projection(layer, "keys").register_forward_hook(make_hook(entries))
            for layer, entries in per_layer.items()
        ]
        try:
            with torch.inference_mode(), adapter.autocast():
                logits = adapter.model(pixel_values=pixels).logits
            return logits.float().softmax(-1)[0, 0].item()
        finally:
            for handle in handles:
                handle.remove()

    rng = random.Random(0)
    one_mask(rng)
    start = time.perf_counter()
    for _ in range(n_masks):
        one_mask(rng)
    return n_masks / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["demo", "base"], default="demo")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--masks", type=int, default=256, help="masks per measurement")
    parser.add_argument("--reference-masks", type=int, default=64)
    parser.add_argument(
        "--se-masks", type=int, default=1024, help="masks for the errors (0: rates only)"
    )
    parser.add_argument("--units-per-head", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--estimator", default="regression", choices=sorted(ESTIMATES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="medians over this many rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    adapter = build_adapter(args.model, args.device)
    ours = pick_precision(args.precision, adapter.device)
    if 0 < args.se_masks < 4 * adapter.num_layers * adapter.num_heads * args.units_per_head:
        # with masks near the units the regression's ridge shrinks its errors: no comparison
        parser.error("--se-masks must be at least 4x the units (layers x heads x units per head)")
    shape = (1, adapter.num_frames, adapter.image_size, adapter.image_size, 3)
    clip = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.manual_seed(0))
    tokens = box_units(adapter, args.units_per_head, seed=0)
    n_units = int(tokens.max()) + 1
    masks = sample_masks(args.masks, n_units, 0.5, seed=0)

    # Alternate the measurements round by round so drift on a busy machine hits all alike.
    rates: dict[str, list[float]] = {"a": [], "remove": [], "zero": [], "c": []}
    for _ in range(args.rounds):
        adapter.precision = ours
        rates["a"].append(plain_rate(adapter, clip, args.batch, args.masks))
        for mode in ("remove", "zero"):
            rates[mode].append(cris_rate(adapter, clip, tokens, masks, args.batch, mode))
        adapter.precision = torch.float32
        rates["c"].append(reference_rate(adapter, clip, tokens, args.reference_masks, 0.5))
    a, c = statistics.median(rates["a"]), statistics.median(rates["c"])
    b = {mode: statistics.median(rates[mode]) for mode in ("remove", "zero")}

    name = torch.cuda.get_device_name() if adapter.device.type == "cuda" else "CPU"
    print(
        f"model {args.model} ({adapter.num_layers} layers x {adapter.num_heads} heads, "
        f"{adapter.grid.size} tokens), {n_units} units, device {name}, our precision "
        f"{dtype_name(ours)} (reference fp32), batch {args.batch}, "
        f"torch threads {torch.get_num_threads()}, median of {args.rounds} rounds",
        flush=True,
    )
    print(f"(a) plain batched forward      {a:9.1f} masks/s")
    for mode, rate in b.items():
        print(f"(b) batched CRIS, {mode:<6} mode  {rate:9.1f} masks/s")
    print(f"(c) reference: 1 mask/forward  {c:9.1f} masks/s")
    for mode, rate in b.items():
        print(
            f"ratio (b)/(a) {mode:<6}: {rate / a:.2f}    ratio (b)/(c) {mode:<6}: {rate / c:.2f}",
            flush=True,
        )
    flops = adapter.flop_count().total
    rows = args.batch * adapter.grid.size
    peak = {dtype: matmul_rate(adapter, rows, dtype) for dtype in (ours, torch.float32)}
    print(
        f"roofline: one forward {flops / 1e9:.3g} GFLOP; (a) achieves "
        f"{a * flops / 1e12:.2f} TFLOP/s, (b) {b['remove'] * flops / 1e12:.2f} = "
        f"{b['remove'] * flops / peak[ours]:.0%} of a {rows} x {adapter.hidden_size} x "
        f"{4 * adapter.hidden_size} matrix product in {dtype_name(ours)} "
        f"({peak[ours] / 1e12:.2f} TFLOP/s; fp32 {peak[torch.float32] / 1e12:.2f}: "
        f"precision can give at most {peak[ours] / peak[torch.float32]:.2f}x where the "
        "forward is bound by its matrix products)"
    )
    if args.model == "base":
        print(
            f"paper setup ({PAPER_FORWARDS} forwards, 30 videos x 4000 masks): "
            f"{PAPER_FORWARDS / b['remove']:.0f} s at (b)'s rate, "
            f"{PAPER_FORWARDS * flops / 1e15:.1f} PFLOP"
        )
    if not args.se_masks:
        return
    # standard errors on one set of scores ("prob": a continuous score moves with every mask)
    adapter.precision = ours
    se_masks = sample_masks(args.se_masks, n_units, 0.5, seed=1)
    scores, _ = cris_scores(adapter, clip, tokens, se_masks, args.batch, "remove", "prob")
    se = {name: median_stderr(scores, se_masks, name) for name in {args.estimator, "difference"}}
    masks_ratio = (se["difference"] / se[args.estimator]) ** 2

    print(
        f"median standard error at {args.se_masks} masks: {args.estimator} "
        f"{se[args.estimator]:.4g}, difference of means {se['difference']:.4g}: the "
        f"difference needs {masks_ratio:.2f}x the masks"
    )
    ratio = {mode: rate / c * masks_ratio for mode, rate in b.items()}
    print(
        f"time to equal standard error vs reference: {ratio['remove']:.1f}x "
        f"(remove mode, the default; zero mode, the reference's intervention: "
        f"{ratio['zero']:.1f}x)"
    )


if __name__ == "__main__":
    main()
