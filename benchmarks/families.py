"""Features and CRIS for every model family, on random checkpoints saved and loaded back
through the same code a user's checkpoint goes through.

    python benchmarks/families.py [--size base|tiny] [--families F ...] [--device auto]

Per family it prints clips/s of the plain forward and of the hooked features forward
(their ratio is the capture overhead), masks/s of the plain batched forward (a) and of
batched CRIS in ``remove`` mode (b) with their ratio, and on CUDA the peak GPU memory
of each. ``--size base`` is ViT-B sized (12 layers x 12 heads, each family at its usual
clip size), ``--size tiny`` the test models; ``--precision auto`` runs bf16 autocast
on CUDA and on CPUs with native bf16.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from cris import box_units, cris_rate, plain_rate, synchronise

from videoconcepts.devices import dtype_name
from videoconcepts.methods.cris import sample_masks
from videoconcepts.models import load_adapter
from videoconcepts.models.base import ModelAdapter
from videoconcepts.models.random_checkpoints import CLASSES, model_options, save_random
from videoconcepts.plan.families import FAMILIES, resolve_model


def peak_memory(adapter: ModelAdapter, measure) -> tuple[float, str]:
    """Run ``measure()``; return its result and the peak GPU memory it took."""
    cuda = adapter.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = measure()
    return result, f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if cuda else "-"


def features_rate(adapter: ModelAdapter, clips: torch.Tensor, repeats: int) -> float:
    adapter.capture(clips)
    synchronise(adapter)
    start = time.perf_counter()
    for _ in range(repeats):
        adapter.capture(clips)  # keys of every layer + residual, as the features stage
    synchronise(adapter)
    return repeats * len(clips) / (time.perf_counter() - start)


def logits_rate(adapter: ModelAdapter, clips: torch.Tensor, repeats: int) -> float:
    adapter.logits(clips)
    synchronise(adapter)
    start = time.perf_counter()
    for _ in range(repeats):
        adapter.logits(clips)
    synchronise(adapter)
    return repeats * len(clips) / (time.perf_counter() - start)


def measure(family: str, args: argparse.Namespace) -> tuple:
    """One family's row: features and CRIS rates, peak memory of each."""
    with tempfile.TemporaryDirectory() as folder:
        path = save_random(family, Path(folder), args.size)
        model = {"checkpoint": str(path), **model_options(family, args.size)}
        spec = resolve_model(model, list(CLASSES))
        adapter = load_adapter(spec, args.device, args.precision)
    shape = (args.batch, adapter.num_frames, adapter.image_size, adapter.image_size, 3)
    clips = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.manual_seed(0))
    plain, plain_mem = peak_memory(adapter, lambda: logits_rate(adapter, clips, args.repeats))
    hooked, hooked_mem = peak_memory(adapter, lambda: features_rate(adapter, clips, args.repeats))
    tokens = box_units(adapter, 8, seed=0)
    masks = sample_masks(args.masks, int(tokens.max()) + 1, 0.5, seed=0)
    clip, batch = clips[:1], args.masks_per_batch
    a, a_mem = peak_memory(adapter, lambda: plain_rate(adapter, clip, batch, args.masks))
    b, b_mem = peak_memory(
        adapter, lambda: cris_rate(adapter, clip, tokens, masks, batch, "remove")
    )
    row = (family, adapter.grid.size, str(adapter.device), plain, hooked, a, b)
    precision = dtype_name(adapter.precision)
    return (*row, "/".join((plain_mem, hooked_mem, a_mem, b_mem)), precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["base", "tiny"], default="base")
    parser.add_argument("--families", nargs="+", default=sorted(FAMILIES))
    parser.add_argument("--batch", type=int, default=8, help="clips per features forward")
    parser.add_argument("--masks", type=int, default=64, help="CRIS masks per measurement")
    parser.add_argument("--masks-per-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for family in args.families:
        rows.append(measure(family, args))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the last family's model is gone
    cuda = rows[0][2].startswith("cuda")
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(
        f"size {args.size}, device {name} (precision {rows[0][-1]}), "
        f"torch threads {torch.get_num_threads()}, "
        f"features batch {args.batch}, CRIS {args.masks} masks in batches of {args.masks_per_batch}"
    )
    print(
        f"{'family':<21}{'tokens':>7} {'plain clips/s':>14}{'features clips/s':>17}"
        f"{'ratio':>7} {'(a) masks/s':>12}{'(b) masks/s':>12}{'(b)/(a)':>8}"
        f"  {'peak mem plain/features/(a)/(b)'}"
    )
    for family, tokens, _, plain, hooked, a, b, memory, _ in rows:
        print(
            f"{family:<21}{tokens:>7} {plain:>14.2f}{hooked:>17.2f}"
            f"{hooked / plain:>7.2f} {a:>12.1f}{b:>12.1f}{b / a:>8.2f}  {memory}"
        )


if __name__ == "__main__":
    main()
