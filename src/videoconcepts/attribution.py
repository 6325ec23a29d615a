"""Fidelity of an importance ranking: occlusion baseline and attribution curves.

Occlusion (the usual baseline) masks each unit alone on each video where it appears.
Attribution curves remove units cumulatively, most to least important (*positive*:
a faithful ranking drops fast, low area) and least to most (*negative*: stays high,
high area), and in random orders; the area under each curve is over the fraction of
units removed, from 0 to 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from videoconcepts.decode import Clips
from videoconcepts.importance import ranked
from videoconcepts.scoring import MaskingSettings, MaskScorer, UnitJob
from videoconcepts.units import Units


def occlusion_importance(
    scorer: MaskScorer, clips: Clips, units: Units, targets: np.ndarray, baseline: np.ndarray
) -> pd.DataFrame:
    """Score drop when each unit alone is masked, averaged over all videos (absent: 0)."""
    n_videos, n_units = len(clips), units.n_units
    drops = np.zeros((n_videos, n_units))
    for v in tqdm(range(n_videos), desc="occlusion", unit="video"):
        present = np.flatnonzero(units.presence[v])
        masks = np.zeros((len(present), n_units), bool)
        masks[np.arange(len(present)), present] = True
        scores = scorer.scores(clips.frames(v), units.tokens(v), masks, int(targets[v]))
        drops[v, present] = baseline[v] - scores
    table = units.table.copy()
    table["importance"] = drops.mean(0)
    table["stderr"] = drops.std(0, ddof=1) / np.sqrt(n_videos) if n_videos > 1 else 0.0
    table["n_videos"] = units.presence.sum(0)
    return ranked(table)


def removal_masks(order: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps + 1, U) masks removing the first round(f * U) units of ``order``, f = j/steps."""
    n_units = len(order)
    fractions = np.arange(steps + 1) / steps
    counts = np.round(fractions * n_units).astype(int)
    position = np.empty(n_units, int)
    position[order] = np.arange(n_units)
    return position[None, :] < counts[:, None], fractions


def ranking_orders(
    importance: Mapping[str, np.ndarray], random_orders: int, seed: int
) -> dict[tuple[str, str], list[np.ndarray]]:
    """Removal orders per (method, order): positive and negative per method, plus random."""
    orders: dict[tuple[str, str], list[np.ndarray]] = {}
    for method, values in importance.items():
        ranked = np.argsort(-values, kind="stable")
        orders[(method, "positive")] = [ranked]
        orders[(method, "negative")] = [ranked[::-1]]
    n_units = len(next(iter(importance.values())))
    rng = np.random.default_rng(seed)
    orders[("random", "random")] = [rng.permutation(n_units) for _ in range(random_orders)]
    return orders


def attribution_curves(
    scorer: MaskScorer,
    clips: Clips,
    units: Units,
    targets: np.ndarray,
    importance: Mapping[str, np.ndarray],
    steps: int,
    random_orders: int,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Curves (method, order, fraction removed, mean metric) and their areas.

    All orders' masks for one video go through the model together, so a video costs
    ``(steps + 1) * (2 * methods + random_orders)`` rows in few large batches.
    """
    orders = ranking_orders(importance, random_orders, seed)
    keys = [(key, i) for key, perms in orders.items() for i in range(len(perms))]
    blocks = [removal_masks(orders[key][i], steps)[0] for key, i in keys]
    fractions = removal_masks(np.arange(units.n_units), steps)[1]
    masks = np.concatenate(blocks)
    totals = np.zeros(len(masks))
    for v in tqdm(range(len(clips)), desc="attribution curves", unit="video"):
        totals += scorer.scores(clips.frames(v), units.tokens(v), masks, int(targets[v]))
    per_mask = (totals / len(clips)).reshape(len(keys), steps + 1)
    rows = []
    for method, order in orders:
        picked = [j for j, (key, _) in enumerate(keys) if key == (method, order)]
        curve = per_mask[picked].mean(0)
        rows += [
            {"method": method, "order": order, "step": j, "fraction_removed": f, "metric": m}
            for j, (f, m) in enumerate(zip(fractions, curve, strict=True))
        ]
    curves = pd.DataFrame(rows)
    return curves, curve_areas(curves)


def curve_areas(curves: pd.DataFrame) -> pd.DataFrame:
    """Area under each (method, order) curve over the fraction removed (trapezoid rule)."""
    rows = [
        {
            "method": method,
            "order": order,
            "auc": float(np.trapezoid(group["metric"], group["fraction_removed"])),
        }
        for (method, order), group in curves.groupby(["method", "order"], sort=False)
    ]
    return pd.DataFrame(rows)


def occlusion_table(
    units_path: str | Path,
    masking: MaskingSettings,
    samples: str | None = None,
    batch_size: int = 32,
    device: str = "auto",
) -> pd.DataFrame:
    """The occlusion stage: every unit of a units store masked alone on every video."""
    job = UnitJob.load(units_path, masking, samples, device)
    with job.scorer(masking, batch_size) as scorer:
        return occlusion_importance(scorer, job.clips, job.units, job.targets, job.baseline)


def curve_tables(
    units_path: str | Path,
    importance_tables: Mapping[str, str | Path],
    masking: MaskingSettings,
    settings: Mapping[str, int],
    samples: str | None = None,
    batch_size: int = 32,
    device: str = "auto",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The curves stage: (curves, areas, checks) for methods given as importance tables.

    The first method is checked against every other one and against random orders.
    """
    job = UnitJob.load(units_path, masking, samples, device)
    importance = {
        method: pd.read_csv(path, sep="\t")
        .set_index("unit")["importance"]
        .reindex(job.units.table["unit"])
        .to_numpy()
        for method, path in importance_tables.items()
    }
    with job.scorer(masking, batch_size) as scorer:
        curves, areas = attribution_curves(
            scorer, job.clips, job.units, job.targets, importance, **settings
        )
    methods = list(importance)
    return curves, areas, fidelity_checks(areas, methods[0], [*methods[1:], "random"])


def fidelity_checks(areas: pd.DataFrame, method: str, baselines: Sequence[str]) -> pd.DataFrame:
    """Does ``method`` beat each baseline: lower positive AUC and higher negative AUC?"""
    auc = {(r.method, r.order): r.auc for r in areas.itertuples()}
    random_auc = auc.get(("random", "random"))
    rows = []
    for baseline in baselines:
        for order, better in (("positive", np.less), ("negative", np.greater)):
            other = random_auc if baseline == "random" else auc[(baseline, order)]
            rows.append(
                {
                    "method": method,
                    "baseline": baseline,
                    "order": order,
                    "auc": auc[(method, order)],
                    "baseline_auc": other,
                    "better": bool(better(auc[(method, order)], other)),
                }
            )
    return pd.DataFrame(rows)
