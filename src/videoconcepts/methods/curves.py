"""Fidelity of an importance ranking: attribution curves and their areas.

Attribution curves remove units cumulatively, most to least important (*positive*: a
faithful ranking drops fast, low area) and least to most (*negative*: stays high, high
area), and in random orders; the area under each curve is over the fraction of units
removed, from 0 to 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from videoconcepts.methods.removal import removal_masks
from videoconcepts.models.scorer import MaskScorer
from videoconcepts.stores.decode import Clips
from videoconcepts.stores.units import Units


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
