"""Report section of the run: models, videos, settings per stage, time per stage, software."""

from __future__ import annotations

import glob
import html
import json
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pandas as pd

from videoconcepts.report.page import Context, table
from videoconcepts.stores.base import open_store
from videoconcepts.stores.cris import KIND as CRIS_KIND
from videoconcepts.stores.features import open_features
from videoconcepts.stores.units import open_units

PACKAGES = (
    "videoconcepts",
    "torch",
    "transformers",
    "snakemake",
    "zarr",
    "numcodecs",
    "av",
    "decord",
    "scikit-image",
    "scikit-learn",
    "numpy",
    "pandas",
    "matplotlib",
)


def stage_times(patterns: Sequence[str]) -> pd.DataFrame:
    """Wall time per stage summed over its jobs, from Snakemake's benchmark files.

    The stage is the folder right below ``benchmarks/`` in each file's path.
    """
    rows = []
    for path in sorted({Path(p) for pattern in patterns for p in glob.glob(pattern)}):
        stage = path.parts[path.parts.index("benchmarks") + 1]
        seconds = pd.read_csv(path, sep="\t")["s"].iloc[-1]
        rows.append({"stage": stage, "seconds": float(seconds)})
    if not rows:
        return pd.DataFrame(columns=["stage", "jobs", "seconds"])
    times = pd.DataFrame(rows).groupby("stage", sort=False)["seconds"].agg(["count", "sum"])
    return times.reset_index().rename(columns={"count": "jobs", "sum": "seconds"})


def versions() -> pd.DataFrame:
    rows = [{"package": "python", "version": platform.python_version()}]
    for name in PACKAGES:
        try:
            rows.append({"package": name, "version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            rows.append({"package": name, "version": "not installed"})
    return pd.DataFrame(rows)


def section(context: Context) -> str:
    inputs = context.inputs
    skipped = inputs.table("skipped")
    units = open_units(inputs.one("units"))
    features = open_features(inputs.many("features")[0]).attrs
    heads, cris = inputs.table("heads"), inputs.table("cris")
    shard = open_store(inputs.many("cris_shards")[0], CRIS_KIND).attrs
    summary = pd.DataFrame(
        [
            ("family", features["family"]),
            ("checkpoint", features["settings"]["model"]["checkpoint"]),
            ("layers x heads", f"{heads['layer'].nunique()} x {features['num_heads']}"),
            ("analysed layers", ", ".join(map(str, units.layers))),
            ("token grid (T', H', W')", " x ".join(map(str, features["grid"]))),
            ("videos used", len(units.video_ids)),
            ("videos skipped", len(skipped)),
            ("concepts", len(cris)),
            ("features: device, precision", f"{features['device']}, {features['precision']}"),
            ("masking: device, precision", f"{shard['device']}, {shard['precision']}"),
        ],
        columns=["", "value"],
    )
    settings = html.escape(json.dumps(context.run_settings, indent=2, sort_keys=True))
    times = table(stage_times(inputs.many("benchmarks")), floats="{:.1f}")
    return f"""
<h2>Run</h2>
{table(summary)}
<details><summary>videos skipped ({len(skipped)})</summary>{table(skipped)}</details>
<details><summary>resolved configuration per stage</summary>
<pre>{settings}</pre></details>
<div class="figs"><div><h3>Time per stage</h3>{times}</div><div><h3>Software</h3>{
        table(versions())
    }</div></div>
"""
