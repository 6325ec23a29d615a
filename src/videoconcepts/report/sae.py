"""Report page of the sparse-autoencoder stages: the reconstruction / temporal-coherence
trade-off over lambda, the probe and ablation tables, and a gallery of top features as
clips with their activation overlaid."""

from __future__ import annotations

import html
from itertools import cycle
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from videoconcepts.report.cris import resize_frames, save_webp
from videoconcepts.report.page import (
    OKABE_ITO,
    Analysis,
    Context,
    analysis_folder,
    save,
    table,
)
from videoconcepts.stores.base import open_store
from videoconcepts.stores.decode import Clips
from videoconcepts.stores.sae import GALLERY_KIND

MARKERS = ["o", "s", "^", "D", "v", "P"]


def metrics(context: Context) -> pd.DataFrame:
    """Every model's ``sae_metrics.tsv`` rows; empty when no model ran the stage."""
    frames = [
        context.inputs.of_model(name).table("sae_metrics")
        for name in context.inputs.models
        if "sae_metrics" in context.inputs.of_model(name)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def trained(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["contrastive"].notna()]


def tradeoff_figure(table: pd.DataFrame, path: Path) -> str:
    """Explained variance against the codes' lag-1 autocorrelation per token position
    and per frame, one point per SAE, joined over lambda; each model's raw channels as a
    dashed line."""
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    panels = fig.subplots(1, 2, sharex=True)
    rows = trained(table)
    models = list(dict.fromkeys(rows["model"]))
    for ax, column, what in zip(
        panels,
        ("autocorrelation", "frame_autocorrelation"),
        ("per token position", "per frame (mean over positions)"),
        strict=True,
    ):
        for (name, colour), marker in zip(
            zip(models, cycle(OKABE_ITO), strict=False), cycle(MARKERS), strict=False
        ):
            model = rows[rows["model"] == name]
            for (layer, k), line in model.groupby(["layer", "k"]):
                line = line.sort_values("contrastive")
                ax.plot(
                    line["explained_variance"],
                    line[column],
                    color=colour,
                    marker=marker,
                    label=f"{name}, layer {layer}, k={k}",
                )
                for _, row in line.iterrows():
                    ax.annotate(
                        f"λ={row['contrastive']:g}",
                        (row["explained_variance"], row[column]),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize=7,
                    )
            ax.axhline(
                model[f"raw_{column}"].iloc[0],
                color=colour,
                linestyle="--",
                linewidth=1,
                label=f"{name}, raw channels",
            )
        ax.set(
            title=f"Coherence {what}",
            xlabel="explained variance on held-out videos (fraction)",
            ylabel="lag-1 autocorrelation of codes (Pearson r)",
        )
        ax.grid(alpha=0.3)
    panels[0].legend(fontsize=7)
    fig.suptitle("Reconstruction vs temporal coherence over λ")
    return save(fig, path)


def ablation_figure(table: pd.DataFrame, path: Path) -> str:
    """Drop in the target score, and in the target's probability where the model has
    classes, from removing each SAE's most class-predictive features vs random ones."""
    rows = trained(table).dropna(subset=["ablation_drop"])
    panels = [("drop", "drop in the target score (metric units)")]
    if rows["ablation_probability_drop"].notna().any():
        panels.append(("probability_drop", "drop in the target's probability"))
    labels = [f"{r.model}\n{r.sae}" for r in rows.itertuples()]
    at = np.arange(len(rows))
    width = max(5.0, 1.1 * len(rows) + 2)
    fig = Figure(figsize=(width * len(panels), 4.2), layout="constrained")
    for ax, (what, ylabel) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels, strict=True):
        for shift, prefix, colour, name in (
            (-0.2, "", OKABE_ITO[1], "top predictive features"),
            (0.2, "random_", OKABE_ITO[5], "random features (mean of draws)"),
        ):
            ax.bar(at + shift, rows[f"{prefix}ablation_{what}"], 0.4, color=colour, label=name)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(at, labels, fontsize=7)
        ax.set(title="Causal ablation: features removed from the layer", ylabel=ylabel)
        ax.legend(fontsize=8)
    return save(fig, path)


def overlay(frames: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """Frames dimmed, with the activation (T', H', W', at most 1) in cividis on top."""
    t = np.minimum(
        np.arange(frames.shape[0]) * activation.shape[0] // frames.shape[0],
        activation.shape[0] - 1,
    )
    y = np.arange(frames.shape[1]) * activation.shape[1] // frames.shape[1]
    x = np.arange(frames.shape[2]) * activation.shape[2] // frames.shape[2]
    level = activation[t][:, y][:, :, x][..., None]
    heat = colormaps["cividis"](level[..., 0])[..., :3] * 255
    out = frames * (0.35 + 0.15 * (1 - level)) + heat * 0.5 * level
    return np.clip(out, 0, 255).astype(np.uint8)


def gallery(context: Context, name: str, out: Path) -> str:
    """The model's gallery: per SAE, its top features' clips (activation overlaid,
    scaled by the feature's largest value in the clips shown)."""
    store = open_store(context.inputs.of_model(name).one("sae_gallery"), GALLERY_KIND)
    attrs = store.attrs
    clips = Clips(attrs["video_ids"], attrs["decode_stores"], cache=16)
    features = context.inputs.of_model(name).table("sae_features")
    blocks = []
    for i, (label, units, videos) in enumerate(
        zip(attrs["saes"], attrs["features"], attrs["videos"], strict=True)
    ):
        maps = store[f"maps-{i}"][...]
        cells = []
        for j, (unit, shown) in enumerate(zip(units, videos, strict=True)):
            peak = max(float(maps[j].max()), 1e-8)
            panels = []
            for m, v in enumerate(shown):
                frames = overlay(clips.frames(int(v)), maps[j, m] / peak)
                panel = resize_frames(frames, context.settings.clip_height)
                panels += [panel, np.full((*panel.shape[:2], 4, 3), 255, np.uint8)]
            clip = out / "clips" / f"{name}-sae{i}-feature{unit:05d}.webp"
            save_webp(np.concatenate(panels[:-1], axis=2), context.settings, clip)
            row = features[(features["sae"] == label) & (features["feature"] == unit)].iloc[0]
            facts = (
                f"feature {unit}: fires on {row['frequency']:.1%} of tokens, "
                f"lag-1 r {row['autocorrelation']:.2f}"
            )
            if isinstance(row["probe_class"], str) and row["probe_class"]:
                facts += f", most predictive of {row['probe_class']}"
            if isinstance(row["role"], str) and row["role"]:
                facts += f", best role {row['role']} (IoU {row['role_iou']:.2f})"
            cells.append(
                f"<figure><img loading='lazy' src='clips/{clip.name}' alt='{html.escape(facts)}'>"
                f"<figcaption>{html.escape(facts)}</figcaption></figure>"
            )
        blocks.append(f"<h4>{html.escape(name)}, {html.escape(label)}</h4>{''.join(cells)}")
    return "".join(blocks)


def section(context: Context) -> str:
    table_ = metrics(context)
    if table_.empty:
        return ""
    figures = context.out / "figures"
    (context.out / "clips").mkdir(parents=True, exist_ok=True)
    tradeoff = tradeoff_figure(table_, figures / "sae_tradeoff.png")
    has_ablation = trained(table_)["ablation_drop"].notna().any()
    ablation = ablation_figure(table_, figures / "sae_ablation.png") if has_ablation else ""
    probe = table_[
        [
            "model",
            "sae",
            "explained_variance",
            "probe_accuracy",
            "raw_probe_accuracy",
            "spliced_accuracy",
            "ablation_drop",
            "random_ablation_drop",
            "ablation_probability_drop",
            "random_ablation_probability_drop",
        ]
    ]
    coherence = table_[
        [
            "model",
            "sae",
            "autocorrelation",
            "raw_autocorrelation",
            "autocorrelation_change",
            "frame_autocorrelation",
            "raw_frame_autocorrelation",
            "frame_autocorrelation_change",
            "dead_share",
            "dense_share",
            "role_iou",
            "raw_role_iou",
            "top_feature_iou",
            "raw_top_feature_iou",
        ]
    ]
    models = dict.fromkeys(table_["model"])
    galleries = "".join(gallery(context, name, context.out) for name in models)
    ablation_html = f"<img src='{ablation}' alt='causal ablation per SAE'>" if ablation else ""
    return f"""
<h2>Sparse autoencoders</h2>
<p class="note">TopK sparse autoencoders on one layer's residual tokens (paper 000), one per
value of k and of λ, the weight of a temporal contrastive term (codes of one position at
time steps t and t+1 pulled together, every other token of the batch pushed apart);
Matryoshka groups make the dictionary's nested prefixes reconstruct on their own.
<em>-untrained</em> rows are the same SAE at its initialisation: the floor every measure is
read against. Coherence is the lag-1 autocorrelation of each feature's activation along
time on held-out videos, averaged over features that fire; the raw residual channels'
is the reference (the paper finds plain TopK SAEs 36% below it).</p>
<img src="{tradeoff}" alt="reconstruction against temporal coherence over lambda">
<h3>Probes and causal ablation</h3>
<p class="note">Probe: logistic regression on each video's mean code, accuracy
cross-validated over videos, against the same probe on the mean raw features. Spliced:
the model's accuracy with the layer replaced by the SAE's reconstruction. Ablation: per
class, the features the probe weighs most are subtracted from the layer (the
reconstruction error kept) on that class's videos; the drop in the target score against
as many random live features.</p>
{ablation_html}
{table(probe)}
<h3>Temporal coherence and ground truth</h3>
<p class="note">Coherence per token: a feature's activation at one position, time step t
against t+1; per frame: its mean over the frame's positions (what a frame-level feature
would show; an object moving across positions lowers the first, not the second). Role
IoU (demo only): each feature's active tokens against each ground-truth role's masks
over every video; <em>role_iou</em> is the best feature's IoU per role averaged over the
roles, <em>top_feature_iou</em> the mean best-role IoU of the ten most role-like
features. Raw channels (each sign) thresholded to fire as often as the SAE's features
are the baseline, the untrained rows the floor.</p>
{table(coherence)}
<h3>Top features</h3>
<p class="note">Each feature in the videos where it is strongest on average, its
activation in cividis (brighter: stronger) over the dimmed frames.</p>
{galleries}
"""


def card(context: Context) -> str:
    table_ = trained(metrics(context))
    lines = []
    for name, model in table_.groupby("model", sort=False):
        plain = model[model["contrastive"] == 0]
        best = model.loc[model["autocorrelation"].idxmax()]
        if not plain.empty:
            first = plain.iloc[0]
            lines.append(
                f"<li>{html.escape(name)}: plain SAE coherence "
                f"{first['autocorrelation_change']:+.0%} vs raw; best "
                f"λ={best['contrastive']:g} {best['autocorrelation_change']:+.0%} (explained "
                f"variance {first['explained_variance']:.2f} → "
                f"{best['explained_variance']:.2f})</li>"
            )
    src = f"{analysis_folder(ANALYSIS.name)}/figures/sae_tradeoff.png"
    return f"<ul class='note'>{''.join(lines)}</ul><img src='{src}' alt='SAE trade-off'>"


ANALYSIS = Analysis("sae", "Sparse autoencoders", section, card)
