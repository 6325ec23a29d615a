"""Report page of the straightening stage: curvature with depth for every model."""

from __future__ import annotations

from itertools import cycle
from pathlib import Path

import pandas as pd

from videoconcepts.report.page import (
    OKABE_ITO,
    Analysis,
    Context,
    analysis_folder,
    axes,
    save,
    table,
)
from videoconcepts.stores.straightening import PIXELS


def per_layer(context: Context) -> pd.DataFrame:
    """Mean curvature, shuffled curvature and distance per (model, layer), with the
    standard error over videos; empty when no model ran the stage."""
    rows = []
    for name in context.inputs.models:
        inputs = context.inputs.of_model(name)
        if "straightening" not in inputs:
            continue
        videos = inputs.table("straightening")
        stats = videos.groupby("layer").agg(
            curvature=("curvature", "mean"),
            curvature_se=("curvature", "sem"),
            shuffled=("shuffled_curvature", "mean"),
            distance=("distance", "mean"),
            videos=("video", "nunique"),
        )
        depth = int((stats.index != PIXELS).sum())
        stats["depth"] = [0.0 if layer == PIXELS else (layer + 1) / depth for layer in stats.index]
        rows.append(stats.reset_index().assign(model=name))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def curve_figure(stats: pd.DataFrame, path: Path) -> str:
    fig, ax = axes(7, 4)
    for (name, model), colour in zip(
        stats.groupby("model", sort=False), cycle(OKABE_ITO), strict=False
    ):
        ax.errorbar(
            model["depth"],
            model["curvature"],
            yerr=model["curvature_se"].fillna(0),
            color=colour,
            marker="o",
            capsize=3,
            label=f"{name}",
        )
        ax.plot(
            model["depth"],
            model["shuffled"],
            color=colour,
            linestyle="--",
            label=f"{name}, time shuffled",
        )
    ax.set(
        title="Straightening: trajectory curvature with depth",
        xlabel="relative depth (0 = pixels, layer / layers)",
        ylabel="mean curvature (degrees)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return save(fig, path)


def section(context: Context) -> str:
    stats = per_layer(context)
    if stats.empty:
        return ""
    figure = curve_figure(stats, context.out / "figures" / "straightening.png")
    shown = stats.assign(
        layer=stats["layer"].map(lambda layer: "pixels" if layer == PIXELS else layer)
    )
    shown = shown[["model", "layer", "curvature", "curvature_se", "shuffled", "distance", "videos"]]
    shown = shown.rename(
        columns={
            "curvature": "curvature (deg)",
            "curvature_se": "± s.e.",
            "shuffled": "time shuffled (deg)",
            "distance": "mean step distance",
        }
    )
    return f"""
<h2>Representation straightening</h2>
<p class="note">Each video is a trajectory through a layer's representation: its tokens at
each time step of the token grid, flattened (pixels: the frames averaged over the same
time steps). Curvature is the mean angle between consecutive steps (0 = a straight line,
90 = each step at right angles to the last); the perceptual-straightening hypothesis
expects it to fall with depth for natural video. The same trajectories with their time
steps shuffled give the null: a representation whose time order carried nothing sits on
its dashed line. This greedy estimate is biased upward by noise in the representation,
so read curvatures against the null and against pixels, not as absolute values.</p>
<img src="{figure}" alt="curvature with depth, every model">
{table(shown)}
"""


def card(context: Context) -> str:
    stats = per_layer(context)
    lines = []
    for name, model in stats.groupby("model", sort=False):
        pixels, last = model.iloc[0], model.iloc[-1]
        lines.append(
            f"<li>{name}: pixels {pixels['curvature']:.1f}&deg;, last layer "
            f"{last['curvature']:.1f}&deg; (time shuffled {last['shuffled']:.1f}&deg;)</li>"
        )
    src = f"{analysis_folder(ANALYSIS.name)}/figures/straightening.png"
    return f"<ul class='note'>{''.join(lines)}</ul><img src='{src}' alt='curvature with depth'>"


ANALYSIS = Analysis("straightening", "Straightening", section, card)
