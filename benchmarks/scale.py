"""Peak memory per stage at about 20 and 200 videos, and end-to-end time: the whole workflow.

    python benchmarks/scale.py [--per-event 3 33] [--cores 2] [--out scale-runs]

Runs the demo (6 events x ``--per-event`` videos: 18 and 198, the demo sizes nearest to
20 and 200) end to end, each size in a fresh folder, with the reduced settings below,
and prints per rule the largest ``max_rss`` (MB, from Snakemake's benchmark files) over
the rule's jobs at each size and their ratio, and the wall time of each run.

A job's memory should depend on what that one job reads, not on the number of videos:
per-video and per-shard jobs should stay flat (ratio ~1). Jobs that read every video
(concepts, units, validation, the importance jobs, the report) may grow, by what they
hold for all videos at once.

Reduced settings (198 videos took 43 minutes on 2 shared, busy cores): the demo VideoMAE
alone, 2 of its 4 layers, tubelets on a grid upsampled (1, 2, 2) instead of (2, 4, 4), Convex NMF
capped at 500 iterations, 64 CRIS masks, curves of 5 steps with 1 random order, 32 head
masks and 4 pruning steps, 10 concepts in the report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
REDUCED = {
    "features": {"layers": [1, 3], "videos_per_job": 16},
    "tubelets": {"upsample": [1, 2, 2]},
    "concepts": {"max_iter": 500},
    "cris": {"num_masks": 64, "shards": 2},
    "masking": {"masks_per_batch": 32},
    "curves": {"steps": 5, "random_orders": 1},
    "heads": {"num_masks": 32, "pruning_steps": 4},
    "report": {"top_concepts": 10, "videos_per_concept": 2},
}


def rule_of(relative: str) -> str:
    """The rule that wrote a benchmark file: the folder right below results/benchmarks/."""
    return relative.split("/")[0]


def run(per_event: int, workdir: Path, cores: int) -> float:
    """Run the workflow afresh in ``workdir`` for ``per_event`` videos per event; wall s."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["demo"] = {"videos_per_event": per_event}
    config["models"] = {"videomae": {"checkpoint": "demo"}}  # one model: scale, not breadth
    for section, values in REDUCED.items():
        config.setdefault(section, {}).update(values)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d"]
    command += [str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", str(cores)]
    start = time.perf_counter()
    with (workdir / "snakemake.log").open("w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return time.perf_counter() - start


def per_rule(workdir: Path) -> pd.DataFrame:
    """Jobs, peak max_rss (MB) and mean seconds per rule, from a run's benchmark files."""
    root = workdir / "results" / "benchmarks"
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        record = pd.read_csv(path, sep="\t").iloc[-1]
        rss = pd.to_numeric(record["max_rss"], errors="coerce")  # "-" for very short jobs
        rows.append({"rule": rule_of(str(path.relative_to(root))), "s": record["s"], "rss": rss})
    return (
        pd.DataFrame(rows)
        .groupby("rule", sort=False)
        .agg(jobs=("s", "size"), peak_mb=("rss", "max"), mean_s=("s", "mean"))
    )


def summary(small: pd.DataFrame, large: pd.DataFrame, sizes: tuple[int, int]) -> pd.DataFrame:
    """Both sizes side by side with the ratio of the peaks (large / small)."""
    both = small.add_suffix(f"_{sizes[0]}").join(large.add_suffix(f"_{sizes[1]}"))
    both["ratio"] = both[f"peak_mb_{sizes[1]}"] / both[f"peak_mb_{sizes[0]}"]
    return both.round(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-event", type=int, nargs=2, default=[3, 33])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("scale-runs"))
    args = parser.parse_args()
    walls, tables = {}, {}
    for n in args.per_event:
        workdir = args.out.resolve() / f"n{n}"
        walls[6 * n] = run(n, workdir, args.cores)
        tables[6 * n] = per_rule(workdir)
        print(f"{6 * n} videos: {walls[6 * n]:.0f} s end to end", flush=True)
    sizes = tuple(walls)
    print(summary(*tables.values(), sizes).to_string())
    for videos, wall in walls.items():
        print(f"end to end, {videos} videos: {wall:.0f} s on {args.cores} cores")


if __name__ == "__main__":
    main()
