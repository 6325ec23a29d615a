"""Report stage: a self-contained HTML folder (no network) from what earlier stages wrote.

``index.html`` plus ``figures/*.png`` (matplotlib, colour-blind-safe Okabe-Ito and
cividis colours) and ``clips/*.webp`` (animated: a concept's support highlighted, the
rest dimmed, several videos side by side). Nothing is recomputed: the report reads the
importance tables, the units and concept stores, the decoded clips and the benchmark
files, so it takes seconds.
"""

from __future__ import annotations

import glob
import html
import json
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image
from scipy.ndimage import binary_erosion
from tqdm import tqdm

from videoconcepts.concepts import ConceptSupport, open_concepts
from videoconcepts.decode import Clips
from videoconcepts.features import open_features
from videoconcepts.units import open_units

OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"]
ORDER_STYLE = {"positive": "-", "negative": "--", "random": ":"}
PACKAGES = (
    "videoconcepts",
    "torch",
    "transformers",
    "snakemake",
    "zarr",
    "numcodecs",
    "decord",
    "scikit-image",
    "scikit-learn",
    "numpy",
    "pandas",
    "matplotlib",
)


@dataclass(frozen=True)
class ReportSettings:
    top_concepts: int = 20
    videos_per_concept: int = 4
    clip_height: int = 128  # pixels per clip in the gallery (frames resized to it)
    clip_fps: int = 8


@dataclass(frozen=True)
class ReportInputs:
    """Paths of everything the report reads (all written by earlier stages)."""

    units: str
    concept_stores: Sequence[str]
    feature_stores: Sequence[str]
    cris: str
    stability: str
    occlusion: str
    curves: str
    fidelity: str
    checks: str
    heads: str
    pruning: str
    skipped: str
    benchmarks: Sequence[str] = ()  # globs of this run's Snakemake benchmark files
    validation: str | None = None


# --- figures -----------------------------------------------------------------------------
def _axes(width: float, height: float):
    """A figure and its axes without pyplot (no global state, no GUI backend)."""
    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return f"figures/{path.name}"


def curves_figure(curves: pd.DataFrame, fidelity: pd.DataFrame, metric: str, path: Path) -> str:
    auc = {(r.method, r.order): r.auc for r in fidelity.itertuples()}
    fig, ax = _axes(7, 4.2)
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
    return _save(fig, path)


def layer_figure(cris: pd.DataFrame, path: Path) -> str:
    per_layer = cris.groupby("layer")["importance"].agg(["mean", "sem", "count"])
    fig, ax = _axes(5.5, 3.6)
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
    return _save(fig, path)


def heads_figure(heads: pd.DataFrame, path: Path) -> str:
    grid = heads.pivot(index="layer", columns="head", values="importance").sort_index()
    fig, ax = _axes(1.2 + 0.6 * grid.shape[1], 1.2 + 0.45 * grid.shape[0])
    image = ax.imshow(grid.to_numpy(), cmap="cividis", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set(title="Head importance (CRIS over heads)", xlabel="head", ylabel="layer")
    fig.colorbar(image, ax=ax, label="importance (metric drop)")
    return _save(fig, path)


def pruning_figure(pruning: pd.DataFrame, path: Path) -> str:
    """Accuracy against FLOPs saved; the metric itself for models without classes."""
    fig, ax = _axes(6, 3.8)
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
    return _save(fig, path)


def stability_figure(stability: pd.DataFrame, path: Path) -> str:
    fig, ax = _axes(5.5, 3.4)
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
    return _save(fig, path)


# --- clips -------------------------------------------------------------------------------
def _resize(frames: np.ndarray, height: int) -> np.ndarray:
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
        panel = _resize(highlight(clips.frames(int(v)), mask), settings.clip_height)
        panels += [panel, np.full((*panel.shape[:2], 4, 3), 255, np.uint8)]
    strip = np.concatenate(panels[:-1], axis=2)
    images = [Image.fromarray(f) for f in strip]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        loop=0,
        duration=1000 // settings.clip_fps,
        quality=80,
        method=4,
    )


# --- tables and page ----------------------------------------------------------------------
class Markup(str):
    """HTML this module made itself; table cells pass it through unescaped."""


def _table(frame: pd.DataFrame, table_id: str = "", floats: str = "{:.4g}") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            if isinstance(value, float):
                cells.append(f"<td>{floats.format(value)}</td>")
            elif isinstance(value, Markup):
                cells.append(f"<td>{value}</td>")
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


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
    table = pd.DataFrame(rows).groupby("stage", sort=False)["seconds"].agg(["count", "sum"])
    return table.reset_index().rename(columns={"count": "jobs", "sum": "seconds"})


def versions() -> pd.DataFrame:
    rows = [{"package": "python", "version": platform.python_version()}]
    for name in PACKAGES:
        try:
            rows.append({"package": name, "version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            rows.append({"package": name, "version": "not installed"})
    return pd.DataFrame(rows)


def _concept_rows(cris: pd.DataFrame, concept_counts: dict[int, np.ndarray]) -> pd.DataFrame:
    table = cris.sort_values("rank").copy()
    table["tubelets"] = [
        int(concept_counts[layer][head, concept, 0])
        for layer, head, concept in zip(
            table["layer"], table["head"], table["concept"], strict=True
        )
    ]
    return table


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>videoconcepts report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
h1, h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .2em; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: middle; }}
th {{ background: #f0f0f0; }}
img {{ max-width: 100%; }}
.figs {{ display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }}
.filters {{ margin: .5em 0; }} .filters label {{ margin-right: 1em; }}
pre {{ background: #f6f6f6; padding: .5em; overflow-x: auto; font-size: 12px; }}
.note {{ color: #555; font-size: 14px; }}
</style></head><body>
<h1>videoconcepts report</h1>
{body}
<script>
function filterConcepts() {{
  const layer = document.getElementById('layer').value;
  const head = document.getElementById('head').value;
  const text = document.getElementById('search').value.toLowerCase();
  let shown = 0;
  for (const row of document.querySelectorAll('#concepts tbody tr')) {{
    const c = row.children;
    const ok = (layer === '' || c[1].textContent === layer) &&
               (head === '' || c[2].textContent === head) &&
               (text === '' || row.textContent.toLowerCase().includes(text));
    row.style.display = ok ? '' : 'none';
    if (ok) shown += 1;
  }}
  document.getElementById('shown').textContent = shown;
}}
for (const id of ['layer', 'head', 'search']) {{
  document.getElementById(id).addEventListener('input', filterConcepts);
}}
filterConcepts();
</script>
</body></html>
"""


def _options(values: Sequence[int]) -> str:
    return '<option value="">all</option>' + "".join(
        f'<option value="{v}">{v}</option>' for v in values
    )


def write_report(
    out: str | Path, inputs: ReportInputs, settings: ReportSettings, run_settings: dict
) -> Path:
    """Write ``out/index.html`` with its figures and clips; return the index path.

    The folder is built as a hidden sibling and renamed into place when complete, so a
    killed job never leaves a report that looks finished.
    """
    out = Path(out)
    building = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(building, ignore_errors=True)
    (building / "figures").mkdir(parents=True)
    (building / "clips").mkdir()
    _build(building, inputs, settings, run_settings)
    shutil.rmtree(out, ignore_errors=True)
    building.rename(out)
    return out / "index.html"


def _build(out: Path, inputs: ReportInputs, settings: ReportSettings, run_settings: dict) -> None:
    read = lambda p: pd.read_csv(p, sep="\t")  # noqa: E731
    cris, occlusion = read(inputs.cris), read(inputs.occlusion)
    curves, fidelity, checks = read(inputs.curves), read(inputs.fidelity), read(inputs.checks)
    heads, pruning, stability = read(inputs.heads), read(inputs.pruning), read(inputs.stability)
    skipped = read(inputs.skipped)
    units = open_units(inputs.units)
    features = open_features(inputs.feature_stores[0]).attrs
    concept_stores = {
        int(group.attrs["layer"]): group for group in map(open_concepts, inputs.concept_stores)
    }
    counts = {layer: group["concept_counts"][...] for layer, group in concept_stores.items()}

    figures = {
        "curves": curves_figure(
            curves,
            fidelity,
            run_settings["masking"]["metric"],
            out / "figures" / "attribution_curves.png",
        ),
        "layers": layer_figure(cris, out / "figures" / "layer_importance.png"),
        "heads": heads_figure(heads, out / "figures" / "head_importance.png"),
        "pruning": pruning_figure(pruning, out / "figures" / "pruning_curve.png"),
        "stability": stability_figure(stability, out / "figures" / "stability.png"),
    }

    concepts = _concept_rows(cris, counts)
    occlusion_rank = occlusion.set_index("unit")["rank"]
    supports = {layer: ConceptSupport(group) for layer, group in concept_stores.items()}
    videos = Clips(units.video_ids, units.decode_stores)
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
        name = f"clips/unit-{unit:05d}.webp"
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
            f'title="{html.escape(ids)}" loading="eager">'
        )
    shown = pd.DataFrame(
        {
            "rank": concepts["rank"],
            "layer": concepts["layer"],
            "head": concepts["head"],
            "concept": concepts["concept"],
            "importance": concepts["importance"],
            "± s.e.": concepts["stderr"],
            "occlusion rank": occlusion_rank.reindex(concepts["unit"]).to_numpy(),
            "videos": concepts["n_videos"],
            "tubelets": concepts["tubelets"],
            "examples (support highlighted)": [clips.get(int(u), "") for u in concepts["unit"]],
        }
    )

    used = len(units.video_ids)
    summary = pd.DataFrame(
        [
            ("family", features["family"]),
            ("checkpoint", features["settings"]["model"]["checkpoint"]),
            ("layers x heads", f"{heads['layer'].nunique()} x {features['num_heads']}"),
            ("analysed layers", ", ".join(map(str, units.layers))),
            ("token grid (T', H', W')", " x ".join(map(str, features["grid"]))),
            ("videos used", used),
            ("videos skipped", len(skipped)),
            ("concepts", len(cris)),
        ],
        columns=["", "value"],
    )
    validation = ""
    if inputs.validation:
        best = read(inputs.validation)
        side = best.pivot(index="role", columns="method", values="mean_iou")
        side = side[[m for m in ("slic", "random_crops") if m in side.columns]]
        validation = (
            "<h2>Concepts vs. ground truth (demo)</h2>"
            "<p class='note'>Best concept per object role by mean IoU with the role's "
            "visible masks, SLIC tubelets (VTCD) beside the random-crop baseline.</p>"
            + _table(side.reset_index())
            + "<details><summary>best concepts</summary>"
            + _table(best)
            + "</details>"
        )
    layers = sorted(concepts["layer"].unique().tolist())
    head_ids = sorted(concepts["head"].unique().tolist())
    body = f"""
<h2>Run</h2>
{_table(summary)}
<details><summary>videos skipped ({len(skipped)})</summary>{_table(skipped)}</details>
<details><summary>resolved configuration per stage</summary>
<pre>{html.escape(json.dumps(run_settings, indent=2, sort_keys=True))}</pre></details>
<div class="figs"><div><h3>Time per stage</h3>{
        _table(stage_times(inputs.benchmarks), floats="{:.1f}")
    }</div><div><h3>Software</h3>{_table(versions())}</div></div>

<h2>Fidelity</h2>
<p class="note">Concepts removed cumulatively, most important first (positive: a faithful
ranking drops fast, lower area is better), least important first (negative: higher is
better), and in random orders.</p>
<img src="{figures["curves"]}" alt="attribution curves">
{_table(fidelity)}
{_table(checks)}

<h2>Concepts ranked by importance (CRIS)</h2>
<p class="note">Importance: mean metric when a concept is kept minus when it is masked
(with its standard error). Clips: the concept's support in the videos where it covers
most tokens, the rest dimmed, outline in yellow. Hover a clip for the video ids.</p>
<div class="filters">
<label>layer <select id="layer">{_options(layers)}</select></label>
<label>head <select id="head">{_options(head_ids)}</select></label>
<label>search <input id="search" type="search" placeholder="text in the row"></label>
<span class="note"><span id="shown"></span> of {len(shown)} concepts shown</span>
</div>
{_table(shown, "concepts")}
<div class="figs"><img src="{figures["layers"]}" alt="importance per layer">
<img src="{figures["stability"]}" alt="ranking stability"></div>

<h2>Heads</h2>
<div class="figs"><img src="{figures["heads"]}" alt="head importance heat map">
<img src="{figures["pruning"]}" alt="pruning curve"></div>
<details><summary>pruning curve table</summary>{_table(pruning)}</details>
{validation}
"""
    (out / "index.html").write_text(PAGE.format(body=body))
