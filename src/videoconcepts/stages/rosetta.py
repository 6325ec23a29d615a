"""rosetta: concepts shared across the run's models (VTCD's Rosetta concepts).

Each model's most important ``epsilon`` of concepts by CRIS; their supports (the tokens
each concept holds in each video, from the units store) resampled by nearest neighbour
onto one space-time grid (the finest of the models' per axis unless ``grid`` says);
tuples mined as :mod:`videoconcepts.methods.rosetta` says, over the videos every model
kept, in the same clip (the demo models' clips span the same centred ~1 s).

Significance as the paper reports it: the mean R-score over every tuple with one
concept of each model, against that of the Rosetta tuples; and a permutation null, the
same mining with each model's videos but the first shuffled (seeded), which gives the
count and the share of tuples at or above ``delta`` by chance and each tuple's own
score under shuffling (``null_mean``).

With the demo's ground truth (``--ground-truth``), each tuple's intersection and union
of supports is scored against each role's masks (mean IoU over the videos where the
role is visible), the best tuple per role beside the best under the null.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from videoconcepts.methods.rosetta import (
    Supports,
    Tuples,
    mean_tuple_score,
    mine,
    resample_nearest,
    tuple_scores,
)
from videoconcepts.runtime import typed_json
from videoconcepts.stages.validation import role_masks_on_grid
from videoconcepts.stores.base import open_store, write_table
from videoconcepts.stores.decode import open_decoded
from videoconcepts.stores.units import Units, open_units

HELP = "concepts shared across the run's models (Rosetta concepts)"


@dataclass(frozen=True)
class RosettaSettings:
    """``epsilon``: share of each model's concepts kept, most important first; ``delta``:
    the least R-score kept; ``max_d``: the longest tuple (None: one per model);
    ``permutations`` of the null, drawn from ``seed``; ``grid``: the common (T, H, W)."""

    epsilon: float
    delta: float
    max_d: int | None
    permutations: int
    seed: int
    grid: list[int] | None


Settings = RosettaSettings


@dataclass
class Model:
    """One model's candidates: their rows of the CRIS table and their supports."""

    name: str
    candidates: pd.DataFrame
    supports: Supports
    masks: np.ndarray  # (concepts, videos, *grid) bool, for the role scores


def candidates(cris: pd.DataFrame, epsilon: float) -> pd.DataFrame:
    """The most important ``epsilon`` of the concepts (at least one), by CRIS rank."""
    keep = max(1, math.ceil(epsilon * len(cris)))
    return cris.sort_values("rank").head(keep).reset_index(drop=True)


def supports_on_grid(
    units: Units, chosen: pd.DataFrame, videos: Sequence[str], grid: Sequence[int]
) -> np.ndarray:
    """(concepts, videos, *grid) bool support of each chosen unit in each video."""
    layer_index = {layer: i for i, layer in enumerate(units.layers)}
    rows = [units.video_ids.index(v) for v in videos]
    out = np.zeros((len(chosen), len(videos), *grid), bool)
    for k, video in enumerate(rows):
        block = units.store["unit_tokens"][video]  # (layers, heads, T', H', W')
        for c, unit in enumerate(chosen.itertuples()):
            own = block[layer_index[unit.layer], unit.head] == unit.unit
            out[c, k] = resample_nearest(own, grid)
    return out


def common_grid(grids: Sequence[Sequence[int]], given: Sequence[int] | None) -> list[int]:
    return list(given) if given else [max(axis) for axis in zip(*grids, strict=True)]


def tuple_table(models: Sequence[Model], found: Sequence[Tuples], null_mean) -> pd.DataFrame:
    """One row per Rosetta tuple: d, its models, per model the concept's layer, head,
    concept, unit and CRIS rank (empty where the model takes no part), R, null mean."""
    rows = []
    for tuples in found:
        for concepts, score, null in zip(
            tuples.concepts, tuples.scores, null_mean(tuples), strict=True
        ):
            row = {
                "d": len(tuples.models),
                "models": ",".join(models[m].name for m in tuples.models),
            }
            for m, c in zip(tuples.models, concepts, strict=True):
                concept = models[m].candidates.iloc[c]
                for key in ("layer", "head", "concept", "unit", "rank"):
                    row[f"{models[m].name}_{key}"] = int(concept[key])
            rows.append({**row, "r_score": score, "null_mean": null})
    columns = ["d", "models"] + [
        f"{m.name}_{key}" for m in models for key in ("layer", "head", "concept", "unit", "rank")
    ]
    table = pd.DataFrame(rows, columns=[*columns, "r_score", "null_mean"])
    table = table.sort_values(["d", "r_score"], ascending=[False, False], ignore_index=True)
    table.insert(0, "tuple", np.arange(len(table)))
    return table.astype({c: "Int64" for c in columns[2:]})


def layer_links(models: Sequence[Model], table: pd.DataFrame) -> pd.DataFrame:
    """How many Rosetta tuples link each pair of layers of two models (Figure 4.7)."""
    counts: dict[tuple, int] = {}
    for row in table.to_dict("records"):  # by column name: a model's may have a "-"
        members = [m.name for m in models if not pd.isna(row[f"{m.name}_layer"])]
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                key = (a, row[f"{a}_layer"], b, row[f"{b}_layer"])
                counts[key] = counts.get(key, 0) + 1
    return pd.DataFrame(
        [(*key, n) for key, n in sorted(counts.items())],
        columns=["model_a", "layer_a", "model_b", "layer_b", "tuples"],
    )


def total_tuples(sizes: Sequence[int], d: int) -> int:
    """All d-tuples of concepts from d different models."""
    return sum(math.prod(c) for c in itertools.combinations(sizes, d))


def summary(
    models: Sequence[Model],
    found: Sequence[Tuples],
    null_found: Sequence[Sequence[Tuples]],
    mean_all: float,
    mean_all_null: float,
    settings: RosettaSettings,
) -> pd.DataFrame:
    """Per d: Rosetta tuples found, their share of all d-tuples, their mean R-score,
    and the same under the null (mean over permutations)."""
    sizes = [len(m.supports) for m in models]
    longest = min(settings.max_d or len(models), len(models))
    table = pd.DataFrame([_summary_row(d, found, null_found, sizes) for d in range(2, longest + 1)])
    table["mean_r_all_full_tuples"] = mean_all
    table["mean_r_all_full_tuples_null"] = mean_all_null
    table["delta"] = settings.delta
    return table


def _summary_row(d: int, found, null_found, sizes) -> dict:
    def count(tuples_list):
        return sum(len(t.concepts) for t in tuples_list if len(t.models) == d)

    def mean_r(tuples_list):
        scores = [t.scores for t in tuples_list if len(t.models) == d]
        return float(np.concatenate(scores).mean()) if scores else float("nan")

    total = total_tuples(sizes, d)
    null_counts = [count(n) for n in null_found]
    return {
        "d": d,
        "tuples": count(found),
        "share_above_delta": count(found) / total,
        "mean_r": mean_r(found),
        "tuples_null": float(np.mean(null_counts)) if null_counts else float("nan"),
        "share_above_delta_null": float(np.mean(null_counts)) / total
        if null_counts
        else float("nan"),
        "all_tuples": total,
    }


def role_scores(
    models: Sequence[Model],
    found: Sequence[Tuples],
    truth: np.ndarray,
    roles: Sequence[str],
    label: str,
    chunk: int = 256,
) -> pd.DataFrame:
    """Per role, the best mean IoU with the role's masks (over the videos where it is
    visible) of any tuple's intersection of supports, and of any tuple's union; NaN for
    a role visible in no clip. ``truth`` is (videos, roles, *grid)."""
    visible = truth.any(axis=(2, 3, 4))  # (videos, roles)
    shown = np.maximum(visible.sum(0), 1)
    best = np.full((2, len(roles)), np.nan)
    for tuples in found:
        for start in range(0, len(tuples.concepts), chunk):
            rows = tuples.concepts[start : start + chunk]
            parts = [models[m].masks[rows[:, k]] for k, m in enumerate(tuples.models)]
            for kind, combined in enumerate(
                (np.logical_and.reduce(parts), np.logical_or.reduce(parts))
            ):
                both = combined[:, :, None], truth[None]  # (tuples, videos, roles, *grid)
                inter = (both[0] & both[1]).sum(axis=(3, 4, 5))
                union = (both[0] | both[1]).sum(axis=(3, 4, 5))
                mean = (inter / np.maximum(union, 1) * visible).sum(1) / shown
                best[kind] = np.fmax(best[kind], mean.max(0))
    best[:, ~visible.any(0)] = np.nan
    return pd.DataFrame(
        {"role": roles, "which": label, "intersection_iou": best[0], "union_iou": best[1]}
    )


def rosetta(
    named: Sequence[tuple[str, str, str]],
    settings: RosettaSettings,
    ground_truth: str | None = None,
) -> dict[str, pd.DataFrame]:
    """The Rosetta tables of models given as (name, units store, CRIS table)."""
    units = {name: open_units(path) for name, path, _ in named}
    cris = {name: pd.read_csv(path, sep="\t") for name, _, path in named}
    shared = sorted(set.intersection(*(set(u.video_ids) for u in units.values())))
    if not shared:
        raise ValueError("rosetta: the models share no video (each skipped different ones)")
    grids = [units[name].store["unit_tokens"].shape[-3:] for name, _, _ in named]
    grid = common_grid(grids, settings.grid)
    print(
        f"rosetta: {len(named)} models, {len(shared)} shared videos, grid {grid}", file=sys.stderr
    )
    models = []
    for name, _, _ in tqdm(named, desc="supports", unit="model"):
        chosen = candidates(cris[name], settings.epsilon)
        masks = supports_on_grid(units[name], chosen, shared, grid)
        models.append(Model(name, chosen, Supports.from_masks(masks), masks))
    supports = [m.supports for m in models]
    found = mine(supports, settings.delta, settings.max_d)
    rng = np.random.default_rng(settings.seed)
    orders = [
        [np.arange(len(shared))] + [rng.permutation(len(shared)) for _ in models[1:]]
        for _ in range(settings.permutations)
    ]
    null_supports = [
        [s.permuted(o) for s, o in zip(supports, order, strict=True)] for order in orders
    ]
    null_found = [
        mine(s, settings.delta, settings.max_d)
        for s in tqdm(null_supports, desc="permutation null", unit="permutation")
    ]

    def null_mean(tuples: Tuples) -> np.ndarray:
        if not null_supports:
            return np.full(len(tuples.concepts), np.nan)
        return np.mean(
            [tuple_scores(s, tuples.models, tuples.concepts) for s in null_supports], axis=0
        )

    table = tuple_table(models, found, null_mean)
    mean_all = mean_tuple_score(supports, rng)
    mean_null = (
        float(np.mean([mean_tuple_score(s, rng) for s in null_supports]))
        if null_supports
        else float("nan")
    )
    tables = {
        "concepts": table,
        "layers": layer_links(models, table),
        "summary": summary(models, found, null_found, mean_all, mean_null, settings),
    }
    if ground_truth:
        truth_store = open_store(ground_truth, "ground_truth")
        first = units[named[0][0]]
        decoded = {Path(p).stem: p for p in first.decode_stores}
        truth = np.stack(
            [role_masks_on_grid(truth_store, v, open_decoded(decoded[v]), grid) for v in shared]
        )
        roles = truth_store.attrs["roles"]
        null_roles = [
            role_scores(
                [
                    Model(m.name, m.candidates, s, m.masks[:, o])
                    for m, s, o in zip(models, ns, order, strict=True)
                ],
                nf,
                truth,
                roles,
                "null",
            )
            for ns, nf, order in zip(null_supports, null_found, orders, strict=True)
        ]
        observed = role_scores(models, found, truth, roles, "rosetta")
        null = (
            pd.concat(null_roles)
            .groupby("role", sort=False, as_index=False)
            .mean(numeric_only=True)
            if null_roles
            else observed.assign(intersection_iou=np.nan, union_iou=np.nan)
        )
        tables["roles"] = pd.concat([observed, null.assign(which="null (mean)")], ignore_index=True)
    return tables


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument(
        "--model",
        nargs=3,
        action="append",
        required=True,
        metavar=("NAME", "UNITS", "CRIS"),
        help="a model: its name, units store and CRIS importance table (repeat per model)",
    )
    parser.add_argument("--ground-truth", help="the demo's ground truth: role scores")
    parser.add_argument("--concepts", required=True, help="rosetta_concepts.tsv")
    parser.add_argument("--layers", required=True, help="rosetta_layers.tsv")
    parser.add_argument("--summary", required=True, help="rosetta_summary.tsv")
    parser.add_argument("--roles", help="rosetta_roles.tsv (with --ground-truth)")


def run(args: argparse.Namespace) -> None:
    if len(args.model) < 2:
        sys.exit("videoconcepts rosetta: error: give two models or more (--model, repeated)")
    if bool(args.ground_truth) != bool(args.roles):
        sys.exit("videoconcepts rosetta: error: --ground-truth and --roles go together")
    tables = rosetta([tuple(m) for m in args.model], args.settings, args.ground_truth)
    for name in ("concepts", "layers", "summary", "roles"):
        path = getattr(args, name)
        if path:
            write_table(tables[name], path, "%.4f")
    print(tables["summary"].to_string(index=False), file=sys.stderr)
    if "roles" in tables:
        print(tables["roles"].to_string(index=False), file=sys.stderr)
