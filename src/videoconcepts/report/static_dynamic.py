"""Report page of the static_dynamic stage: static and dynamic units of every model, per
layer (the paper's Figure 3.3), per unit class (Figure 3.4) and per head, against random
weights, and the unit-removal curves (Figure 3.13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from videoconcepts.methods.static_dynamic import CLASSES
from videoconcepts.report.page import (
    OKABE_ITO,
    Analysis,
    Context,
    analysis_folder,
    panels,
    save,
    table,
)

TABLES = ("layers", "units", "concepts", "versions", "removal")
FACTOR_COLOURS = {"static": OKABE_ITO[0], "dynamic": OKABE_ITO[1], "identical": "#999999"}
CLASS_COLOURS = dict(zip(CLASSES, [*OKABE_ITO[:3], "#BBBBBB"], strict=True))
ORDER_COLOURS = {"static": OKABE_ITO[0], "dynamic": OKABE_ITO[1], "random": "#555555"}


def tables(context: Context) -> dict[str, pd.DataFrame]:
    """Every model's tables of the stage, concatenated; empty when none ran it."""
    return context.inputs.stage_tables("static_dynamic", TABLES)


def layer_figure(layers: pd.DataFrame, path: Path) -> str:
    """N_static and N_dynamic per layer, trained (solid) and random weights (hatched)."""
    models = list(dict.fromkeys(layers["model"]))
    fig, axs = panels(len(models))
    for ax, model in zip(axs, models, strict=True):
        rows = layers[layers["model"] == model]
        layer_ids = sorted(rows["layer"].unique())
        x = np.arange(len(layer_ids))
        for j, (factor, weights) in enumerate(
            [(f, w) for w in ("trained", "random") for f in ("static", "dynamic")]
        ):
            part = rows[(rows["factor"] == factor) & (rows["weights"] == weights)]
            if part.empty:
                continue
            share = part.set_index("layer").reindex(layer_ids)
            ax.bar(
                x + (j - 1.5) * 0.2,
                100 * share["N_F"] / share["units"],
                width=0.2,
                color=FACTOR_COLOURS[factor],
                hatch="//" if weights == "random" else None,
                alpha=0.55 if weights == "random" else 1.0,
                edgecolor="white" if weights == "trained" else FACTOR_COLOURS[factor],
                label=f"{factor}, {weights} weights",
            )
        ax.set_xticks(x, [str(layer) for layer in layer_ids])
        ax.set(title=model, xlabel="layer", ylabel="units (% of the layer)")
        ax.grid(axis="y", alpha=0.3)
    fig.legend(*axs[0].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle("Layer-wise static and dynamic units (eq. 3.1: N_F as a share of the layer)")
    return save(fig, path)


def class_figure(units: pd.DataFrame, path: Path) -> str:
    """Unit classes (eq. 3.3) of the residual stream per layer, stacked, trained vs random."""
    stream = units[units["stream"] == "residual"]
    models = list(dict.fromkeys(stream["model"]))
    fig, axs = panels(len(models))
    for ax, model in zip(axs, models, strict=True):
        rows = stream[stream["model"] == model]
        labels, bottoms = [], None
        bars = [
            (w, layer) for w in ("trained", "random") for layer in sorted(rows["layer"].unique())
        ]
        bars = [
            (w, layer)
            for w, layer in bars
            if ((rows["weights"] == w) & (rows["layer"] == layer)).any()
        ]
        x = np.arange(len(bars)) + np.array([0.6 if w == "random" else 0 for w, _ in bars])
        shares = np.array(
            [
                rows[(rows["weights"] == w) & (rows["layer"] == layer)]
                .iloc[0][list(CLASSES)]
                .to_numpy(float)
                / rows[(rows["weights"] == w) & (rows["layer"] == layer)].iloc[0]["units"]
                for w, layer in bars
            ]
        )
        bottoms = np.zeros(len(bars))
        for k, name in enumerate(CLASSES):
            ax.bar(
                x,
                100 * shares[:, k],
                bottom=bottoms,
                color=CLASS_COLOURS[name],
                label=name,
                width=0.5,
            )
            bottoms += 100 * shares[:, k]
        labels = [f"{layer}\n{'rand.' if w == 'random' else ''}" for w, layer in bars]
        ax.set_xticks(x, labels, fontsize=8)
        ax.set(
            title=model, xlabel="layer (rand. = random weights)", ylabel="units (%)", ylim=(0, 100)
        )
    fig.legend(*axs[0].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle("Unit classes of the residual stream (eq. 3.3, lambda from the settings)")
    return save(fig, path)


def head_figure(units: pd.DataFrame, path: Path) -> str:
    """Each head's lean, S_dynamic - S_static of its pooled channels (trained weights)."""
    heads = units[(units["stream"] == "heads") & (units["weights"] == "trained")]
    models = list(dict.fromkeys(heads["model"]))
    fig, axs = panels(len(models), 3.6, 3.0)
    image = None
    for ax, model in zip(axs, models, strict=True):
        rows = heads[heads["model"] == model]
        grid = rows.pivot_table(
            index="layer", columns="head", values="S_dynamic"
        ) - rows.pivot_table(index="layer", columns="head", values="S_static")
        image = ax.imshow(grid.to_numpy(), cmap="PuOr_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(grid.shape[1]), [str(h) for h in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(layer) for layer in grid.index])
        ax.set(title=model, xlabel="head", ylabel="layer")
    fig.colorbar(image, ax=axs, label="S_dynamic - S_static")
    fig.suptitle("Heads: S_dynamic - S_static of each head's channels (> 0: leans to dynamics)")
    return save(fig, path)


def removal_figure(removal: pd.DataFrame, path: Path) -> str:
    """Accuracy (or target score) against the share of a layer's units removed."""
    groups = list(removal.groupby(["model", "layer"], sort=False))
    fig, axs = panels(len(groups))
    for ax, ((model, layer), rows) in zip(axs, groups, strict=True):
        value = "accuracy" if rows["accuracy"].notna().any() else "score"
        for order, part in rows.groupby("order", sort=False):
            stats = part.groupby("fraction")[value].agg(["mean", "min", "max"])
            ax.plot(
                100 * stats.index,
                stats["mean"],
                marker="o",
                color=ORDER_COLOURS[order],
                label=f"most {order} units" if order != "random" else "random units",
            )
            if order == "random":
                ax.fill_between(
                    100 * stats.index,
                    stats["min"],
                    stats["max"],
                    color=ORDER_COLOURS[order],
                    alpha=0.2,
                )
        ax.set(
            title=f"{model}, layer {layer}",
            xlabel="units removed (% of the layer)",
            ylabel="accuracy" if value == "accuracy" else "target score (metric)",
        )
        ax.grid(alpha=0.3)
    fig.legend(*axs[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle("Unit removal: channels of the residual stream zeroed (random: range over draws)")
    return save(fig, path)


def removal_auc(removal: pd.DataFrame) -> pd.DataFrame:
    """Area under each removal curve (mean over random draws), fractions 0 to the last."""
    value = np.where(removal["accuracy"].notna(), removal["accuracy"], removal["score"])
    rows = (
        removal.assign(value=value).groupby(["model", "layer", "order", "fraction"])["value"].mean()
    )
    auc = rows.groupby(["model", "layer", "order"]).apply(
        lambda r: (
            np.trapezoid(r.to_numpy(), r.index.get_level_values("fraction"))
            / max(r.index.get_level_values("fraction").max(), 1e-9)
        )
    )
    return auc.unstack("order").reset_index()


def section(context: Context) -> str:
    found = tables(context)
    if "layers" not in found:
        return ""
    out = context.out / "figures"
    figures = {
        "layers": layer_figure(found["layers"], out / "static_dynamic_layers.png"),
        "classes": class_figure(found["units"], out / "static_dynamic_classes.png"),
        "heads": head_figure(found["units"], out / "static_dynamic_heads.png"),
        "removal": removal_figure(found["removal"], out / "unit_removal.png"),
    }
    residual = found["units"][found["units"]["stream"] == "residual"]
    shown = residual[["model", "weights", "layer", "units", "S_static", "S_dynamic", *CLASSES]]
    auc = removal_auc(found["removal"]).rename(
        columns={
            "static": "AUC, static removed",
            "dynamic": "AUC, dynamic removed",
            "random": "AUC, random removed",
        }
    )
    concepts = found["concepts"]
    concept_counts = (
        concepts.groupby(["model", "class"]).size().unstack("class", fill_value=0).reset_index()
    )
    return f"""
<h2>Static and dynamic units</h2>
<p class="note">Each video is shown as itself, restyled (same motion, another look) and
with its frames shuffled two ways (same frames, no motion). A unit (a channel after
global average pooling) encodes appearance when it takes the same value on the two
shufflings of a video across videos (s_static, a correlation over pairs), and dynamics
when it keeps its value under restyling (s_dynamic). Per layer, eq. 3.1 turns the mean
correlations into counts of units; eq. 3.3 classes each unit as static, dynamic, joint
(both above lambda) or residual (neither). Random weights are the control. Limits: a
correlation is a lower bound on mutual information; shape is shared by both pairs, so
layout-encoding units come out joint; and a model that fails on restyled clips (see the
accuracy per version) shares nothing between a dynamic pair however it computes motion.</p>
<h3>Accuracy on each version</h3>
{table(found["versions"])}
<div class="figs"><img src="{figures["layers"]}" alt="layer-wise static and dynamic units">
<img src="{figures["classes"]}" alt="unit classes per layer">
<img src="{figures["heads"]}" alt="static or dynamic heads"></div>
{table(shown, "static-dynamic-units")}
<h3>Unit removal</h3>
<p class="note">The most static, the most dynamic (by s_dynamic - s_static) or random
channels of a layer's residual stream zeroed at every token, the clips unchanged. A
lower area under the curve means the removed units mattered more.</p>
<img src="{figures["removal"]}" alt="unit removal curves">
{table(auc)}
<h3>Concepts</h3>
<p class="note">A concept's response in a clip is its centroid's best cosine similarity
with any token's key; its s_static and s_dynamic are correlations of that response over
pairs, and each model page's concept table shows them beside the concept's importance.</p>
{table(concept_counts)}
"""


def card(context: Context) -> str:
    found = tables(context)
    residual = found["units"][
        (found["units"]["stream"] == "residual") & (found["units"]["weights"] == "trained")
    ]
    lines = []
    for model, rows in residual.groupby("model", sort=False):
        last = rows.iloc[-1]
        lines.append(
            f"<li>{model}: last layer {int(last['static'])} static, {int(last['dynamic'])} "
            f"dynamic, {int(last['joint'])} joint of {int(last['units'])} units</li>"
        )
    src = f"{analysis_folder(ANALYSIS.name)}/figures/static_dynamic_layers.png"
    return f"<ul class='note'>{''.join(lines)}</ul><img src='{src}' alt='static and dynamic units'>"


ANALYSIS = Analysis("static_dynamic", "Static & dynamic", section, card)
