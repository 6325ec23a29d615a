"""Hooked forward (features stage) vs. plain forward on the demo model, same batch.

    python benchmarks/features.py [--batch 8] [--repeats 40] [--heads keys queries values]

Prints the median time of each and their ratio; the hooks should cost under 10%.
Timings alternate between the two so drift on a busy machine hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from videoconcepts.models import load_adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="demo")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--heads", nargs="+", default=["keys"])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    adapter = load_adapter(args.checkpoint, args.device)
    shape = (args.batch, adapter.num_frames, adapter.image_size, adapter.image_size, 3)
    frames = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.manual_seed(0))

    def plain() -> None:
        adapter.logits(frames)

    def hooked() -> None:
        adapter.capture(frames, kinds=args.heads, residual=True)

    def timed(fn) -> float:
        if adapter.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if adapter.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for fn in (plain, hooked):  # warm-up
        fn()
    plain_s, hooked_s = [], []
    for _ in range(args.repeats):
        plain_s.append(timed(plain))
        hooked_s.append(timed(hooked))
    p, h = statistics.median(plain_s), statistics.median(hooked_s)
    print(
        f"device {adapter.device}, batch {args.batch}, layers {adapter.num_layers}, "
        f"capturing {'+'.join(args.heads)}+residual"
    )
    print(f"plain forward  {p * 1e3:8.2f} ms (median of {args.repeats})")
    print(f"hooked forward {h * 1e3:8.2f} ms (median of {args.repeats})")
    print(f"ratio hooked/plain: {h / p:.3f}  (hook overhead {100 * (h / p - 1):+.1f}%)")


if __name__ == "__main__":
    main()
