"""Convex NMF as the concepts stage runs it now vs. as it ran before, and vs. naive updates.

    python benchmarks/cnmf.py [--n 2000] [--d 64] [--k 8] [--groups 8] [--large 50000]
        [--tubelets STORE [STORE ...]] [--converged-reference] [--naive-iters 100]

"new" is ConvexNMF with the schema's `concepts` settings (over-relaxed updates, the
assignment stop, float32, a subsample above `fit_max_rows`); "old" is the same class with
the settings the stage had before them, which reproduce its results: the paper's plain
updates (max_relaxation 1), max_iter 3000, tol 1e-5, float64, no assignment stop, every row
fitted. Old takes the former steps at today's cost per step (only K+ held, one n x n
matrix where the former code held K, K+ and K-, 24 n^2 bytes, and read two), so its time
and memory are below the former code's; its assignments are the former code's. Both
start from the same k-means init of all rows (as the stage starts them, from the elbow's
run), one thread each. Agreement is between the two assignments (argmax of the codes):
the adjusted Rand index, and the share of rows with the same concept once the concepts
are matched one to one (Hungarian).

Sections, each measured in one run:
- synthetic data (n x d, --groups planted groups, k concepts): old vs. new time, peak
  memory and agreement, each fit in a fresh process so that its peak RSS is its own. With
  k = groups the concepts are the groups; with fewer groups each group is split among
  several concepts, which no data decides: assignments then move late, as on the demo;
- naive updates (the rule written directly on X, as public implementations do: K and its
  split recomputed in every update, nothing reused, the loss from X), timed for
  --naive-iters steps from the same start as old, which they follow step for step;
- --tubelets: the stage's tubelet stores of one layer (give the flag once per layer):
  per head the time of reading, of the k-means elbow and of both fits, and agreement;
  --converged-reference adds old run to 30,000 steps, to show how far old itself was from
  its own convergence;
- --large N: new on N rows (a full VideoMAE-B run has about 50,000 tubelets per head):
  elbow and fit time and peak RSS in a fresh process. The former code would hold
  24 N^2 bytes there, which is computed, not run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from videoconcepts.methods.cnmf import (
    ConvexNMF,
    assign,
    choose_n_concepts,
    kmeans_init,
    start_from_labels,
)

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
SOLVER_KEYS = ("max_iter", "tol", "max_relaxation", "stable_iters", "dtype", "fit_max_rows")
OLD = {
    "max_iter": 3000,
    "tol": 1e-5,
    "max_relaxation": 1.0,
    "stable_iters": 0,
    "dtype": "float64",
    "fit_max_rows": None,
}
REFERENCE_ITERS = 10_000  # the VTCD reference code's fixed number of naive steps
CONVERGED_ITERS = 30_000


def new_settings() -> dict:
    """The schema's concepts defaults that the solver takes."""
    spec = yaml.safe_load(SCHEMA.read_text())["properties"]["concepts"]["properties"]
    keys = (*SOLVER_KEYS, "max_concepts", "elbow_threshold", "seed")
    return {key: spec[key]["default"] for key in keys}


def make_model(k: int, settings: dict, seed: int) -> ConvexNMF:
    solver = {key: settings[key] for key in SOLVER_KEYS}
    return ConvexNMF(k, random_state=seed, **{**solver, "dtype": getattr(torch, solver["dtype"])})


def tubelet_like(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mixed-sign descriptors: k overlapping Gaussian groups with per-row spread; and the
    group of each row."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.normal(size=(k, d))
    spread = rng.uniform(0.5, 1.5, size=(n, 1))
    groups = rng.integers(0, k, n)
    return centres[groups] + spread * rng.normal(size=(n, d)), groups


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Adjusted Rand index and share of rows with the same label after one-to-one matching."""
    confusion = np.zeros((a.max() + 1, b.max() + 1), dtype=np.int64)
    np.add.at(confusion, (a, b), 1)
    rows, cols = linear_sum_assignment(-confusion)
    return adjusted_rand_score(a, b), confusion[rows, cols].sum() / len(a)


def elbow(X: np.ndarray, settings: dict) -> tuple[int, dict[int, float], np.ndarray]:
    return choose_n_concepts(
        X, settings["max_concepts"], "elbow", settings["seed"], settings["elbow_threshold"]
    )


def relative_loss(X: np.ndarray, codes: np.ndarray, centroids: np.ndarray) -> float:
    return float(np.sum((X - codes @ centroids) ** 2) / np.sum(X**2))


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024  # kB
    raise KeyError(key)


def added_peak_mb(work):
    """Run work(); its result and the peak RSS it added to the process (Linux: the
    high-water mark is reset first, so allocations before it do not count)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mb("VmRSS")
    result = work()
    return result, _status_mb("VmHWM") - before


def fit_in_child(job: dict) -> dict:
    """One fit (and with ``elbow``, the k-means elbow first) in this fresh process, with
    times and the peak RSS each added."""
    torch.set_num_threads(job["threads"])
    with threadpool_limits(job["threads"]):
        X, settings, seed = job["X"], job["settings"], job["seed"]
        # torch's and k-means' one-off set-up (thread pools, kernels) is not the fit's memory
        make_model(2, {**settings, "fit_max_rows": None}, seed).fit_transform(X[:50])
        k, init, elbow_s, elbow_mb = job["k"], job["init"], 0.0, 0.0
        if job["elbow"]:
            start = time.perf_counter()
            (k, _, labels), elbow_mb = added_peak_mb(lambda: elbow(X, settings))
            init = start_from_labels(labels, k)
            elbow_s = time.perf_counter() - start
        model = make_model(k, settings, seed)
        start = time.perf_counter()
        codes, fit_mb = added_peak_mb(lambda: model.fit_transform(X, init=init))
        fit_s = time.perf_counter() - start
    return {
        "k": k,
        "elbow_s": elbow_s,
        "elbow_mb": elbow_mb,
        "fit_s": fit_s,
        "fit_mb": fit_mb,
        "labels": assign(codes),
        "loss": relative_loss(X, codes, model.components_),
        "n_iter": model.n_iter_,
        "stop": model.stop_reason_,
        "n_fit": len(model.fit_rows_),
    }


def in_fresh_process(job: dict) -> dict:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fit_in_child, job).result()


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


def describe(name: str, run: dict) -> str:
    return (
        f"{name}: {run['fit_s']:7.2f} s, {run['n_iter']:5d} steps ({run['stop']}), "
        f"fitted {run['n_fit']} rows, peak +{run['fit_mb']:.0f} MB RSS, "
        f"relative loss {run['loss']:.5f}"
    )


def synthetic(args: argparse.Namespace, new: dict) -> None:
    X, truth = tubelet_like(args.n, args.d, args.groups or args.k, args.seed)
    with threadpool_limits(args.threads):
        init = kmeans_init(X, args.k, random_state=args.seed)
    job = {"X": X, "k": args.k, "seed": args.seed, "threads": args.threads, "elbow": False}
    old_run = in_fresh_process({**job, "settings": {**new, **OLD}, "init": init})
    new_run = in_fresh_process({**job, "settings": new, "init": init})
    ari, share = agreement(old_run["labels"], new_run["labels"])
    groups = args.groups or args.k
    print(
        f"synthetic n={args.n} d={args.d}, {groups} planted groups, k={args.k} concepts, "
        f"{args.threads} thread(s), measured:"
    )
    print("  " + describe("old", old_run))
    print("  " + describe("new", new_run))
    print(
        f"  new vs old: time ratio {old_run['fit_s'] / new_run['fit_s']:.1f}x, "
        f"peak memory ratio {old_run['fit_mb'] / max(new_run['fit_mb'], 1):.1f}x; agreement "
        f"ARI {ari:.3f}, matched share {share:.3f}; vs planted groups ARI old "
        f"{adjusted_rand_score(truth, old_run['labels']):.3f}, new "
        f"{adjusted_rand_score(truth, new_run['labels']):.3f}"
    )
    naive(args, X, init, old_run)


def naive(args: argparse.Namespace, X: np.ndarray, init, old_run: dict) -> None:
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        plain = make_model(args.k, {**OLD, "max_iter": args.naive_iters}, args.seed)
        plain.fit(X, init=init)  # its losses, step for step, to check the naive trajectory
        start = time.perf_counter()
        tensors = [torch.as_tensor(a, dtype=torch.float64) for a in (X, *init)]
        naive_losses = naive_cnmf(*tensors, n_iter=args.naive_iters)
        naive_s = time.perf_counter() - start
    step = naive_s / args.naive_iters
    old_step = old_run["fit_s"] / max(1, old_run["n_iter"])
    print(
        f"naive: {step * 1e3:.2f} ms/step over {args.naive_iters} steps (relative loss "
        f"{naive_losses[-1]:.6f}, old's after as many steps {plain.loss_history_[-1]:.6f}); "
        f"old {old_step * 1e3:.2f} ms/step: {step / old_step:.1f}x per step (measured)"
    )
    print(
        f"naive for old's {old_run['n_iter']} steps {step * old_run['n_iter']:.1f} s, for the "
        f"reference code's fixed {REFERENCE_ITERS} {step * REFERENCE_ITERS:.1f} s (extrapolated)"
    )


def tubelet_layer(paths: list[str], args: argparse.Namespace, new: dict) -> list[dict]:
    """One row per head of the layer: sizes, times, steps and assignments."""
    from videoconcepts.stages.concepts import _gather

    start = time.perf_counter()
    table, descriptors, _ = _gather([Path(p) for p in paths])
    io, rows = time.perf_counter() - start, []
    for i, head in enumerate(sorted(table["head"].unique())):
        X = descriptors[table["head"].to_numpy() == head]
        row = {"io": io if i == 0 else 0.0}  # reading is the layer's: counted once
        start = time.perf_counter()
        k, _, labels = elbow(X, new)
        row["elbow"] = time.perf_counter() - start
        init = start_from_labels(labels, k)  # kmeans_init's start, as the stage takes it
        start = time.perf_counter()
        old = make_model(k, {**new, **OLD}, new["seed"]).fit(X, init=init)
        row["old"] = time.perf_counter() - start
        start = time.perf_counter()
        model = make_model(k, new, new["seed"])
        codes = model.fit_transform(X, init=init)
        row["new"] = time.perf_counter() - start
        row.update(head=head, n=len(X), k=k, old_fit=old, new_fit=model)
        row["labels"] = {"old": assign(old.Z_), "new": assign(codes)}
        if args.converged_reference:
            long = make_model(k, {**new, **OLD, "max_iter": CONVERGED_ITERS}, new["seed"])
            row["labels"]["converged"] = assign(long.fit(X, init=init).Z_)
        rows.append(row)
        print(
            f"  {Path(paths[0]).parent.name} head {head}: n={len(X)} k={k}, elbow "
            f"{row['elbow']:.2f} s, old {row['old']:.2f} s ({old.n_iter_} steps, "
            f"{old.stop_reason_}), new {row['new']:.2f} s ({model.n_iter_}, {model.stop_reason_})"
        )
    return rows


def agreements(rows: list[dict], a: str, b: str) -> str:
    pairs = np.array([agreement(r["labels"][a], r["labels"][b]) for r in rows])
    return (
        f"{b} vs {a}: ARI mean {pairs[:, 0].mean():.3f} (min {pairs[:, 0].min():.3f}), "
        f"matched share mean {pairs[:, 1].mean():.3f} (min {pairs[:, 1].min():.3f}), "
        f"identical on {(pairs[:, 1] == 1).sum()} of {len(rows)} heads"
    )


def tubelets(args: argparse.Namespace, new: dict) -> None:
    torch.set_num_threads(args.threads)
    print(f"tubelets, {args.threads} thread(s), measured:")
    with threadpool_limits(args.threads):
        rows = [row for paths in args.tubelets for row in tubelet_layer(paths, args, new)]
    total = {key: sum(r[key] for r in rows) for key in ("io", "elbow", "old", "new")}
    stuck = sum(r["old_fit"].stop_reason_ == "max_iter" for r in rows)
    print(
        f"  {len(rows)} heads: reading {total['io']:.2f} s, k-means elbow {total['elbow']:.2f} s, "
        f"old fits {total['old']:.2f} s, new fits {total['new']:.2f} s -> fit time ratio "
        f"{total['old'] / total['new']:.1f}x, elbow + fit "
        f"{(total['elbow'] + total['old']) / (total['elbow'] + total['new']):.1f}x; old stopped "
        f"at max_iter on {stuck} heads"
    )
    print("  " + agreements(rows, "old", "new"))
    if args.converged_reference:
        print(
            "  "
            + agreements(rows, "converged", "old")
            + f" (converged: old to {CONVERGED_ITERS} steps)"
        )
        print("  " + agreements(rows, "converged", "new"))


def large(args: argparse.Namespace, new: dict) -> None:
    X, truth = tubelet_like(args.large, args.d, args.groups or args.k, args.seed)
    job = {"X": X, "k": None, "seed": args.seed, "threads": args.threads, "elbow": True}
    run = in_fresh_process({**job, "settings": new, "init": None})
    groups = args.groups or args.k
    print(f"large n={args.large} d={args.d} ({groups} planted groups), new, measured:")
    print(
        f"  k-means elbow (k = 1, 2, ... up to {new['max_concepts']}, all rows): "
        f"{run['elbow_s']:.1f} s, chose k={run['k']}, peak +{run['elbow_mb']:.0f} MB RSS"
    )
    print("  " + describe("fit + transform", run))
    print(
        f"  ARI vs planted groups {adjusted_rand_score(truth, run['labels']):.3f}; the former "
        f"code would hold 24 n^2 bytes = {24 * args.large**2 / 1e9:.0f} GB (computed)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="synthetic rows")
    parser.add_argument("--d", type=int, default=64, help="descriptor size")
    parser.add_argument("--k", type=int, default=8, help="concepts")
    parser.add_argument(
        "--groups", type=int, help="planted groups (default k; fewer: concepts split groups)"
    )
    parser.add_argument("--large", type=int, help="rows for the large run (e.g. 50000)")
    parser.add_argument("--tubelets", nargs="+", action="append", default=[], help="one layer")
    parser.add_argument("--converged-reference", action="store_true")
    parser.add_argument("--naive-iters", type=int, default=100, help="naive steps actually run")
    parser.add_argument("--fit-max-rows", type=int, help="override the schema's fit_max_rows")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    new = new_settings()
    if args.fit_max_rows is not None:
        new["fit_max_rows"] = args.fit_max_rows
    print(f"new settings: {new}; old: {OLD}")
    if args.n:
        synthetic(args, new)
    if args.tubelets:
        tubelets(args, new)
    if args.large:
        large(args, new)


if __name__ == "__main__":
    main()
