"""Report page of the straightening and detector stages: curvature with depth for every
model (trained and random weights, natural videos), and how well trajectory geometry
tells generated videos from natural ones, per layer, with ROC curves."""

from __future__ import annotations

from itertools import cycle
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from videoconcepts.report.page import (
    OKABE_ITO,
    Analysis,
    Context,
    Inputs,
    analysis_folder,
    axes,
    save,
    table,
)
from videoconcepts.stores.straightening import PIXELS

STYLES = {"trained": "-", "random": ":"}


def per_layer(context: Context) -> pd.DataFrame:
    """Mean curvature, shuffled curvature and distance of the natural (or unlabelled)
    videos per (model, weights, layer), with the standard error over videos; empty when
    no model ran the stage."""
    rows = []
    for name in context.inputs.models:
        inputs = context.inputs.of_model(name)
        if "straightening" not in inputs:
            continue
        videos = inputs.table("straightening")
        videos = videos[videos["label"].fillna("") != "generated"]
        stats = videos.groupby(["weights", "layer"]).agg(
            curvature=("curvature", "mean"),
            curvature_se=("curvature", "sem"),
            shuffled=("shuffled_curvature", "mean"),
            distance=("distance", "mean"),
            videos=("video", "nunique"),
        )
        stats = stats.reset_index()
        depth = stats.loc[stats["weights"] == "trained", "layer"].nunique()
        stats["depth"] = [
            0.0 if layer == PIXELS else (layer + 1) / depth for layer in stats["layer"]
        ]
        rows.append(stats.assign(model=name))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def curve_figure(stats: pd.DataFrame, path: Path) -> str:
    fig, ax = axes(9.5, 4)
    for (name, model), colour in zip(
        stats.groupby("model", sort=False), cycle(OKABE_ITO), strict=False
    ):
        pixels = model[model["weights"] == "pixels"]
        for weights, style in STYLES.items():
            rows = pd.concat([pixels, model[model["weights"] == weights]])
            if len(rows) == len(pixels):
                continue
            ax.errorbar(
                rows["depth"],
                rows["curvature"],
                yerr=rows["curvature_se"].fillna(0),
                color=colour,
                linestyle=style,
                marker="o" if weights == "trained" else "s",
                capsize=3,
                label=f"{name}" + (", random weights" if weights == "random" else ""),
            )
        trained = pd.concat([pixels, model[model["weights"] == "trained"]])
        ax.plot(
            trained["depth"],
            trained["shuffled"],
            color=colour,
            linestyle="--",
            label=f"{name}, time shuffled",
        )
    ax.set(
        title="Straightening: trajectory curvature with depth (natural videos)",
        xlabel="relative depth (0 = pixels, layer / layers)",
        ylabel="mean curvature (degrees)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(fig, path)


def detector_tables(context: Context) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model's cross-validation folds and out-of-fold scores (layers as text:
    ``all`` is every layer side by side); empty when no model ran the detector."""
    folds, scores = [], []
    for name in context.inputs.models:
        inputs = context.inputs.of_model(name)
        if "detector_cv" not in inputs:
            continue
        folds.append(pd.read_csv(inputs.one("detector_cv"), sep="\t", dtype={"layer": str}))
        found = pd.read_csv(inputs.one("detector_scores"), sep="\t", dtype={"layer": str})
        scores.append(found.assign(model=name))
    if not folds:
        return pd.DataFrame(), pd.DataFrame()
    return pd.concat(folds, ignore_index=True), pd.concat(scores, ignore_index=True)


def fitted_layers(folds: pd.DataFrame) -> dict[str, tuple[str, str, str]]:
    """Each model's fitted detector: (weights, layer, classifier), the configuration its
    shuffled-label null was run on."""
    null = folds[folds["labels"] == "shuffled"]
    return {
        model: (rows["weights"].iloc[0], rows["layer"].iloc[0], rows["classifier"].iloc[0])
        for model, rows in null.groupby("model", sort=False)
    }


def configuration(
    frame: pd.DataFrame, model: str, weights: str, layer: str, classifier: str
) -> pd.DataFrame:
    """The rows of one model's detector on one trajectory with one classifier."""
    return frame[
        (frame["model"] == model)
        & (frame["weights"] == weights)
        & (frame["layer"] == layer)
        & (frame["classifier"] == classifier)
    ]


def layer_name(layer: str) -> str:
    return "pixels" if layer == str(PIXELS) else f"layer {layer}"


def layer_order(layers: pd.Series) -> list[str]:
    """Pixels, then the layers by depth, then ``all``."""
    numbers = sorted({int(layer) for layer in layers if layer != "all"})
    return [str(n) for n in numbers] + (["all"] if (layers == "all").any() else [])


def auroc_figure(folds: pd.DataFrame, path: Path) -> str:
    models = list(dict.fromkeys(folds["model"]))
    fig, axs = plt.subplots(
        1, len(models), figsize=(4.5 * len(models), 3.8), squeeze=False, layout="constrained"
    )
    true = folds[folds["labels"] == "true"]
    null = folds[folds["labels"] == "shuffled"]
    for ax, model in zip(axs[0], models, strict=True):
        rows = true[true["model"] == model]
        order = layer_order(rows["layer"])
        names = ["pixels" if layer == str(PIXELS) else layer for layer in order]
        for (classifier, weights), colour in zip(
            [(c, w) for c in ("mlp", "logistic") for w in ("trained", "random")],
            OKABE_ITO,
            strict=False,
        ):
            chosen = rows[
                (rows["classifier"] == classifier) & rows["weights"].isin([weights, "pixels"])
            ]
            stats = chosen.groupby("layer")["auroc"].agg(["mean", "sem"]).reindex(order)
            ax.errorbar(
                np.arange(len(order)),
                stats["mean"],
                yerr=stats["sem"].fillna(0),
                color=colour,
                linestyle=STYLES[weights],
                marker="o",
                capsize=3,
                label=f"{classifier}, {weights} weights",
            )
        ax.axhline(0.5, color="grey", linewidth=1, label="chance")
        shuffled = null[null["model"] == model]["auroc"].mean()
        if np.isfinite(shuffled):
            ax.axhline(
                shuffled, color="black", linestyle="--", linewidth=1, label="labels shuffled"
            )
        ax.set_xticks(np.arange(len(order)), names)
        ax.set(title=model, xlabel="layer (pixels, blocks, all side by side)", ylabel="AUROC")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axs[0][0].legend(fontsize=7)
    fig.suptitle("Detecting generated video: cross-validated AUROC per layer (± s.e. over folds)")
    return save(fig, path)


def roc_figure(scores: pd.DataFrame, fitted: dict, path: Path) -> str:
    """ROC curves of the out-of-fold scores: each model's fitted configuration, the same
    layer with random weights, and pixels."""
    fig, ax = axes(5.5, 4.5)
    for (model, (weights, layer, classifier)), colour in zip(
        fitted.items(), cycle(OKABE_ITO), strict=False
    ):
        shown = [(weights, layer, "-")]
        if weights == "trained":
            shown.append(("random", layer, ":"))
        for w, lay, style in shown:
            rows = configuration(scores, model, w, lay, classifier)
            if rows.empty:
                continue
            truth = rows["label"] == "generated"
            fpr, tpr, _ = roc_curve(truth, rows["score"])
            auc = roc_auc_score(truth, rows["score"])
            ax.plot(
                fpr,
                tpr,
                color=colour,
                linestyle=style,
                label=f"{model}, {layer_name(lay)} {w} (AUROC {auc:.2f})",
            )
    pixels = scores[(scores["weights"] == "pixels")]
    if not pixels.empty:
        first = pixels[pixels["model"] == pixels["model"].iloc[0]]
        first = first[first["classifier"] == "mlp"]
        truth = first["label"] == "generated"
        fpr, tpr, _ = roc_curve(truth, first["score"])
        auc = roc_auc_score(truth, first["score"])
        name = first["model"].iloc[0]
        ax.plot(fpr, tpr, color="grey", linestyle="-.", label=f"{name}, pixels (AUROC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="black", linewidth=0.8, linestyle="--", label="chance")
    ax.set(
        title="Fitted detectors: out-of-fold ROC",
        xlabel="false positive rate (natural called generated)",
        ylabel="true positive rate (generated caught)",
    )
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)


def summary(folds: pd.DataFrame, scores: pd.DataFrame, defects: pd.Series | None) -> pd.DataFrame:
    """Per model: the fitted configuration's AUROC against pixels, the same layer with
    random weights and shuffled labels (means ± s.e. over folds), and per defect."""
    true = folds[folds["labels"] == "true"]

    def auroc(model: str, weights: str, layer: str, classifier: str) -> str:
        rows = configuration(true, model, weights, layer, classifier)["auroc"]
        return f"{rows.mean():.2f} ± {rows.sem():.2f}" if len(rows) else ""

    rows = []
    for model, (weights, layer, classifier) in fitted_layers(folds).items():
        null = folds[(folds["model"] == model) & (folds["labels"] == "shuffled")]["auroc"]
        nested = folds[(folds["model"] == model) & (folds["labels"] == "selected")]
        row = {
            "model": model,
            "detector": f"{classifier}, {layer_name(layer)}",
            "AUROC": auroc(model, weights, layer, classifier),
            "layer chosen in each fold (nested)": (
                f"{nested['auroc'].mean():.2f} ± {nested['auroc'].sem():.2f} "
                f"(layers {', '.join(nested['layer'])})"
                if len(nested)
                else "none: one layer, or detector.layer set"
            ),
            "random weights, same layer": auroc(model, "random", layer, classifier),
            "pixels": auroc(model, "pixels", str(PIXELS), classifier),
            "labels shuffled": f"{null.mean():.2f} ± {null.sem():.2f}",
        }
        if defects is not None:
            mine = configuration(scores, model, weights, layer, classifier)
            kind = mine["video"].map(defects).fillna("")
            natural = mine[mine["label"] == "natural"]["score"]
            for defect in sorted(set(kind) - {""}):
                caught = mine[kind == defect]["score"]
                truth = np.r_[np.zeros(len(natural)), np.ones(len(caught))]
                row[f"AUROC {defect}"] = roc_auc_score(truth, np.r_[natural, caught])
        rows.append(row)
    return pd.DataFrame(rows)


def defects_of(inputs: Inputs) -> pd.Series | None:
    """Video id -> defect from the detection sheet, when it has that column."""
    if "detection" not in inputs:
        return None
    sheet = pd.read_csv(inputs.one("detection"), sep="\t", dtype=str, keep_default_na=False)
    if "defect" not in sheet or "id" not in sheet:
        return None
    return sheet.set_index("id")["defect"]


def detector_section(context: Context) -> str:
    folds, scores = detector_tables(context)
    if folds.empty:
        return ""
    figures = context.out / "figures"
    aurocs = auroc_figure(folds, figures / "detector_auroc.png")
    roc = roc_figure(scores, fitted_layers(folds), figures / "detector_roc.png")
    return f"""
<h2>Detecting generated video from trajectory geometry</h2>
<p class="note">ReStraV (paper 001): each video's trajectory at one layer reduced to 21
numbers (its first 7 step distances and 6 turning angles, and the mean, min, max and
variance of both), classified natural or generated by an MLP (21-64-32-1) and by
logistic regression, stratified k-fold cross-validated with each group of videos (a
scene and its manipulated variant) kept in one fold: a twin in the training folds with
the other label otherwise pulls the held-out video's score the wrong way. Solid lines:
the trained model; dotted: the same architecture with random weights; the leftmost point
is pixel space; <code>all</code> is every layer side by side. The dashed black line is
the fitted detector's configuration with the labels shuffled, the null. The fitted
layer is the best by the same folds, so its own AUROC is optimistic (the best of several
noisy estimates); the nested column is the honest figure for choosing a layer this way:
each training part chooses on folds of its own, and the layer it chose is scored on the
held-out part (the layers chosen, fold by fold, show how stable the choice is).</p>
<img src="{aurocs}" alt="AUROC per layer, every model">
<img src="{roc}" alt="ROC curves of the fitted detectors">
{table(summary(folds, scores, defects_of(context.inputs)), floats="{:.2f}")}
"""


def section(context: Context) -> str:
    stats = per_layer(context)
    if stats.empty:
        return ""
    figure = curve_figure(stats, context.out / "figures" / "straightening.png")
    shown = stats.assign(
        layer=stats["layer"].map(lambda layer: "pixels" if layer == PIXELS else layer)
    )
    columns = ["model", "weights", "layer", "curvature", "curvature_se", "shuffled", "distance"]
    shown = shown[[*columns, "videos"]].rename(
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
its dashed line; the dotted lines are the same layers with random weights, what the
architecture alone does (models of one architecture share that line). This greedy
estimate is biased upward by noise in the representation, so read curvatures against
the null, random weights and pixels, not as absolute values. Natural (and unlabelled)
videos only.</p>
<img src="{figure}" alt="curvature with depth, every model">
{table(shown)}
{detector_section(context)}
"""


def card(context: Context) -> str:
    stats = per_layer(context)
    lines = []
    for name, model in stats.groupby("model", sort=False):
        trained = model[model["weights"] != "random"]
        pixels, last = trained.iloc[0], trained.iloc[-1]
        lines.append(
            f"<li>{name}: pixels {pixels['curvature']:.1f}&deg;, last layer "
            f"{last['curvature']:.1f}&deg; (time shuffled {last['shuffled']:.1f}&deg;)</li>"
        )
    folds, scores = detector_tables(context)
    if not folds.empty:
        for row in summary(folds, scores, None).to_dict("records"):
            lines.append(
                f"<li>{row['model']}: detector ({row['detector']}) AUROC {row['AUROC']} "
                f"(nested: {row['layer chosen in each fold (nested)']}), pixels "
                f"{row['pixels']}, random weights {row['random weights, same layer']}</li>"
            )
    src = f"{analysis_folder(ANALYSIS.name)}/figures/straightening.png"
    return f"<ul class='note'>{''.join(lines)}</ul><img src='{src}' alt='curvature with depth'>"


ANALYSIS = Analysis("straightening", "Straightening and detection", section, card)
