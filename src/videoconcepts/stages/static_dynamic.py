"""static_dynamic: how much of each layer, head and concept encodes appearance and how
much encodes dynamics (paper 002, ch. 3), and what removing either does to the model.

Each video is shown in several versions: itself, restyled copies (the sample sheet's
``styled`` copies where it has them, else :func:`methods.static_dynamic.restyle`), and
``pairs`` pairs of frame shufflings. A dynamic pair is (the video, a copy), a static pair
(one shuffling, the other). Per version and analysed layer the stage keeps the
globally pooled residual stream (units: channels), the pooled keys of each head (units:
the head's channels) and each concept's response (its centroid's best cosine similarity
with any token's key, so its presence anywhere in the clip); correlations over pairs
give eq. 3.1 to 3.3 for all three. The same measures on the same architecture with
random weights are the control. Unit removal (§3.5.1) zeroes the most static, the most
dynamic or random channels of a layer's residual stream (equal counts) and scores the
unchanged clips.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from videoconcepts.methods.decoding import DecodeSettings, decode_clip
from videoconcepts.methods.objectives import get_metric
from videoconcepts.methods.static_dynamic import (
    CLASSES,
    FACTORS,
    bias,
    class_counts,
    layer_metric,
    removal_order,
    restyle,
    shuffle_pairs,
    unit_classes,
    unit_correlations,
)
from videoconcepts.models import ModelAdapter, load_adapter
from videoconcepts.models.random_checkpoints import randomise_weights
from videoconcepts.plan.samples import load_samples, styled_paths
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stages.targets import TargetSettings
from videoconcepts.stores.base import atomic_store, write_array, write_table
from videoconcepts.stores.concepts import open_concepts
from videoconcepts.stores.decode import open_decoded, split_decoded
from videoconcepts.stores.static_dynamic import (
    CONCEPT_COLUMNS,
    KIND,
    LAYER_COLUMNS,
    REMOVAL_COLUMNS,
    UNIT_COLUMNS,
    VERSION_COLUMNS,
)
from videoconcepts.stores.targets import read_targets

HELP = "static and dynamic units per layer, head and concept; unit removal"


@dataclass(frozen=True)
class StaticDynamicSettings:
    layers: list[int]  # the analysed layers
    head_kind: str  # the head features the concepts were found in
    pairs: int  # static pairs per video; restyled copies per video without styled copies
    threshold: float  # lambda of eq. 3.3
    removal_layers: list[int]
    removal_fractions: list[float]
    random_repeats: int  # random-unit removals per layer and fraction
    random_weights: bool  # the random-weights control
    seed: int


Settings = StaticDynamicSettings


@dataclass(frozen=True)
class Pairs:
    """Which versions of a video make its pairs: 0 is the video, 1..copies its restyled
    copies, then each static pair's two shufflings."""

    copies: int
    shuffles: int

    @property
    def versions(self) -> list[str]:
        styled = [f"styled-{k}" for k in range(1, self.copies + 1)]
        shuffled = [f"shuffled-{p}{s}" for p in range(1, self.shuffles + 1) for s in "ab"]
        return ["original", *styled, *shuffled]

    @property
    def dynamic(self) -> list[tuple[int, int]]:
        return [(0, k) for k in range(1, self.copies + 1)]

    @property
    def static(self) -> list[tuple[int, int]]:
        first = 1 + self.copies
        return [(first + 2 * p, first + 2 * p + 1) for p in range(self.shuffles)]


def styled_copies(samples: str | None, ids: Sequence[str]) -> dict[str, list[str]]:
    """Each video's stylized copies from the sheet's ``styled`` column (empty: none);
    every video must list as many."""
    if not samples:
        return {}
    sheet = load_samples(samples).set_index("id")
    copies = {v: styled_paths(sheet.loc[v, "styled"]) for v in ids}
    counts = {len(paths) for paths in copies.values()}
    if counts == {0}:
        return {}
    if len(counts) > 1:
        raise ValueError(
            f"{samples}: the styled column lists {sorted(counts)} copies for different "
            "videos; give every video the same number of stylized copies"
        )
    return copies


def restyled_versions(
    store: Path, copies: list[str], settings: StaticDynamicSettings, rng: np.random.Generator
) -> np.ndarray:
    """A video's versions (see :class:`Pairs`), (versions, T, H, W, 3) uint8. Styled
    copies are decoded exactly as the video was, and must give the same source frames."""
    decoded = open_decoded(store)
    frames = decoded["frames"][...]
    if copies:
        decode = DecodeSettings(**decoded.attrs["settings"])
        styled = []
        for path in copies:
            clip = decode_clip(path, decode, decoded.attrs["backend"])
            if clip.indices.tolist() != decoded.attrs["sampled_indices"]:
                raise ValueError(
                    f"{path}: this stylized copy of {decoded.attrs['source_path']} samples "
                    f"source frames {clip.indices.tolist()}, the video "
                    f"{decoded.attrs['sampled_indices']}: a copy must have the video's frames"
                )
            styled.append(clip.frames)
    else:
        styled = [restyle(frames, rng) for _ in range(settings.pairs)]
    orders = shuffle_pairs(len(frames), settings.pairs, rng).reshape(-1, len(frames))
    return np.stack([frames, *styled, *(frames[order] for order in orders)])


@torch.inference_mode()
def pooled_features(
    adapter: ModelAdapter,
    clips: np.ndarray,
    settings: StaticDynamicSettings,
    centroids: list[torch.Tensor] | None,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Per clip (B, T, H, W, 3): pooled residual (B, L, D), pooled head features
    (B, L, heads, head_dim) and, given each layer's unit centroids (heads, C, head_dim),
    each concept's best cosine similarity with a token (B, L, heads, C); and the
    model's outputs (B, columns)."""
    out: dict[str, list[torch.Tensor]] = {"residual": [], "heads": [], "concepts": [], "logits": []}
    for start in range(0, len(clips), batch_size):
        batch = torch.from_numpy(clips[start : start + batch_size])
        capture = adapter.capture(batch, settings.layers, (settings.head_kind,), residual=True)
        keys = capture.heads[settings.head_kind]  # (B, L, heads, T', H', W', hd)
        out["logits"].append(capture.logits)
        out["residual"].append(capture.residual.mean(dim=(2, 3, 4)))
        out["heads"].append(keys.mean(dim=(3, 4, 5)))
        if centroids is not None:
            tokens = torch.nn.functional.normalize(keys.flatten(3, 5), dim=-1)
            out["concepts"].append(
                torch.stack(
                    [
                        torch.einsum("bhnd,hcd->bhcn", tokens[:, i], c).amax(-1)
                        for i, c in enumerate(centroids)
                    ],
                    1,
                )
            )
    return {k: torch.cat(v).cpu().numpy() for k, v in out.items() if v}


def paired(features: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Features (V, versions, ...) to the first and second members of every pair of every
    video, each (V * pairs, ...)."""
    first = features[:, [a for a, _ in pairs]]
    second = features[:, [b for _, b in pairs]]
    return first.reshape(-1, *features.shape[2:]), second.reshape(-1, *features.shape[2:])


def correlations(features: np.ndarray, pairs: Pairs) -> dict[str, np.ndarray]:
    """s_static and s_dynamic (eq. 3.2) of every unit of features (V, versions, ...)."""
    return {
        "static": unit_correlations(*paired(features, pairs.static)),
        "dynamic": unit_correlations(*paired(features, pairs.dynamic)),
    }


def unit_tables(
    name: str, weights: str, features: dict[str, np.ndarray], pairs: Pairs, settings: Settings
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """(layer metric rows, unit class rows, the residual stream's correlations (L, D))."""
    layer_rows, unit_rows = [], []
    s_res = correlations(features["residual"], pairs)
    s_head = correlations(features["heads"], pairs)
    for stream, s, head_axis in (("residual", s_res, False), ("heads", s_head, True)):
        metric = layer_metric(s["static"], s["dynamic"])
        counts = class_counts(unit_classes(s["static"], s["dynamic"], settings.threshold))
        for i, layer in enumerate(settings.layers):
            heads = range(s["static"].shape[1]) if head_axis else [-1]
            for head in heads:
                at = (i, head) if head_axis else i
                unit_rows.append(
                    {
                        "model": name,
                        "weights": weights,
                        "stream": stream,
                        "layer": layer,
                        "head": head,
                        "units": s["static"].shape[-1],
                        "S_static": metric["S_static"][at],
                        "S_dynamic": metric["S_dynamic"][at],
                        "N_static": metric["N_static"][at],
                        "N_dynamic": metric["N_dynamic"][at],
                        **{c: int(counts[c][at]) for c in CLASSES},
                    }
                )
            if stream == "residual":
                for factor in (*FACTORS, "identical"):
                    layer_rows.append(
                        {
                            "model": name,
                            "weights": weights,
                            "layer": layer,
                            "factor": factor,
                            "S_F": metric[f"S_{factor}"][i] if factor != "identical" else 1.0,
                            "N_F": metric[f"N_{factor}"][i],
                            "units": s["static"].shape[-1],
                        }
                    )
    return (
        pd.DataFrame(layer_rows, columns=LAYER_COLUMNS),
        pd.DataFrame(unit_rows, columns=UNIT_COLUMNS),
        s_res,
    )


def version_table(
    name: str,
    weights: str,
    logits: np.ndarray,
    targets: np.ndarray,
    metric: str,
    pairs: Pairs,
    has_classes: bool,
) -> pd.DataFrame:
    """Accuracy and mean target score of the model on each kind of version (the videos,
    their restyled copies, their shufflings), from its outputs (V, versions, columns):
    how much it still solves the task once the look, or the frame order, is gone."""
    kinds = [version.split("-")[0] for version in pairs.versions]
    rows = []
    for kind in dict.fromkeys(kinds):
        at = [i for i, k in enumerate(kinds) if k == kind]
        out = torch.from_numpy(logits[:, at].reshape(-1, logits.shape[-1]))
        target = torch.as_tensor(np.repeat(targets, len(at)), dtype=torch.long)
        accuracy = float((out.argmax(-1) == target).float().mean()) if has_classes else np.nan
        score = float(get_metric(metric)(out, target).mean())
        rows.append((name, weights, kind, len(out), accuracy, score))
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)


def concept_table(
    name: str, responses: np.ndarray, n_concepts: np.ndarray, pairs: Pairs, settings: Settings
) -> pd.DataFrame:
    """Every concept's static and dynamic correlation, bias and eq. 3.3 class, from its
    responses (V, versions, L, heads, C) and the concept counts (L, heads)."""
    s = correlations(responses, pairs)
    classes = unit_classes(s["static"], s["dynamic"], settings.threshold)
    rows = [
        {
            "model": name,
            "layer": layer,
            "head": head,
            "concept": c,
            "s_static": s["static"][i, head, c],
            "s_dynamic": s["dynamic"][i, head, c],
            "bias": bias(s["static"][i, head, c], s["dynamic"][i, head, c]),
            "class": CLASSES[classes[i, head, c]],
        }
        for i, layer in enumerate(settings.layers)
        for head in range(n_concepts.shape[1])
        for c in range(int(n_concepts[i, head]))
    ]
    return pd.DataFrame(rows, columns=CONCEPT_COLUMNS)


@contextmanager
def zeroed_channels(adapter: ModelAdapter, layer: int, keep: torch.Tensor) -> Iterator[None]:
    """Multiply the residual stream after block ``layer`` by ``keep`` (hidden,), 0 for a
    removed channel, at every token."""

    def hook(_module, _inputs, output):
        if isinstance(output, tuple):
            return (output[0] * keep.to(output[0].dtype), *output[1:])
        return output * keep.to(output.dtype)

    handle = adapter.block(layer).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.inference_mode()
def scored(
    adapter: ModelAdapter, clips: np.ndarray, targets: torch.Tensor, metric: str, batch: int
) -> tuple[float, float]:
    """(accuracy, mean target score) of the model on clips (V, T, H, W, 3); accuracy is
    NaN for a model without classes."""
    logits = torch.cat(
        [
            adapter.logits(torch.from_numpy(clips[s : s + batch]))
            for s in range(0, len(clips), batch)
        ]
    ).cpu()
    score = float(get_metric(metric)(logits, targets).mean())
    accuracy = (
        float((logits.argmax(-1) == targets).float().mean()) if adapter.has_classes else np.nan
    )
    return accuracy, score


def unit_removal(
    name: str,
    adapter: ModelAdapter,
    clips: np.ndarray,
    targets: np.ndarray,
    metric: str,
    s_residual: dict[str, np.ndarray],
    settings: Settings,
    batch_size: int,
) -> pd.DataFrame:
    """§3.5.1: accuracy and target score with the first round(f * D) units of each order
    zeroed (the most static, the most dynamic, random draws), for every removal layer
    and fraction f; fraction 0 is the unchanged model."""
    target = torch.tensor(targets, dtype=torch.long)
    accuracy0, score0 = scored(adapter, clips, target, metric, batch_size)
    rng = np.random.default_rng(settings.seed)
    rows = []
    work = [
        (layer, order, repeat)
        for layer in settings.removal_layers
        for order, repeats in (("static", 1), ("dynamic", 1), ("random", settings.random_repeats))
        for repeat in range(repeats)
    ]
    n_units = adapter.hidden_size
    for layer, order, repeat in tqdm(work, desc=f"unit removal {name}"):
        i = settings.layers.index(layer)
        ranked = (
            rng.permutation(n_units)
            if order == "random"
            else removal_order(s_residual["static"][i], s_residual["dynamic"][i], order)
        )
        rows.append((layer, order, repeat, 0.0, 0, accuracy0, score0))
        for fraction in settings.removal_fractions:
            count = int(round(fraction * n_units))
            keep = torch.ones(n_units, device=adapter.device)
            keep[torch.as_tensor(ranked[:count])] = 0
            with zeroed_channels(adapter, layer, keep):
                accuracy, score = scored(adapter, clips, target, metric, batch_size)
            rows.append((layer, order, repeat, fraction, count, accuracy, score))
    table = pd.DataFrame(rows, columns=REMOVAL_COLUMNS[1:])
    return table.assign(model=name)[list(REMOVAL_COLUMNS)]


def static_dynamic(
    name: str,
    decode_stores: Sequence[str | Path],
    concept_stores: Sequence[str | Path],
    targets_path: str | Path,
    samples: str | None,
    scoring: TargetSettings,
    settings: Settings,
    runtime: Runtime,
    out: str | Path,
) -> dict[str, pd.DataFrame]:
    """Write the store of pooled features per video, version and layer (trained model,
    and the random-weights control) and return the tables."""
    bad = [layer for layer in settings.removal_layers if layer not in settings.layers]
    if bad:
        raise ValueError(
            f"static_dynamic.removal_layers {bad} are not analysed layers ({settings.layers})"
        )
    ok, ids, _ = split_decoded(decode_stores)
    if len(ids) < 3:
        raise ValueError(f"static_dynamic needs 3 usable videos or more, got {len(ids)}")
    copies = styled_copies(samples, ids)
    pairs = Pairs(len(next(iter(copies.values()))) if copies else settings.pairs, settings.pairs)
    concepts = [open_concepts(p) for p in concept_stores]
    by_layer = {int(c.attrs["layer"]): c for c in concepts}
    if sorted(by_layer) != sorted(settings.layers):
        raise ValueError(f"concept stores of layers {sorted(by_layer)}, expected {settings.layers}")
    n_concepts = np.stack([by_layer[layer]["n_concepts"][...] for layer in settings.layers])
    centroids = [
        torch.nn.functional.normalize(
            torch.nan_to_num(torch.from_numpy(by_layer[layer]["centroids"][...])), dim=-1
        )
        for layer in settings.layers
    ]
    models = {"trained": load_adapter(scoring.model, runtime.device, runtime.precision)}
    if settings.random_weights:
        control = load_adapter(scoring.model, runtime.device, runtime.precision)
        randomise_weights(control.model, settings.seed)
        models["random"] = control
    centroids = [c.to(models["trained"].device) for c in centroids]
    features: dict[str, dict[str, list[np.ndarray]]] = {w: {} for w in models}
    originals = []
    for v, store in enumerate(tqdm(ok, desc=f"static_dynamic {name}")):
        rng = np.random.default_rng([settings.seed, v])
        clips = restyled_versions(store, copies.get(ids[v], []), settings, rng)
        originals.append(clips[0])
        for weights, adapter in models.items():
            found = pooled_features(
                adapter,
                clips,
                settings,
                centroids if weights == "trained" else None,
                runtime.batch_size,
            )
            for key, value in found.items():
                features[weights].setdefault(key, []).append(value)
    stacked = {w: {k: np.stack(v) for k, v in f.items()} for w, f in features.items()}
    targets, _ = read_targets(targets_path, ids)
    layers, units, versions, s_residual = {}, {}, {}, {}
    for weights, found in stacked.items():
        layers[weights], units[weights], s_residual[weights] = unit_tables(
            name, weights, found, pairs, settings
        )
        versions[weights] = version_table(
            name,
            weights,
            found.pop("logits"),
            targets,
            scoring.metric,
            pairs,
            models[weights].has_classes,
        )
    tables = {
        "layers": pd.concat(layers.values(), ignore_index=True),
        "units": pd.concat(units.values(), ignore_index=True),
        "concepts": concept_table(
            name, stacked["trained"]["concepts"], n_concepts, pairs, settings
        ),
        "versions": pd.concat(versions.values(), ignore_index=True),
        "removal": unit_removal(
            name,
            models["trained"],
            np.stack(originals),
            targets,
            scoring.metric,
            s_residual["trained"],
            settings,
            runtime.batch_size,
        ),
    }
    with atomic_store(
        out,
        KIND,
        model=name,
        video_ids=ids,
        layers=settings.layers,
        versions=pairs.versions,
        dynamic_pairs=pairs.dynamic,
        static_pairs=pairs.static,
        restyled_by="the sample sheet's styled copies"
        if copies
        else "restyle (a colour and texture transform standing in for video stylization)",
        decode_stores=[str(p) for p in ok],
        concept_stores=[str(p) for p in concept_stores],
        settings=asdict(settings),
    ) as group:
        for weights, found in stacked.items():
            for key, value in found.items():
                write_array(group, f"{weights}_{key}", value.astype(np.float32))
    return tables


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the model's name in the run")
    parser.add_argument("--out", required=True, help="the store (.zarr)")
    for table in ("layers", "units", "concepts", "versions", "removal"):
        parser.add_argument(f"--{table}", required=True, help=f"the {table} table (.tsv)")
    parser.add_argument("--targets", required=True, help="the targets stage's table")
    parser.add_argument("--samples", default=None, help="sample sheet (its styled column)")
    parser.add_argument("--concepts-stores", nargs="+", required=True)
    parser.add_argument(
        "--scoring", required=True, type=typed_json(TargetSettings), help="model, metric, target"
    )
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    Runtime.add_arguments(parser)
    parser.add_argument("decode_stores", nargs="+")


def run(args: argparse.Namespace) -> None:
    runtime = Runtime.from_args(args)
    tables = static_dynamic(
        args.name,
        args.decode_stores,
        args.concepts_stores,
        args.targets,
        args.samples,
        args.scoring,
        args.settings,
        runtime,
        args.out,
    )
    for key, table in tables.items():
        write_table(table, getattr(args, key), "%.6g")
    shown = tables["layers"].pivot_table(index=["weights", "layer"], columns="factor", values="N_F")
    print(shown.to_string(), file=sys.stderr)
    print(tables["versions"].to_string(index=False), file=sys.stderr)
    removal = tables["removal"]
    # A model without classes has no accuracy: its summary is the family metric.
    shown_column = "score" if removal["accuracy"].isna().all() else "accuracy"
    summary = removal.groupby(["layer", "order", "fraction"])[shown_column].mean()
    print(summary.to_string(), file=sys.stderr)
