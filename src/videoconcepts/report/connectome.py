"""Report page of the connectome stage: Visual Concept Connectomes (paper 002, ch. 5).
Per model, each class's layered concept graph with an exemplar segment at every node
and its ITCAV edges; the two validations (concept suppression against random
directions, Figure 5.3 b-c; average path strength against the logit sum, 5.3 d); and
the graph statistics per layer (Figure 5.5)."""

from __future__ import annotations

import html
from itertools import cycle
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from videoconcepts.report.cris import highlight, resize_frames, save_webp
from videoconcepts.report.page import (
    CLIP_CACHE,
    OKABE_ITO,
    Analysis,
    Context,
    analysis_folder,
    panels,
    save,
    table,
)
from videoconcepts.stores.connectome import CLASS_NODE, TABLES, open_connectome
from videoconcepts.stores.decode import Clips

# Classes drawn per model (in the nodes table's order): a graph each.
MAX_GRAPHS = 12
THUMB_HEIGHT = 96  # pixels of an exemplar thumbnail before matplotlib scales it
# suppression directions: (legend label, colour, line style)
DIRECTIONS = {
    "concept": ("concept directions", OKABE_ITO[1], "-"),
    "random": ("random directions", "#555555", "--"),
    "mean": ("the layer's mean token", OKABE_ITO[0], ":"),
}
ABOVE, BELOW, DROPPED = "#222222", OKABE_ITO[1], "#BBBBBB"
# Graph layout, in data units: a node's thumbnail is THUMB wide on a grid of 1 per node
# and ROW per layer, its label below it.
THUMB, LABEL, ROW = 0.8, 0.42, 2.0


def tables(context: Context) -> dict[str, pd.DataFrame]:
    """Every model's tables of the stage, concatenated; empty when none ran it."""
    return context.inputs.stage_tables("connectome", TABLES)


def kept(edges: pd.DataFrame) -> pd.Series:
    """The t-test's verdict as booleans (the TSV may hold text or booleans)."""
    return edges["kept"].astype(str).str.lower().eq("true")


# --- exemplar thumbnails -----------------------------------------------------------------
class Exemplars:
    """Thumbnails of segments of one connectome store: a frame of the segment's clip
    with the segment kept and the rest dimmed (outlined in yellow, as on the CRIS pages)."""

    def __init__(self, path: str):
        self.store = open_connectome(path)
        attrs = self.store.attrs
        self.clips = Clips(attrs["video_ids"], attrs["decode_stores"], CLIP_CACHE)
        self.video = self.store["segment_video"][...]
        self.layer = self.store["segment_layer"][...]
        self.number = self.store["segment_number"][...]
        self._labels: dict[int, np.ndarray] = {}

    def labels(self, layer: int) -> np.ndarray:
        if layer not in self._labels:
            self._labels[layer] = self.store[f"labels_{layer}"][...]
        return self._labels[layer]

    def mask(self, row: int) -> tuple[int, np.ndarray]:
        """The segment's video and token mask (T', H', W')."""
        video = int(self.video[row])
        return video, self.labels(int(self.layer[row]))[video] == self.number[row]

    def image(self, row: int, height: int = THUMB_HEIGHT) -> np.ndarray:
        """(height, W, 3) uint8: the middle frame of the time steps the segment covers
        (the clip's middle frame when it covers them all)."""
        video, mask = self.mask(row)
        frames = self.clips.frames(video)
        steps = np.flatnonzero(mask.any(axis=(1, 2)))
        step = int(steps[len(steps) // 2]) if len(steps) else mask.shape[0] // 2
        per_step = max(1, frames.shape[0] // mask.shape[0])
        frame = min(step * per_step + per_step // 2, frames.shape[0] - 1)
        shown = highlight(frames[frame : frame + 1], mask[step : step + 1])
        return resize_frames(shown, height)[0]

    def clip(self, row: int, height: int) -> np.ndarray:
        """(T, height, W, 3) uint8: the segment's whole clip, highlighted."""
        video, mask = self.mask(row)
        return resize_frames(highlight(self.clips.frames(video), mask), height)


# --- the layered graphs ------------------------------------------------------------------
def layout(nodes: pd.DataFrame, edges: pd.DataFrame, layers: list[int]) -> dict[str, tuple]:
    """(x, y) of every node and the class node: a row per layer (the lowest at the
    bottom, the class node on top), each row centred and ordered by the mean position
    of the nodes above it that its kept edges reach (weighted), to spare crossings."""
    top = len(layers)
    where: dict[str, tuple[float, float]] = {CLASS_NODE: (0.0, top * ROW)}
    strong = edges[kept(edges)]
    for row in reversed(range(len(layers))):
        mine = nodes[nodes["layer"] == layers[row]]
        keys = []
        for node, concept in zip(mine["node"], mine["concept"], strict=True):
            out = strong[(strong["source"] == node) & strong["target"].isin(list(where))]
            if len(out) and out["weight"].sum() > 0:
                xs = np.array([where[t][0] for t in out["target"]])
                keys.append((0, float(np.average(xs, weights=out["weight"])), concept, node))
            else:
                keys.append((1, 0.0, concept, node))
        ordered = [key[-1] for key in sorted(keys)]
        for i, node in enumerate(ordered):
            where[node] = (i - (len(ordered) - 1) / 2, row * ROW)
    return where


def graph_figure(
    model: str,
    name: str,
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    layers: list[int],
    thumbs: dict[str, np.ndarray],
    path: Path,
) -> str:
    """One class's connectome: exemplar thumbnails in rows by layer, the class node on
    top, edges as lines whose width grows with the ITCAV weight."""
    where = layout(nodes, edges, layers)
    widest = max([1, *nodes.groupby("layer").size()])
    span_x, span_y = widest - 1 + 2 * 0.6, len(layers) * ROW + 0.6 + THUMB / 2 + LABEL + 0.2
    unit = 0.85  # inches per data unit
    fig = Figure(figsize=(max(5.0, span_x * unit + 1.5), span_y * unit + 1.0), layout="constrained")
    ax = fig.add_subplot()
    is_kept = kept(edges)

    def ends(source: str, target: str) -> tuple[list[float], list[float]]:
        (x0, y0), (x1, y1) = where[source], where[target]
        y1 -= 0.3 if target == CLASS_NODE else THUMB / 2 + LABEL
        return [x0, x1], [y0 + THUMB / 2, y1]

    shown = edges[edges["source"].isin(list(where)) & edges["target"].isin(list(where))]
    for edge in shown[~is_kept.loc[shown.index]].itertuples():
        ax.plot(*ends(edge.source, edge.target), color=DROPPED, linewidth=0.5, alpha=0.5, zorder=1)
    for edge in shown[is_kept.loc[shown.index]].sort_values("weight").itertuples():
        colour = ABOVE if edge.weight >= edge.null_weight else BELOW
        ax.plot(
            *ends(edge.source, edge.target),
            color=colour,
            linewidth=0.5 + 6 * edge.weight,
            solid_capstyle="round",
            zorder=2,
        )
    for node in nodes.itertuples():
        x, y = where[node.node]
        image = thumbs.get(node.node)
        if image is None:
            image = np.full((2, 2, 3), 220, np.uint8)
        half_h = THUMB / 2 * image.shape[0] / image.shape[1]
        ax.imshow(
            image,
            extent=(x - THUMB / 2, x + THUMB / 2, y - half_h, y + half_h),
            interpolation="antialiased",
            zorder=3,
        )
        ax.text(
            x,
            y - THUMB / 2 - 0.04,
            f"{node.node}\n{int(node.segments)} seg.",
            ha="center",
            va="top",
            fontsize=7,
            linespacing=1.1,
            zorder=4,
        )
    x, y = where[CLASS_NODE]
    ax.text(
        x,
        y,
        name,
        ha="center",
        va="center",
        fontsize=9,
        zorder=4,
        bbox={"boxstyle": "round,pad=0.4", "facecolor": "#F0F0F0", "edgecolor": "#333333"},
    )
    ax.set_aspect("equal")
    ax.set_xlim(-(widest - 1) / 2 - 0.6, (widest - 1) / 2 + 0.6)
    ax.set_ylim(-THUMB / 2 - LABEL - 0.2, len(layers) * ROW + 0.6)
    ax.set_yticks(
        [i * ROW for i in range(len(layers) + 1)],
        [f"layer {layer}" for layer in layers] + ["class"],
    )
    ax.set_xticks([])
    ax.set_ylabel("model layer (block), lowest at the bottom")
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    n_kept = int(is_kept.sum())
    ax.set_title(
        f"{model}: {name}\n{len(nodes)} concepts, {n_kept} of {len(edges)} edges kept "
        "(line width: ITCAV weight)",
        fontsize=10,
    )
    handles = [
        Line2D([], [], color=ABOVE, linewidth=3, label="kept (above random)"),
        Line2D([], [], color=BELOW, linewidth=3, label="kept (below random)"),
        Line2D([], [], color=DROPPED, linewidth=0.8, label="not kept"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7)
    return save(fig, path)


def graph_name(model: str, index: int) -> str:
    return f"connectome-{model}-class{index:03d}.png"


def model_graphs(context: Context, model: str, found: dict[str, pd.DataFrame]) -> str:
    """The model's connectome figures, a class each (the first MAX_GRAPHS classes)."""
    inputs = context.inputs.of_model(model)
    nodes = found["nodes"][found["nodes"]["model"] == model]
    edges = found["edges"][found["edges"]["model"] == model]
    classes = list(dict.fromkeys(nodes["class"]))
    exemplars = Exemplars(inputs.one("connectome_store")) if "connectome_store" in inputs else None
    layers = sorted(int(layer) for layer in nodes["layer"].unique())
    images = []
    for i, name in enumerate(classes[:MAX_GRAPHS]):
        mine = nodes[nodes["class"] == name]
        thumbs = (
            {row.node: exemplars.image(int(row.exemplar)) for row in mine.itertuples()}
            if exemplars is not None
            else {}
        )
        src = graph_figure(
            model,
            str(name),
            mine,
            edges[edges["class"] == name],
            layers,
            thumbs,
            context.out / "figures" / graph_name(model, i),
        )
        alt = html.escape(f"connectome of {model}, {name}")
        images.append(f'<img src="{src}" alt="{alt}" loading="lazy">')
        if exemplars is not None:
            images.append(node_clips(context, exemplars, mine, graph_name(model, i)))
    more = (
        f"<p class='note'>The first {MAX_GRAPHS} of {len(classes)} classes; every node and "
        "edge is in the stage's tables and GraphML files.</p>"
        if len(classes) > MAX_GRAPHS
        else ""
    )
    return (
        f"<h3>{html.escape(model)}</h3>{more}<div class='figs'>{''.join(images)}</div>"
        if images
        else ""
    )


def node_clips(context: Context, exemplars: Exemplars, nodes: pd.DataFrame, graph: str) -> str:
    """Each node's exemplar as a small looping clip (the segment over its whole clip),
    top layer first, beside its class's graph."""
    (context.out / "clips").mkdir(parents=True, exist_ok=True)
    cells = []
    for row in nodes.sort_values(["layer", "concept"], ascending=[False, True]).itertuples():
        path = context.out / "clips" / f"{Path(graph).stem}-{row.node}.webp"
        save_webp(exemplars.clip(int(row.exemplar), THUMB_HEIGHT), context.settings, path)
        caption = html.escape(f"{row.node}, {row.segments} seg.")
        cells.append(
            f"<figure><img loading='lazy' src='clips/{path.name}' alt='{caption}'>"
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return f"<div class='figs'>{''.join(cells)}</div>"


# --- validation and statistics -----------------------------------------------------------
def measure(rows: pd.DataFrame) -> str:
    """Accuracy where the model has classes, the target score otherwise."""
    return "accuracy" if rows["accuracy"].notna().any() else "score"


def check(validation: pd.DataFrame, model: str, name: str) -> pd.Series | None:
    rows = validation[(validation["model"] == model) & (validation["check"] == name)]
    return rows.iloc[0] if len(rows) else None


def number(value: float, spec: str = ".2f") -> str:
    return "n/a" if pd.isna(value) else format(value, spec)


def suppression_figure(fidelity: pd.DataFrame, validation: pd.DataFrame, path: Path) -> str:
    """Accuracy (or score) against eps for concept and random directions taken off a
    layer's tokens, mean over classes, layers and repeats (± s.e. shaded)."""
    models = list(dict.fromkeys(fidelity["model"]))
    fig, axs = panels(len(models))
    for ax, model in zip(axs, models, strict=True):
        rows = fidelity[fidelity["model"] == model]
        value = measure(rows)
        base = rows[rows["direction"] == "none"][value]
        for direction, (label, colour, style) in DIRECTIONS.items():
            part = rows[rows["direction"] == direction]
            if part.empty:
                continue
            stats = part.groupby("eps_factor")[value].agg(["mean", "sem"])
            x = np.r_[0.0, stats.index.to_numpy(float)]
            y = np.r_[base.mean(), stats["mean"]]
            se = np.r_[base.sem() if len(base) > 1 else 0.0, stats["sem"].fillna(0)]
            ax.plot(
                x,
                y,
                marker="o",
                color=colour,
                linestyle=style,
                label=label,
            )
            ax.fill_between(
                x, y - np.nan_to_num(se), y + np.nan_to_num(se), color=colour, alpha=0.15
            )
        title = model
        for control, suffix in (("random", ""), ("mean token", "_mean_token")):
            gap = check(validation, model, f"suppression_{value}_area_gap{suffix}")
            if gap is not None:
                title += (
                    f"\narea gap vs {control} {number(gap['value'], '.3f')} "
                    f"(p {number(gap['p_value'], '.2g')})"
                )
        ax.set(
            title=title,
            xlabel="eps (x the layer's mean token norm)",
            ylabel="accuracy" if value == "accuracy" else "target score (metric)",
        )
        ax.grid(alpha=0.3)
    fig.legend(*axs[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8)
    fig.suptitle("Concept suppression: a direction taken off every token of a layer")
    return save(fig, path)


def aps_figure(nodes: pd.DataFrame, validation: pd.DataFrame, path: Path) -> str:
    """Each concept node's average path strength to its class node against the summed
    target score of its segments, coloured by layer."""
    models = list(dict.fromkeys(nodes["model"]))
    fig, axs = panels(len(models))
    layers = sorted(nodes["layer"].unique())
    colours = dict(zip(layers, cycle(OKABE_ITO), strict=False))
    for ax, model in zip(axs, models, strict=True):
        rows = nodes[nodes["model"] == model]
        for layer in layers:
            part = rows[rows["layer"] == layer]
            ax.scatter(
                part["aps"],
                part["logit_sum"],
                s=22,
                color=colours[layer],
                edgecolor="white",
                linewidth=0.5,
                label=f"layer {layer}",
            )
        title = model
        for name, label in (("pearson", "Pearson r"), ("within_class", "within classes r")):
            r = check(validation, model, f"aps_logit_sum_{name}")
            if r is not None:
                title += (
                    f"\n{label} {number(r['value'])} (p {number(r['p_value'], '.2g')}, "
                    f"n {int(r['n'])})"
                )
        ax.set(
            title=title,
            xlabel="average path strength to the class (eq. 5.8)",
            ylabel="logit sum of its segments (eq. 5.9)",
        )
        ax.grid(alpha=0.3)
    fig.legend(
        *axs[0].get_legend_handles_labels(),
        loc="outside lower center",
        ncol=min(len(layers), 6),
        fontsize=8,
    )
    fig.suptitle("Do strongly connected concepts carry the class? APS against logit sum")
    return save(fig, path)


def statistics_figure(layers: pd.DataFrame, path: Path) -> str:
    """Nodes, edge density and mean kept weight per layer, mean over classes (± s.e.)."""
    fig, axs = panels(3, 3.8, 3.2)
    shown = [
        ("nodes", "concept nodes per class"),
        ("edge_density", "edges kept (share of possible)"),
        ("mean_weight", "mean weight of kept edges"),
    ]
    for (model, rows), colour in zip(
        layers.groupby("model", sort=False), cycle(OKABE_ITO), strict=False
    ):
        stats = rows.groupby("layer")[[c for c, _ in shown]].agg(["mean", "sem"])
        for ax, (column, _) in zip(axs, shown, strict=True):
            ax.errorbar(
                stats.index,
                stats[(column, "mean")],
                yerr=stats[(column, "sem")].fillna(0),
                color=colour,
                marker="o",
                capsize=3,
                label=model,
            )
    for ax, (column, label) in zip(axs, shown, strict=True):
        ax.set(title=label, xlabel="layer (block)", ylabel=label)
        ax.set_xticks(sorted(layers["layer"].unique()))
        ax.grid(alpha=0.3)
        if column != "nodes":
            ax.set_ylim(0, 1.02)
    fig.legend(*axs[0].get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle(
        "Connectome statistics per layer (mean over classes, ± s.e.; the top layer's edges: "
        "to the class)"
    )
    return save(fig, path)


def section(context: Context) -> str:
    found = tables(context)
    if "nodes" not in found:
        return ""
    out = context.out / "figures"
    graphs = "".join(
        model_graphs(context, model, found) for model in dict.fromkeys(found["nodes"]["model"])
    )
    figures = {}
    validation = found.get("validation", pd.DataFrame(columns=["model", "check"]))
    if len(found.get("fidelity", ())):
        figures["suppression"] = suppression_figure(
            found["fidelity"], validation, out / "connectome_suppression.png"
        )
    if len(found["nodes"]):
        figures["aps"] = aps_figure(found["nodes"], validation, out / "connectome_aps.png")
    if len(found.get("layers", ())):
        figures["statistics"] = statistics_figure(found["layers"], out / "connectome_layers.png")
    alts = {
        "suppression": "accuracy against eps, concept and random directions, per model",
        "aps": "average path strength against logit sum, per model",
    }
    images = "".join(
        f'<img src="{figures[name]}" alt="{alt}">' for name, alt in alts.items() if name in figures
    )
    statistics = (
        f'<h3>Graph statistics per layer</h3><img src="{figures["statistics"]}" '
        f'alt="connectome statistics per layer">{table(found["layers"], "connectome-layers")}'
        if "statistics" in figures
        else ""
    )
    return f"""
<h2>Visual concept connectomes</h2>
<p class="note">A connectome is a class's concepts at several layers, joined by how
much each lower concept drives each upper one. Every video is cut into segments top-down
in feature space: the top selected layer's token volume (time x height x width) by
k-means, each segment split again a layer lower by masked SLIC. Each segment is shown to
the model alone, the rest of the clip blanked. Per class, a layer's concepts are k-means
clusters of its segments' pooled features, those too small for eq. 5.5 pruned. An edge
from a lower concept to an upper one weighs the share of the upper concept's segments
whose gradient towards the upper centroid points along the lower concept's CAV (ITCAV);
the top layer's concepts join the class by TCAV. An edge is kept when a paired t-test
over random sets tells its weight from a random concept's. Each node shows its exemplar,
the segment nearest the concept's centroid, on the middle frame of the time it spans,
the rest dimmed and the segment outlined in yellow.</p>
{graphs}
<h3>Validation</h3>
<p class="note">Concept suppression: a concept's centroid direction (or a
random one) taken off every token of its layer by eps times the layer's mean token norm,
on the class's videos; eps 0 is the unchanged model. The area gap is how much more area
under the curve a random direction leaves than a concept's (&gt; 0: the concepts matter
more; p: Wilcoxon signed-rank over class, layer and repeat). Centroids of features that
share a large common part point along it, so the layer's mean token is taken off too
(dotted): the <code>_mean_token</code> gap says whether a concept's direction does more
than that common part. Below it, every concept's
average path strength to its class against the summed target score of its segments
shown alone: a connectome that tracks the model puts high-scoring concepts on strong
paths. Pooled over classes (as the paper plots it) the correlation also compares
classes, whose scores and path strengths differ as a whole; the within-classes r
subtracts each class's mean from both first.</p>
<div class="figs">{images}</div>
{table(validation, "connectome-validation") if "validation" in found else ""}
{statistics}
"""


def card(context: Context) -> str:
    found = tables(context)
    parts = []
    for model, nodes in found["nodes"].groupby("model", sort=False):
        edges = found.get("edges", pd.DataFrame(columns=["model", "kept"]))
        edges = edges[edges["model"] == model]
        text = (
            f"{html.escape(str(model))}: {len(nodes)} concepts in {nodes['class'].nunique()} "
            f"classes, {int(kept(edges).sum())} of {len(edges)} edges kept"
        )
        gaps = found.get("validation", pd.DataFrame(columns=["model", "check"]))
        gaps = gaps[(gaps["model"] == model) & gaps["check"].str.endswith("_area_gap")]
        if len(gaps):
            gap = gaps.iloc[0]
            text += (
                f", suppression area gap {number(gap['value'], '.3f')} "
                f"(p {number(gap['p_value'], '.2g')})"
            )
        parts.append(text)
    src = f"{analysis_folder(ANALYSIS.name)}/figures/connectome_suppression.png"
    image = (
        f"<img src='{src}' alt='concept suppression against random directions'>"
        if len(found.get("fidelity", ()))
        else ""
    )
    shown = "; ".join(parts) or "no concepts survived the pruning"
    gap = " (area gap &gt; 0: concept directions hurt more than random ones)" if parts else ""
    return f"<p class='note'>{shown}{gap}.</p>{image}"


# its 18 graphs and their node clips make it the report's slowest page (5 of 15 s on the demo)
ANALYSIS = Analysis("connectome", "Concept connectomes", section, card, first=True)
