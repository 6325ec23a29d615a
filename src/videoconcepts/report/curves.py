"""Report section of the curves stage: attribution curves, their areas and the fidelity checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from videoconcepts.report.page import OKABE_ITO, Context, axes, save, table

ORDER_STYLE = {"positive": "-", "negative": "--", "random": ":"}


def curves_figure(curves: pd.DataFrame, fidelity: pd.DataFrame, metric: str, path: Path) -> str:
    auc = {(r.method, r.order): r.auc for r in fidelity.itertuples()}
    fig, ax = axes(7, 4.2)
    for i, (method, group) in enumerate(curves.groupby("method", sort=False)):
        for order, part in group.groupby("order", sort=False):
            label = f"{method}, {order} (AUC {auc[(method, order)]:.3f})"
            ax.plot(
                100 * part["fraction_removed"],
                part["metric"],
                ORDER_STYLE[order],
                color=OKABE_ITO[i],
                marker=".",
                label=label,
            )
    ax.set(
        title="Attribution curves: concepts removed cumulatively",
        xlabel="concepts removed (% of all concepts)",
        ylabel=f"{metric} (mean over videos)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def section(context: Context) -> str:
    inputs = context.inputs
    fidelity = inputs.table("fidelity")
    figure = curves_figure(
        inputs.table("curves"),
        fidelity,
        context.run_settings["masking"]["metric"],
        context.out / "figures" / "attribution_curves.png",
    )
    return f"""
<h2>Fidelity</h2>
<p class="note">Concepts removed cumulatively, most important first (positive: a faithful
ranking drops fast, lower area is better), least important first (negative: higher is
better), and in random orders.</p>
<img src="{figure}" alt="attribution curves">
{table(fidelity)}
{table(inputs.table("checks"))}
"""
