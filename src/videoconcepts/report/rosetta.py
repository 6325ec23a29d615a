"""Report section of the rosetta stage: concepts shared across the run's models."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from videoconcepts.report.cris import highlight, resize_frames, save_webp
from videoconcepts.report.page import (
    CLIP_CACHE,
    Analysis,
    Context,
    Markup,
    ReportSettings,
    analysis_folder,
    axes,
    save,
    table,
)
from videoconcepts.stores.decode import Clips
from videoconcepts.stores.units import Units, open_units

# Tuples shown as clips (every model's concept on the same videos).
TOP_TUPLES = 6


def layer_figure(links: pd.DataFrame, path: Path) -> str:
    """Rosetta tuples linking each (model, layer) to each other one: the paper's Fig. 4.7."""
    nodes = sorted(
        {(r.model_a, r.layer_a) for r in links.itertuples()}
        | {(r.model_b, r.layer_b) for r in links.itertuples()}
    )
    index = {node: i for i, node in enumerate(nodes)}
    counts = np.zeros((len(nodes), len(nodes)))
    for r in links.itertuples():
        a, b = index[(r.model_a, r.layer_a)], index[(r.model_b, r.layer_b)]
        counts[a, b] = counts[b, a] = r.tuples
    fig, ax = axes(6.5, 5.5)
    shown = np.where(counts > 0, counts, np.nan)  # no tuple (or the same model): blank
    image = ax.imshow(shown, cmap="cividis", vmin=0, vmax=max(counts.max(), 1))
    if len(nodes) <= 16:
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, int(n), ha="center", va="center", color="white", fontsize=7)
    labels = [f"{model} L{layer}" for model, layer in nodes]
    ax.set_xticks(range(len(nodes)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(nodes)), labels, fontsize=7)
    ax.set(title="Rosetta tuples linking two layers", xlabel="model, layer", ylabel="model, layer")
    fig.colorbar(image, ax=ax, label="Rosetta tuples (count)")
    return save(fig, path)


def tuple_clip(
    row: dict,
    models: dict[str, tuple[Units, Clips]],
    settings: ReportSettings,
    path: Path,
) -> list[str]:
    """One animated WebP: a row per model of the tuple, its concept highlighted in the
    same videos (those where every member covers most tokens: the smallest member's share
    first); returns the video ids."""
    members = [name for name in models if not pd.isna(row.get(f"{name}_layer"))]
    shared = sorted(set.intersection(*(set(models[n][0].video_ids) for n in members)))
    masks = {}  # (member, video id) -> its concept's token mask, each read once
    for name in members:
        units, _ = models[name]
        layer = units.layers.index(int(row[f"{name}_layer"]))
        head, unit = int(row[f"{name}_head"]), int(row[f"{name}_unit"])
        for video_id in shared:
            tokens = units.store["unit_tokens"][units.video_ids.index(video_id), layer, head]
            masks[name, video_id] = tokens == unit

    def coverage(video_id: str) -> float:
        return min(masks[name, video_id].mean() for name in members)

    videos = sorted(shared, key=coverage, reverse=True)[: settings.videos_per_concept]
    rows = []
    for name in members:
        units, clips = models[name]
        panels = []
        for video_id in videos:
            frames = clips.frames(units.video_ids.index(video_id))
            panel = resize_frames(highlight(frames, masks[name, video_id]), settings.clip_height)
            panels += [panel, np.full((*panel.shape[:2], 4, 3), 255, np.uint8)]
        rows.append(np.concatenate(panels[:-1], axis=2))
    length = max(len(r) for r in rows)
    width = max(r.shape[2] for r in rows)
    strips = []
    for r in rows:  # same frame count (nearest in time) and width, a white gap between rows
        r = r[np.arange(length) * len(r) // length]
        r = np.pad(r, ((0, 0), (0, 0), (0, width - r.shape[2]), (0, 0)), constant_values=255)
        strips += [r, np.full((length, 4, width, 3), 255, np.uint8)]
    save_webp(np.concatenate(strips[:-1], axis=1), settings, path)
    return videos


def tuple_clip_name(tuple_id: int) -> str:
    """A tuple's clip on the Rosetta page (the overview's card shows the top one)."""
    return f"clips/rosetta-{tuple_id:05d}.webp"


def section(context: Context) -> str:
    """Empty when the run has no Rosetta stage (one model, or switched off)."""
    inputs = context.inputs
    if "rosetta_concepts" not in inputs:
        return ""
    tuples = inputs.table("rosetta_concepts")
    summary = inputs.table("rosetta_summary")
    links = inputs.table("rosetta_layers")
    names = inputs.models
    models = {}
    for name in names:
        units = open_units(inputs.of_model(name).one("units"))
        models[name] = (units, Clips(units.video_ids, units.decode_stores, CLIP_CACHE))
    rows = []
    for row in tuples.head(TOP_TUPLES).to_dict("records"):
        name = tuple_clip_name(int(row["tuple"]))
        videos = tuple_clip(row, models, context.settings, context.out / name)
        members = [n for n in names if not pd.isna(row.get(f"{n}_layer"))]
        rows.append(
            {
                "tuple": int(row["tuple"]),
                "d": int(row["d"]),
                "R-score": row["r_score"],
                "null mean": row["null_mean"],
                "concepts (model: layer/head/concept, CRIS rank)": "; ".join(
                    f"{n}: L{int(row[f'{n}_layer'])}/h{int(row[f'{n}_head'])}/"
                    f"c{int(row[f'{n}_concept'])} (#{int(row[f'{n}_rank'])})"
                    for n in members
                ),
                "clip (a row per model, same videos)": Markup(
                    f'<img src="{name}" alt="Rosetta tuple {int(row["tuple"])}" '
                    f'title="{html.escape(", ".join(videos))}" loading="lazy">'
                ),
            }
        )
    figure = (
        layer_figure(links, context.out / "figures" / "rosetta_layers.png") if len(links) else ""
    )
    roles = (
        "<h3>Against the demo's ground truth</h3><p class='note'>Per role, the best Rosetta "
        "tuple's intersection and union of supports by mean IoU with the role's masks, "
        "against the best tuple of the permutation null (mean over draws).</p>"
        + table(inputs.table("rosetta_roles"))
        if "rosetta_roles" in inputs
        else ""
    )
    return f"""
<h2>Rosetta concepts (shared across models)</h2>
<p class="note">Tuples of concepts from different models, each among its model's most
important by CRIS, whose supports overlap: R-score, the mean over videos of the n-way
intersection over union (VTCD eq. 4.7), at least delta. The permutation null shuffles
the videos between models: tuples above delta by chance, and each tuple's own score
when its videos no longer match. {len(tuples)} tuples in all.</p>
{table(summary)}
{table(pd.DataFrame(rows))}
{f'<img src="{figure}" alt="Rosetta tuples per pair of layers">' if figure else ""}
{roles}
"""


def card(context: Context) -> str:
    """The overview's card: tuples found against the permutation null, and the top
    tuple's clip from the Rosetta page."""
    summary = context.inputs.table("rosetta_summary")
    lines = "".join(
        f"<li>{int(r.d)}-tuples: {int(r.tuples)} at R &ge; {r.delta:g} (null "
        f"{r.tuples_null:.1f}); mean R {r.mean_r:.3f}</li>"
        for r in summary.itertuples()
    )
    tuples = context.inputs.table("rosetta_concepts")
    clip = ""
    if len(tuples):
        src = f"{analysis_folder(ANALYSIS.name)}/{tuple_clip_name(int(tuples['tuple'].iloc[0]))}"
        clip = f'<img src="{src}" alt="the top Rosetta tuple" loading="lazy">'
    return f"<ul class='note'>{lines}</ul>{clip}"


ANALYSIS = Analysis("rosetta", "Rosetta concepts", section, card)
