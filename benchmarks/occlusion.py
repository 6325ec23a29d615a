"""Occlusion's masks (one unit each) with the layers below each mask run once per batch,
against every row running the whole model.

    python benchmarks/occlusion.py [--model demo|base] [--batch 32] [--units-per-head 8]

A mask that hides units of one layer leaves every layer below it as the unmasked clip
computes it, so the scorer runs those layers on one copy of the clip and repeats the
hidden states into the first masked layer (``ModelAdapter.shares_prefix``). Units are
every (layer, head) of the model cut into ``--units-per-head`` boxes, the same as
``benchmarks/cris.py``; one mask per unit, scored in the chosen precision. The two ways
alternate round by round and their outputs are compared.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from cris import box_units, build_adapter, synchronise

from videoconcepts.devices import dtype_name, pick_precision
from videoconcepts.models.scorer import MaskingSettings, MaskScorer


def occlusion_rate(adapter, clip, tokens, batch: int, shared: bool) -> tuple[torch.Tensor, float]:
    """(outputs, masks/s) of every unit masked alone, after one warm-up batch."""
    masks = np.eye(int(tokens.max()) + 1, dtype=bool)
    type(adapter).shares_prefix = shared
    settings = MaskingSettings("benchmark", "remove", "keys", "logit", "none")
    with MaskScorer(adapter, range(adapter.num_layers), settings, batch_size=batch) as scorer:
        scorer.logits(clip, tokens, masks[:batch])
        synchronise(adapter)
        start = time.perf_counter()
        out = scorer.logits(clip, tokens, masks)
        synchronise(adapter)
    return out, len(masks) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["demo", "base"], default="demo")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--units-per-head", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="medians over this many rounds")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    adapter = build_adapter(args.model, args.device)
    adapter.precision = pick_precision(args.precision, adapter.device)
    shape = (adapter.num_frames, adapter.image_size, adapter.image_size, 3)
    clip = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    tokens = box_units(adapter, args.units_per_head, seed=0)
    rates: dict[bool, list[float]] = {True: [], False: []}
    outputs = {}
    for _ in range(args.rounds):
        for shared in (False, True):
            outputs[shared], rate = occlusion_rate(adapter, clip, tokens, args.batch, shared)
            rates[shared].append(rate)
    full, shared = (statistics.median(rates[k]) for k in (False, True))
    layers = adapter.num_layers
    name = torch.cuda.get_device_name() if adapter.device.type == "cuda" else "CPU"
    print(
        f"model {args.model} ({layers} layers x {adapter.num_heads} heads, "
        f"{adapter.grid.size} tokens), {int(tokens.max()) + 1} single-unit masks, device "
        f"{name}, precision {dtype_name(adapter.precision)}, batch {args.batch}, "
        f"torch threads {torch.get_num_threads()}, median of {args.rounds} rounds"
    )
    print(f"every row runs the whole model   {full:9.1f} masks/s")
    print(f"layers below the mask run once   {shared:9.1f} masks/s")
    gap = (outputs[True] - outputs[False]).abs().max().item()
    print(
        f"largest output difference {gap:.2g}; the layers' share left to run "
        f"{(layers + 1) / (2 * layers):.3f} (units spread evenly over the layers)"
    )
    print(f"ratio shared / whole model: {shared / full:.2f}x")


if __name__ == "__main__":
    main()
