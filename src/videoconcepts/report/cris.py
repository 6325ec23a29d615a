"""Report section of the CRIS stages: concepts ranked by importance, with clips of the top ones.

Clips are animated WebPs: a concept's support kept, the rest dimmed to a quarter, its
outline in yellow, in the videos where it covers most tokens, side by side.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from PIL import Image
from scipy.ndimage import binary_erosion
from tqdm import tqdm

from videoconcepts.methods.cris import FRAGILE_BELOW, fragile_videos
from videoconcepts.report.page import (
    CLIP_CACHE,
    OKABE_ITO,
    Context,
    Markup,
    ReportSettings,
    axes,
    save,
    table,
)
from videoconcepts.stores.base import open_store
from videoconcepts.stores.concepts import ConceptSupport, open_concepts
from videoconcepts.stores.cris import KIND as CRIS_KIND
from videoconcepts.stores.decode import Clips
from videoconcepts.stores.units import open_units


def layer_figure(cris: pd.DataFrame, path: Path) -> str:
    per_layer = cris.groupby("layer")["importance"].agg(["mean", "sem", "count"])
    fig, ax = axes(5.5, 3.6)
    ax.bar(
        per_layer.index.astype(str),
        per_layer["mean"],
        yerr=per_layer["sem"].fillna(0),
        color=OKABE_ITO[0],
        capsize=4,
        label="mean CRIS importance ± s.e.m.",
    )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(
        title="Concept importance per layer",
        xlabel="layer (0-based)",
        ylabel="importance (metric drop)",
    )
    ax.legend(fontsize=8)
    return save(fig, path)


def stability_figure(stability: pd.DataFrame, path: Path) -> str:
    fig, ax = axes(5.5, 3.4)
    ax.plot(
        stability["n_masks"],
        stability["split_half_spearman"],
        marker="o",
        color=OKABE_ITO[2],
        label="even vs. odd masks",
    )
    ax.set(
        title="CRIS ranking stability",
        xlabel="masks used",
        ylabel="split-half Spearman correlation",
        ylim=(min(0, ax.get_ylim()[0]), 1),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def masked_figure(shards: Sequence[str], path: Path) -> tuple[str, str] | None:
    """For a 0/1 metric: per video, the share of CRIS masks that leave its prediction
    right, the fragile videos (methods.cris.fragile_videos) marked; with a sentence
    saying what they mean. None for other metrics."""
    groups = [open_store(shard, CRIS_KIND) for shard in shards]
    attrs = groups[0].attrs
    if attrs["masking"]["metric"] != "correctness":
        return None
    scores = np.concatenate([g["scores"][...] for g in groups], axis=1)
    baseline = groups[0]["baseline"][...]
    fragile = fragile_videos(scores, baseline)
    kept = scores.mean(axis=1)
    order = np.argsort(kept, kind="stable")
    colours = np.where(fragile, OKABE_ITO[1], np.where(baseline > 0.5, OKABE_ITO[0], "#999999"))
    fig, ax = axes(max(5.5, 0.25 * len(kept) + 1.5), 3.4)
    ax.bar(np.arange(len(kept)), kept[order], color=colours[order])
    ax.axhline(FRAGILE_BELOW, color="#333333", linestyle="--", linewidth=1)
    ax.set_xticks(
        np.arange(len(kept)), [attrs["video_ids"][i] for i in order], rotation=90, fontsize=6
    )
    ratio = attrs["cris"]["mask_ratio"]
    ax.set(
        title=f"Predictions under CRIS's masks ({ratio:.0%} of concepts removed)",
        xlabel="video (sorted)",
        ylabel="share of masks keeping it right",
        ylim=(0, 1),
    )
    kinds = {
        OKABE_ITO[0]: "right unmasked",
        OKABE_ITO[1]: f"right on < {FRAGILE_BELOW:.0%} of masks",
        "#999999": "wrong unmasked",
    }
    handles = [Patch(color=c, label=label) for c, label in kinds.items() if c in colours]
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    n = int(fragile.sum())
    note = (
        f"{n} of {len(kept)} videos are right unmasked but right on fewer than "
        f"{FRAGILE_BELOW:.0%} of the masks: there a concept's kept and removed scores are "
        "both near 0, so CRIS calls it unimportant although removing it alone may break the "
        "video. With many such videos a smaller <code>cris.mask_ratio</code> for this model "
        "ranks its concepts better (README: the demo TimeSformer)."
        if n
        else f"Every video right unmasked stays right on at least {FRAGILE_BELOW:.0%} of the "
        "masks: the mask ratio leaves CRIS a signal on each."
    )
    return save(fig, path), note


# --- clips -------------------------------------------------------------------------------
def resize_frames(frames: np.ndarray, height: int) -> np.ndarray:
    """(T, H, W, 3) uint8 to the given height (nearest up, area-like down)."""
    t, h, w, _ = frames.shape
    width = max(1, round(w * height / h))
    method = Image.NEAREST if height >= h else Image.BOX
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((width, height), method)) for f in frames]
    )


def highlight(frames: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Frames with the support kept, the rest dimmed, and its outline drawn (yellow)."""
    t = np.minimum(
        np.arange(frames.shape[0]) * support.shape[0] // frames.shape[0], support.shape[0] - 1
    )
    y = np.arange(frames.shape[1]) * support.shape[1] // frames.shape[1]
    x = np.arange(frames.shape[2]) * support.shape[2] // frames.shape[2]
    mask = support[t][:, y][:, :, x]
    edge = mask & ~binary_erosion(mask, structure=np.ones((1, 3, 3), bool), border_value=1)
    out = np.where(mask[..., None], frames, (frames * 0.25).astype(np.uint8))
    out[edge] = (240, 228, 66)
    return out


def concept_clip(
    support: ConceptSupport,
    clips: Clips,
    head: int,
    concept: int,
    videos: Sequence[int],
    settings: ReportSettings,
    path: Path,
) -> None:
    """An animated WebP of one concept in ``videos``, side by side."""
    panels = []
    for v in videos:
        mask = support.masks(head, int(v))[concept]
        panel = resize_frames(highlight(clips.frames(int(v)), mask), settings.clip_height)
        panels += [panel, np.full((*panel.shape[:2], 4, 3), 255, np.uint8)]
    save_webp(np.concatenate(panels[:-1], axis=2), settings, path)


def save_webp(frames: np.ndarray, settings: ReportSettings, path: Path) -> None:
    """(T, H, W, 3) uint8 frames as a looping animated WebP at the report's frame rate."""
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        loop=0,
        duration=1000 // settings.clip_fps,
        quality=80,
        method=0,  # the fastest encoder: 2.2x method 4 on demo clips, sizes within 5%
    )


def clip_name(unit: int) -> str:
    """A concept's clip on its model's page (the overview's model card shows the top one)."""
    return f"clips/unit-{unit:05d}.webp"


def concept_rows(cris: pd.DataFrame, concept_counts: dict[int, np.ndarray]) -> pd.DataFrame:
    table = cris.sort_values("rank").copy()
    table["tubelets"] = [
        int(concept_counts[layer][head, concept, 0])
        for layer, head, concept in zip(
            table["layer"], table["head"], table["concept"], strict=True
        )
    ]
    return table


def static_dynamic_columns(inputs, concepts: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each concept's static and dynamic correlation and class, where static_dynamic ran."""
    if "static_dynamic_concepts" not in inputs:
        return {}
    key = ["layer", "head", "concept"]
    scores = inputs.table("static_dynamic_concepts").set_index(key)
    rows = scores.reindex(pd.MultiIndex.from_frame(concepts[key]))
    return {
        "s static": rows["s_static"].to_numpy(),
        "s dynamic": rows["s_dynamic"].to_numpy(),
        "static / dynamic": rows["class"].to_numpy(),
    }


def section(context: Context) -> str:
    inputs, settings, out = context.inputs, context.settings, context.out
    cris, occlusion = inputs.table("cris"), inputs.table("occlusion")
    units = open_units(inputs.one("units"))
    concept_stores = {
        int(group.attrs["layer"]): group for group in map(open_concepts, inputs.many("concepts"))
    }
    counts = {layer: group["concept_counts"][...] for layer, group in concept_stores.items()}
    figures = {
        "layers": layer_figure(cris, out / "figures" / "layer_importance.png"),
        "stability": stability_figure(inputs.table("stability"), out / "figures" / "stability.png"),
    }
    masked = masked_figure(inputs.many("cris_shards"), out / "figures" / "cris_masked.png")
    concepts = concept_rows(cris, counts)
    occlusion_rank = occlusion.set_index("unit")["rank"]
    supports = {layer: ConceptSupport(group) for layer, group in concept_stores.items()}
    videos = Clips(units.video_ids, units.decode_stores, CLIP_CACHE)
    token_counts = units.store["token_counts"][...]
    clips = {}
    top = concepts.head(settings.top_concepts).to_dict("records")
    for row in tqdm(top, desc="report clips", unit="concept"):
        unit = int(row["unit"])
        present = np.flatnonzero(units.presence[:, unit])
        order = np.argsort(-token_counts[present, unit], kind="stable")
        shown_videos = present[order][: settings.videos_per_concept]
        if len(shown_videos) == 0:
            continue
        name = clip_name(unit)
        concept_clip(
            supports[int(row["layer"])],
            videos,
            int(row["head"]),
            int(row["concept"]),
            shown_videos,
            settings,
            out / name,
        )
        ids = ", ".join(units.video_ids[v] for v in shown_videos)
        clips[unit] = Markup(
            f'<img src="{name}" alt="concept {unit} in {html.escape(ids)}" '
            f'title="{html.escape(ids)}" loading="lazy">'
        )
    shown = pd.DataFrame(
        {
            "rank": concepts["rank"],
            "layer": concepts["layer"],
            "head": concepts["head"],
            "concept": concepts["concept"],
            "importance": concepts["importance"],
            "± s.e.": concepts["stderr"],
            "± video s.e.": concepts["video_se"],
            "occlusion rank": occlusion_rank.reindex(concepts["unit"]).to_numpy(),
            "videos": concepts["n_videos"],
            "tubelets": concepts["tubelets"],
            **static_dynamic_columns(inputs, concepts),
            "examples (support highlighted)": [clips.get(int(u), "") for u in concepts["unit"]],
        }
    )
    return f"""
<h2>Concepts ranked by importance (CRIS)</h2>
<p class="note">Importance: mean metric when a concept is kept minus when it is masked
(± s.e.: over the masks, with the videos fixed; ± video s.e.: over videos resampled,
whether other videos would give the same importance). Clips: the concept's support in
the videos where it covers most tokens, the rest dimmed, outline in yellow. Hover a clip
for the video ids; click a column's header to sort by it.</p>
{table(shown, "concepts")}
<div class="figs"><img src="{figures["layers"]}" alt="importance per layer">
<img src="{figures["stability"]}" alt="ranking stability">
{f'<img src="{masked[0]}" alt="predictions under the CRIS masks, per video">' if masked else ""}
</div>
{f'<p class="note">{masked[1]}</p>' if masked else ""}
"""
