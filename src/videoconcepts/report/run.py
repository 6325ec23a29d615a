"""Report sections of the run: the overview comparing its models (with time per stage and
software) and each model's summary on its page."""

from __future__ import annotations

import glob
import html
import json
import platform
from collections.abc import Sequence
from importlib import metadata
from itertools import cycle
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from videoconcepts.report.cris import clip_name
from videoconcepts.report.page import (
    OKABE_ITO,
    Context,
    Inputs,
    Markup,
    model_folder,
    model_page,
    save,
    table,
)
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


def summary(inputs: Inputs) -> dict[str, object]:
    """One model's facts: what it is, what was analysed, how it ran."""
    units = open_units(inputs.one("units"))
    features = open_features(inputs.many("features")[0]).attrs
    heads, cris = inputs.table("heads"), inputs.table("cris")
    shard = open_store(inputs.many("cris_shards")[0], CRIS_KIND).attrs
    return {
        "family": features["family"],
        "checkpoint": features["settings"]["model"]["checkpoint"],
        "layers x heads": f"{heads['layer'].nunique()} x {features['num_heads']}",
        "analysed layers": ", ".join(map(str, units.layers)),
        "token grid (T', H', W')": " x ".join(map(str, features["grid"])),
        "videos used": len(units.video_ids),
        "concepts": len(cris),
        "features: device, precision": f"{features['device']}, {features['precision']}",
        "masking: device, precision": f"{shard['device']}, {shard['precision']}",
    }


def model_section(context: Context) -> str:
    """A model page's summary and its settings."""
    facts = pd.DataFrame(list(summary(context.inputs).items()), columns=["", "value"])
    settings = html.escape(json.dumps(context.run_settings, indent=2, sort_keys=True))
    return f"""
<h2>Model</h2>
{table(facts)}
<details><summary>resolved configuration per stage</summary>
<pre>{settings}</pre></details>
"""


def fidelity_areas(inputs: Inputs) -> dict[str, float]:
    """Area under each attribution curve, ``method order`` -> area."""
    fidelity = inputs.table("fidelity")
    return {f"AUC {r.method} {r.order}": float(r.auc) for r in fidelity.itertuples()}


def comparison_figure(models: dict[str, Inputs], path: Path) -> str:
    """Mean CRIS importance and concept count per layer, one colour per model, layers at
    their relative depth so models of different depths line up."""
    fig = Figure(figsize=(10, 3.6))
    importance, counts = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for (name, inputs), colour in zip(models.items(), cycle(OKABE_ITO), strict=False):
        cris = inputs.table("cris")
        depth = int(inputs.table("heads")["layer"].nunique())
        per_layer = cris.groupby("layer")["importance"].agg(["mean", "sem", "count"])
        x = (per_layer.index.to_numpy() + 1) / depth
        importance.errorbar(
            x,
            per_layer["mean"],
            yerr=per_layer["sem"].fillna(0),
            color=colour,
            marker="o",
            capsize=3,
            label=name,
        )
        counts.plot(x, per_layer["count"], color=colour, marker="s", label=name)
    importance.axhline(0, color="black", linewidth=0.8)
    importance.set(
        title="Concept importance per layer",
        xlabel="relative depth (layer / layers)",
        ylabel="mean CRIS importance (metric drop)",
    )
    counts.set(
        title="Concepts per layer",
        xlabel="relative depth (layer / layers)",
        ylabel="concepts (all heads)",
    )
    for ax in (importance, counts):
        ax.legend(fontsize=8, title="model")
    return save(fig, path)


def validation_comparison(models: dict[str, Inputs]) -> str:
    """The demo's best concept per ground-truth role, every model side by side (SLIC
    tubelets, cross-fitted IoU, the honest protocol); empty outside the demo."""
    columns = {}
    for name, inputs in models.items():
        if "validation" in inputs:
            best = inputs.table("validation")
            slic = best[best["method"] == "slic"].set_index("role")
            columns[f"{name} SLIC"] = slic["crossfit_iou"]
            crops = best[best["method"] == "random_crops"].set_index("role")
            columns[f"{name} random crops"] = crops["crossfit_iou"]
    if not columns:
        return ""
    side = pd.DataFrame(columns).reset_index()
    return (
        "<h3>Concepts vs. ground truth (demo), every model</h3><p class='note'>Best "
        "concept per object role, cross-fitted mean IoU (chosen on half of the videos, "
        "scored on the other half), SLIC tubelets beside the random-crop baseline.</p>"
        + table(side)
    )


def model_card(
    name: str, model: Inputs, facts: dict[str, object], areas: dict[str, float], out: Path
) -> str:
    """A model's card: its facts (:func:`summary`), fidelity areas and its top concept's
    clip (from its page, when the page drew one)."""
    items = [f"{k}: {html.escape(str(facts[k]))}" for k in ("family", "layers x heads", "concepts")]
    items += [
        f"{method} AUC (positive / negative): {areas[f'AUC {method} positive']:.3f} / "
        f"{areas[f'AUC {method} negative']:.3f}"
        for method in ("cris", "occlusion")
        if f"AUC {method} positive" in areas
    ]
    if "AUC random random" in areas:
        items.append(f"random AUC: {areas['AUC random random']:.3f}")
    top = model.table("cris").sort_values("rank")
    clip = ""
    if len(top):
        src = f"{model_folder(name)}/{clip_name(int(top['unit'].iloc[0]))}"
        if (out / src).is_file():
            clip = f'<img src="{src}" alt="the top concept of {html.escape(name)}" loading="lazy">'
    lines = "".join(f"<li>{item}</li>" for item in items)
    return (
        f'<div class="card"><h3><a href="{model_page(name)}">{html.escape(name)}</a></h3>'
        f"<ul class='note'>{lines}</ul>{clip}</div>"
    )


def section(context: Context) -> str:
    """The overview's models: a card each, then side by side."""
    inputs = context.inputs
    models = {name: inputs.of_model(name) for name in inputs.models}
    rows, cards = [], []
    for name, model in models.items():
        facts, areas = summary(model), fidelity_areas(model)
        link = Markup(f'<a href="{model_page(name)}">{html.escape(name)}</a>')
        rows.append(
            {
                "model": link,
                **{k: facts[k] for k in ("family", "checkpoint", "layers x heads", "concepts")},
                "videos used": facts["videos used"],
                **areas,
            }
        )
        cards.append(model_card(name, model, facts, areas, context.out))
    validation = validation_comparison(models)
    figure = comparison_figure(models, context.out / "figures" / "models.png")
    return f"""
<h2>Models</h2>
<div class="cards">{"".join(cards)}</div>
<p class="note">Fidelity areas under the attribution curves (see each model's page):
removing the most important concepts first (positive, lower is better) and the least
important first (negative, higher is better), CRIS beside the occlusion baseline and
random orders. Each model's page has its concepts, curves, heads and validation.</p>
{table(pd.DataFrame(rows))}
<img src="{figure}" alt="importance and concepts per layer, every model">
{validation}
"""


def details(context: Context) -> str:
    """The run's skipped videos, configuration, time per stage and software."""
    inputs = context.inputs
    models = {name: inputs.of_model(name) for name in inputs.models}
    skipped = pd.concat([m.table("skipped") for m in models.values()]).drop_duplicates()
    benchmarks = [p for m in models.values() for p in m.many("benchmarks")]
    benchmarks += inputs.many("benchmarks") if "benchmarks" in inputs else []  # cross-model
    times = table(stage_times(benchmarks), floats="{:.1f}")
    settings = html.escape(json.dumps(context.run_settings, indent=2, sort_keys=True))
    return f"""
<h2>Run</h2>
<details><summary>videos skipped ({len(skipped)})</summary>{table(skipped)}</details>
<details><summary>resolved configuration per model and stage</summary>
<pre>{settings}</pre></details>
<div class="figs"><div><h3>Time per stage (all models)</h3>{times}</div><div><h3>Software</h3>{
        table(versions())
    }</div></div>
"""
