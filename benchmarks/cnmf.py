"""Gram-based ConvexNMF with a tolerance stop vs. naive Convex NMF updates, same start.

    python benchmarks/cnmf.py [--n 2000] [--d 64] [--k 8] [--tol 1e-5] [--naive-iters 100]

The naive version is the update rule written directly on X, as public implementations
do: every update recomputes K = X X^T and its split, each product is formed anew (nothing
reused between the two updates and the loss) and the loss is computed explicitly from X
every step; the reference code runs it for a fixed 10,000 steps. It is still given sane
association (no n x n x n products, which would make it far slower) and runs in torch on
the same device and threads, so the ratio measures the algorithm, not the library.
Both start from the same k-means init and follow the same trajectory, so the naive run is
timed for --naive-iters steps (its loss is checked against ours at that step) and its time
for as many steps as ours needed (time to the same loss) and for 10,000 steps is
extrapolated, and labelled so.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from videoconcepts.methods.cnmf import ConvexNMF, kmeans_init

REFERENCE_ITERS = 10_000


def tubelet_like(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """Mixed-sign descriptors: k overlapping Gaussian groups with per-row spread."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.normal(size=(k, d))
    spread = rng.uniform(0.5, 1.5, size=(n, 1))
    return centres[rng.integers(0, k, n)] + spread * rng.normal(size=(n, d))


def naive_cnmf(
    X: torch.Tensor, Z: torch.Tensor, W: torch.Tensor, n_iter: int, eps: float = 1e-12
) -> list[float]:
    """The updates written directly on X; returns the relative loss after each step."""
    norm = (X**2).sum()
    losses = []
    for _ in range(n_iter):
        K = X @ X.T
        Kp, Kn = K.clamp_min(0), (-K).clamp_min(0)
        num = Kp @ W.T + Z @ (W @ Kn @ W.T)
        Z = Z * torch.sqrt(num / (Kn @ W.T + Z @ (W @ Kp @ W.T) + eps))
        K = X @ X.T
        Kp, Kn = K.clamp_min(0), (-K).clamp_min(0)
        num = Z.T @ Kp + Z.T @ Z @ W @ Kn
        W = W * torch.sqrt(num / (Z.T @ Kn + Z.T @ Z @ W @ Kp + eps))
        s = W.sum(dim=1)
        W, Z = W / s[:, None], Z * s
        losses.append(float(((X - Z @ (W @ X)) ** 2).sum() / norm))
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="tubelet descriptors")
    parser.add_argument("--d", type=int, default=64, help="descriptor size")
    parser.add_argument("--k", type=int, default=8, help="concepts")
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--max-iter", type=int, default=REFERENCE_ITERS)
    parser.add_argument("--naive-iters", type=int, default=100, help="naive steps actually run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    X = tubelet_like(args.n, args.d, args.k, args.seed)
    with threadpool_limits(args.threads):
        init = kmeans_init(X, args.k, random_state=args.seed)
        model = ConvexNMF(args.k, max_iter=args.max_iter, tol=args.tol, device=args.device)
        start = time.perf_counter()
        model.fit(X, init=init)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        ours_s = time.perf_counter() - start

        steps = max(1, min(args.naive_iters, model.n_iter_))
        start = time.perf_counter()
        tensors = [torch.as_tensor(a, dtype=model.dtype, device=model.device) for a in (X, *init)]
        naive_losses = naive_cnmf(*tensors, n_iter=steps)
        naive_s = time.perf_counter() - start

    ours_loss, naive_loss = model.loss_history_[-1], naive_losses[-1]
    ours_step, naive_step = ours_s / max(1, model.n_iter_), naive_s / steps
    to_same_loss = naive_step * model.n_iter_
    label = "measured" if steps == model.n_iter_ else "extrapolated"
    status = "converged" if model.converged_ else "NOT converged"
    print(f"n={args.n} d={args.d} k={args.k}, {args.threads} thread(s), ours on {model.device}")
    print(
        f"ours : {ours_s:8.2f} s, {model.n_iter_} steps ({ours_step * 1e3:.2f} ms/step), "
        f"{status} at tol {args.tol:g}, final relative loss {ours_loss:.6f}"
    )
    print(
        f"naive: {naive_s:8.2f} s for {steps} steps ({naive_step * 1e3:.2f} ms/step), "
        f"relative loss {naive_loss:.6f} (ours after {steps} steps: "
        f"{model.loss_history_[steps]:.6f})"
    )
    print(
        f"naive to our final loss ({model.n_iter_} steps, {label}): {to_same_loss:8.2f} s"
        f"  -> speed ratio {to_same_loss / ours_s:.1f}x"
    )
    reference = naive_step * REFERENCE_ITERS
    print(
        f"naive fixed {REFERENCE_ITERS} steps like the reference code (extrapolated): "
        f"{reference:8.1f} s  -> speed ratio {reference / ours_s:.1f}x"
    )


if __name__ == "__main__":
    main()
