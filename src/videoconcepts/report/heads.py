"""Report section of the heads stage: head importance and the pruning curve."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from videoconcepts.report.page import OKABE_ITO, Context, axes, save, table


def heads_figure(heads: pd.DataFrame, path: Path) -> str:
    grid = heads.pivot(index="layer", columns="head", values="importance").sort_index()
    fig, ax = axes(1.2 + 0.6 * grid.shape[1], 1.2 + 0.45 * grid.shape[0])
    image = ax.imshow(grid.to_numpy(), cmap="cividis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set(title="Head importance (CRIS over heads)", xlabel="head", ylabel="layer")
    fig.colorbar(image, ax=ax, label="importance (metric drop)")
    return save(fig, path)


def pruning_figure(pruning: pd.DataFrame, path: Path) -> str:
    """Accuracy against FLOPs saved; the metric itself for models without classes."""
    fig, ax = axes(6, 3.8)
    has_accuracy = pruning["accuracy"].notna().all()
    for i, (order, part) in enumerate(pruning.groupby("order", sort=False)):
        label = "least important heads first" if order == "least_important" else f"{order} order"
        ax.plot(
            100 * part["attention_flops_saved"],
            100 * part["accuracy"] if has_accuracy else part["metric"],
            marker="o",
            color=OKABE_ITO[i],
            label=label,
        )
    ax.set(
        title=f"Head pruning ({pruning['evaluated_on'].iloc[0]})",
        xlabel="attention FLOPs saved (%)",
        ylabel="accuracy (%)" if has_accuracy else "metric (higher is better)",
    )
    if has_accuracy:
        ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def section(context: Context) -> str:
    pruning = context.inputs.table("pruning")
    figures = context.out / "figures"
    heads = heads_figure(context.inputs.table("heads"), figures / "head_importance.png")
    curve = pruning_figure(pruning, figures / "pruning_curve.png")
    return f"""
<h2>Heads</h2>
<div class="figs"><img src="{heads}" alt="head importance heat map">
<img src="{curve}" alt="pruning curve"></div>
<details><summary>pruning curve table</summary>{table(pruning)}</details>
"""
