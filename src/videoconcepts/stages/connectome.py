"""connectome: Visual Concept Connectomes (paper 002, §5.3) of one model, per class.

Segments come top-down from the feature stores' residual tokens
(:func:`methods.connectome.top_down_segments`). Each segment is shown to the model
alone: the clip's pixels outside the segment's tokens are blanked to the model's mean
colour (zero after normalisation, the paper's choice; it works the same for every
family, where removing tokens from attention would not), and its features are pooled
over its own tokens, so the blank area does not dominate the pooled vector. A unique
mask is run once; one pass gives every selected layer.

Per class (the target class of each video; for a model without classes the sheet's
label) the stage finds each layer's concepts, trains CAVs against random segments of the
other classes' videos, and takes the ITCAV gradients of every adjacent pair of selected
layers on the upper concepts' segments, and of the target score (the logit for
classifiers, the family's metric otherwise) on the class's videos for the top layer's
edges into the class node (TCAV). Validation: eq. 5.8 against eq. 5.9, and concept
suppression (z - eps q / |q|) against random directions.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from tqdm import tqdm

from videoconcepts.methods.connectome import (
    Pruning,
    average_path_strength,
    cav,
    edge_test,
    layer_concepts,
    positive_share,
    top_down_segments,
)
from videoconcepts.methods.objectives import get_metric
from videoconcepts.models import ModelAdapter, load_adapter
from videoconcepts.runtime import Runtime, typed_json
from videoconcepts.stages.targets import TargetSettings
from videoconcepts.stores.base import atomic_store, write_array, write_table
from videoconcepts.stores.connectome import (
    CLASS_NODE,
    EDGE_COLUMNS,
    FIDELITY_COLUMNS,
    KIND,
    LAYER_COLUMNS,
    NODE_COLUMNS,
    TABLES,
    VALIDATION_COLUMNS,
)
from videoconcepts.stores.decode import open_decoded
from videoconcepts.stores.features import open_features
from videoconcepts.stores.targets import read_targets

HELP = "Visual Concept Connectomes per class: layer concepts and ITCAV edges"


@dataclass(frozen=True)
class ConnectomeSettings:
    layers: list[int]  # selected layers, ascending
    max_segments: int  # children per parent: 2..max by silhouette
    min_tokens: int
    compactness: float
    clusters: int  # k-means clusters per layer before pruning
    pruning: dict  # eq. 5.5's constants A, K, C, Q, B, nu
    random_sets: int
    cav_alpha: float
    alpha: float  # the t-test's level for keeping an edge
    eps: list[float]  # suppression strengths, times the layer's mean token norm
    fidelity_concepts: int  # concepts (and random directions) suppressed per class and layer
    seed: int


Settings = ConnectomeSettings


@dataclass
class Segments:
    """Every segment of every video, one row each (see the store's docstring)."""

    video: np.ndarray
    layer: np.ndarray  # index into settings.layers
    number: np.ndarray
    parent: np.ndarray
    labels: list[np.ndarray]  # per selected layer, (videos, T', H', W')

    def mask(self, s: int) -> np.ndarray:
        return self.labels[self.layer[s]][self.video[s]] == self.number[s]


def read_videos(feature_stores: Sequence[str | Path], layers: list[int]):
    """(video ids, decode stores, residual tokens (videos, layers, T', H', W', D))."""
    ids, decoded, residual = [], [], []
    for path in feature_stores:
        store = open_features(path)
        have = store.attrs["layers"]
        missing = [layer for layer in layers if layer not in have]
        if missing or "residual" not in store:
            raise ValueError(
                f"{path}: connectome needs residual tokens of layers {layers}; the store "
                f"has {'layers ' + str(have) if 'residual' in store else 'no residual'}"
            )
        at = [have.index(layer) for layer in layers]
        ids += store.attrs["video_ids"]
        decoded += store.attrs["decode_stores"]
        residual += [store["residual"][v][at] for v in range(len(store.attrs["video_ids"]))]
    return ids, decoded, np.stack(residual).astype(np.float32)


def segment_videos(residual: np.ndarray, settings: Settings) -> Segments:
    """Top-down segments of every video (layers top first inside, ascending outside)."""
    n_layers = residual.shape[1]
    labels = [np.zeros((len(residual), *residual.shape[2:5]), np.int16) for _ in range(n_layers)]
    rows: list[tuple[int, int, int, int]] = []
    first: dict[tuple[int, int], int] = {}  # (video, layer) -> the row of its segment 1
    for v in tqdm(range(len(residual)), desc="segments"):
        found = top_down_segments(
            [residual[v, i] for i in reversed(range(n_layers))],
            settings.max_segments,
            settings.compactness,
            settings.min_tokens,
            settings.seed,
        )
        for depth, (volume, parents) in enumerate(found):
            i = n_layers - 1 - depth
            labels[i][v] = volume
            first[(v, i)] = len(rows)
            for number, parent in enumerate(parents, 1):
                up = first[(v, i + 1)] + parent if parent >= 0 else -1
                rows.append((v, i, number, up))
    video, layer, number, parent = (np.array(c, np.int64) for c in zip(*rows, strict=True))
    return Segments(video, layer, number, parent, labels)


def blanked(frames: np.ndarray, mask: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """The clip (T, H, W, 3) with pixels outside the token mask (T', H', W') set to
    ``fill``; each token covers its block of frames and pixels exactly."""
    reps = [f // m for f, m in zip(frames.shape[:3], mask.shape, strict=True)]
    pixels = mask.repeat(reps[0], 0).repeat(reps[1], 1).repeat(reps[2], 2)
    return np.where(pixels[..., None], frames, fill).astype(np.uint8)


def mean_colour(adapter: ModelAdapter) -> np.ndarray:
    """The pixel value the model's normalisation maps to 0: what a blanked pixel shows."""
    return np.round(adapter.mean.numpy() * 255)


def segment_features(
    adapter: ModelAdapter,
    segments: Segments,
    frames: list[np.ndarray],
    targets: np.ndarray,
    settings: Settings,
    metric: str,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's clip shown alone: its features at its layer pooled over its tokens
    (segments, D), and the target score of the clip (segments,). Identical masks (a
    parent that was not split) run once."""
    fill = mean_colour(adapter)
    unique: dict[tuple[int, bytes], list[int]] = {}
    for s in range(len(segments.video)):
        unique.setdefault((int(segments.video[s]), segments.mask(s).tobytes()), []).append(s)
    pooled = np.zeros((len(segments.video), adapter.hidden_size), np.float32)
    scores = np.zeros(len(segments.video), np.float32)
    groups = list(unique.values())
    for start in tqdm(range(0, len(groups), batch_size), desc="segment clips"):
        chunk = groups[start : start + batch_size]
        masks = [segments.mask(g[0]) for g in chunk]
        videos = [int(segments.video[g[0]]) for g in chunk]
        clips = np.stack([blanked(frames[v], m, fill) for v, m in zip(videos, masks, strict=True)])
        capture = adapter.capture(torch.from_numpy(clips), settings.layers, (), residual=True)
        target = torch.as_tensor(targets[videos])
        score = get_metric(metric)(capture.logits.cpu(), target).numpy()
        for row, group in enumerate(chunk):
            weights = torch.as_tensor(masks[row].reshape(-1), dtype=torch.float32)
            for s in group:
                tokens = capture.residual[row, segments.layer[s]].flatten(0, 2).cpu()
                pooled[s] = (weights @ tokens / weights.sum()).numpy()
                scores[s] = score[row]
    return pooled, scores


def lower_gradients(
    adapter: ModelAdapter,
    clips: np.ndarray,
    lower: int,
    objective,
    batch_size: int,
    bf16: bool = False,
) -> np.ndarray:
    """Gradients of ``objective(pixels, rows)`` (summed over the batch) with respect to
    the residual stream after block ``lower``, summed over every token of the clip, the
    special tokens' included: the derivative of the objective along a shift of the whole
    stream, (clips, D). A CLS readout sees its last block only through the CLS token,
    so patch tokens alone would give it no gradient there. In fp32 unless ``bf16``."""
    out = []
    for start in range(0, len(clips), batch_size):
        batch = torch.from_numpy(clips[start : start + batch_size])
        rows = torch.arange(start, start + len(batch))
        seen: dict[str, torch.Tensor] = {}

        def leaf(_module, _inputs, output, seen=seen):
            raw = output[0] if isinstance(output, tuple) else output
            seen["leaf"] = raw.detach().requires_grad_(True)
            return (seen["leaf"], *output[1:]) if isinstance(output, tuple) else seen["leaf"]

        handle = adapter.block(lower).register_forward_hook(leaf)
        try:
            # fp32 whatever the adapter's precision: eq. 5.7 counts signs, and bf16 flips
            # 7 % of them on a VideoMAE-B-sized model (``bf16``: benchmarks/connectome.py)
            autocast = torch.autocast(adapter.device.type, dtype=torch.bfloat16, enabled=bf16)
            with torch.enable_grad(), autocast:
                value = objective(adapter.preprocess(batch), rows)
                (grad,) = torch.autograd.grad(value, seen["leaf"])
        finally:
            handle.remove()
        # a clip's sequences are consecutive rows (batch-major), whatever the family
        out.append(grad.float().reshape(len(batch), -1, grad.shape[-1]).sum(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, adapter.hidden_size), np.float32)


def concept_objective(
    adapter: ModelAdapter, upper: int, masks: torch.Tensor, centres: torch.Tensor
):
    """Minus the distance between each clip's upper-layer features, pooled over its
    segment (masks (clips, N)), and its concept's centroid (centres (clips, D)): eq. 5.6."""
    seen: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        seen["upper"] = output[0] if isinstance(output, tuple) else output

    def objective(pixels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        handle = adapter.block(upper).register_forward_hook(keep)
        try:
            adapter.outputs(pixels)
        finally:
            handle.remove()
        tokens = adapter.patch_tokens(seen["upper"], "residual", len(pixels)).float()
        m = masks[rows].to(tokens.device)
        pooled = (m[..., None] * tokens).sum(1) / m.sum(1, keepdim=True)
        return -(pooled - centres[rows].to(tokens.device)).norm(dim=1).sum()

    return objective


def score_objective(adapter: ModelAdapter, metric: str, targets: torch.Tensor):
    """The summed target score of the clips: TCAV's logit for a classifier."""

    def objective(pixels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        outputs = adapter.outputs(pixels).float()
        return get_metric(metric)(outputs, targets[rows].to(outputs.device)).sum()

    return objective


@dataclass
class Concepts:
    """Every class's concept nodes: the nodes table's rows, their centroids (nodes, D)
    and CAVs (nodes, R, D), each segment's node (-1: none), and per (class, layer) the
    node rows and the random concepts' CAVs (R, D)."""

    rows: list[dict]
    centroids: np.ndarray
    cavs: np.ndarray
    of_segment: np.ndarray
    nodes: dict[tuple[str, int], list[int]]
    null_cavs: dict[tuple[str, int], np.ndarray]


def random_sets(
    pool: np.ndarray, size: int, count: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """``count`` random sets of ``size`` rows of ``pool`` (drawn with replacement only
    when the pool is smaller)."""
    replace = len(pool) < size
    return [rng.choice(pool, size, replace=replace) for _ in range(count)]


def find_concepts(
    name: str,
    segments: Segments,
    pooled: np.ndarray,
    scores: np.ndarray,
    segment_class: np.ndarray,
    settings: Settings,
) -> Concepts:
    """Eq. 5.4-5.5 per class and layer, and the CAVs of each concept and of the random
    concepts, all against random segments of the other classes' videos at that layer
    (of every video when the run has one class)."""
    pruning = Pruning(**settings.pruning)
    rng = np.random.default_rng(settings.seed)
    n_random = settings.random_sets
    rows, centroids, cavs, nodes, null_cavs = [], [], [], {}, {}
    of_segment = np.full(len(pooled), -1, np.int64)

    def cavs_of(positives: list[np.ndarray], negatives: list[np.ndarray]) -> np.ndarray:
        return np.stack(
            [
                cav(pooled[p], pooled[n], settings.cav_alpha, settings.seed + r)
                for r, (p, n) in enumerate(zip(positives, negatives, strict=True))
            ]
        )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        for c in dict.fromkeys(segment_class):
            for i, layer in enumerate(settings.layers):
                here = segments.layer == i
                own = np.flatnonzero(here & (segment_class == c))
                others = np.flatnonzero(here & (segment_class != c))
                assigned, centres = layer_concepts(
                    pooled[own], settings.clusters, pruning, settings.seed
                )
                # Random sets of a concept's mean size: R for the CAVs, and R more, each the
                # "concept" of one random CAV. A null CAV of its own random pair (not one
                # random set shared by all, as in the reference code) keeps the t-test at
                # its nominal rate (tests/methods/test_connectome.py).
                size = max(2, len(own) // max(1, len(centres)))
                pool = others if len(others) else np.flatnonzero(here)
                drawn = random_sets(pool, size, 2 * n_random, rng)
                null_cavs[(c, layer)] = cavs_of(drawn[n_random:], drawn[:n_random])
                nodes[(c, layer)] = []
                for k, centre in enumerate(centres):
                    members = own[assigned == k]
                    of_segment[members] = len(rows)
                    nodes[(c, layer)].append(len(rows))
                    nearest = members[np.argmin(np.linalg.norm(pooled[members] - centre, axis=1))]
                    rows.append(
                        {
                            "model": name,
                            "class": c,
                            "node": f"L{layer}c{k}",
                            "layer": layer,
                            "concept": k,
                            "segments": len(members),
                            "videos": len(np.unique(segments.video[members])),
                            "exemplar": int(nearest),
                            "logit_sum": float(scores[members].sum()),
                            "mean_score": float(scores[members].mean()),
                        }
                    )
                    centroids.append(centre)
                    cavs.append(cavs_of([members] * n_random, drawn[:n_random]))
    fits = (len(rows) + len(null_cavs)) * n_random
    stopped = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    print(f"CAVs: {stopped} of {fits} stopped at SGD's max_iter before its tol", file=sys.stderr)
    hidden = pooled.shape[1]
    return Concepts(
        rows,
        np.array(centroids, np.float32).reshape(-1, hidden),
        np.array(cavs, np.float32).reshape(-1, n_random, hidden),
        of_segment,
        nodes,
        null_cavs,
    )


def itcav_gradients(
    adapter: ModelAdapter,
    segments: Segments,
    frames: list[np.ndarray],
    concepts: Concepts,
    targets: np.ndarray,
    metric: str,
    settings: Settings,
    batch_size: int,
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Eq. 5.6's gradients, at each selected layer but the top, of every segment of the
    layer above that belongs to a concept (segment row -> (D,)); and TCAV's, at the top
    layer, of every video's target score (videos, D)."""
    fill = mean_colour(adapter)
    layers = settings.layers
    found: dict[int, np.ndarray] = {}
    for i in tqdm(range(len(layers) - 1), desc="ITCAV gradients"):
        rows = np.flatnonzero((segments.layer == i + 1) & (concepts.of_segment >= 0))
        if not len(rows):
            continue
        masks = np.stack([segments.mask(s) for s in rows])
        clips = np.stack(
            [blanked(frames[v], m, fill) for v, m in zip(segments.video[rows], masks, strict=True)]
        )
        objective = concept_objective(
            adapter,
            layers[i + 1],
            torch.as_tensor(masks.reshape(len(rows), -1), dtype=torch.float32),
            torch.as_tensor(concepts.centroids[concepts.of_segment[rows]]),
        )
        grads = lower_gradients(adapter, clips, layers[i], objective, batch_size)
        found.update(zip(rows.tolist(), grads, strict=True))
    objective = score_objective(adapter, metric, torch.tensor(targets))
    to_class = lower_gradients(adapter, np.stack(frames), layers[-1], objective, batch_size)
    return found, to_class


def edge_table(
    name: str,
    concepts: Concepts,
    upper_grads: dict[int, np.ndarray],
    class_grads: np.ndarray,
    video_class: np.ndarray,
    settings: Settings,
) -> pd.DataFrame:
    """Eq. 5.7 for every pair of concepts of adjacent selected layers, and TCAV from the
    top layer's concepts to the class node, each tested against the random concepts."""
    layers, rows = settings.layers, []
    for c in dict.fromkeys(video_class):
        for i, layer in enumerate(layers):
            if i + 1 < len(layers):
                uppers = [
                    (
                        concepts.rows[u]["node"],
                        layers[i + 1],
                        np.stack(
                            [upper_grads[s] for s in np.flatnonzero(concepts.of_segment == u)]
                        ),
                    )
                    for u in concepts.nodes[(c, layers[i + 1])]
                ]
            else:
                uppers = [(CLASS_NODE, -1, class_grads[video_class == c])]
            for lower in concepts.nodes[(c, layer)]:
                for target, target_layer, grads in uppers:
                    scores = positive_share(grads, concepts.cavs[lower])
                    null = positive_share(grads, concepts.null_cavs[(c, layer)])
                    p = edge_test(scores, null)
                    rows.append(
                        {
                            "model": name,
                            "class": c,
                            "source": concepts.rows[lower]["node"],
                            "target": target,
                            "source_layer": layer,
                            "target_layer": target_layer,
                            "weight": float(np.mean(scores)),
                            "null_weight": float(np.mean(null)),
                            "p_value": p,
                            "kept": bool(p < settings.alpha),
                        }
                    )
    return pd.DataFrame(rows, columns=EDGE_COLUMNS)


def write_graphs(
    nodes: pd.DataFrame, edges: pd.DataFrame, classes: Sequence[str], folder: Path
) -> np.ndarray:
    """One GraphML per class (every measured edge, with its weight, p-value and whether
    it was kept); returns each node's APS (eq. 5.8) over those weighted graphs."""
    folder.mkdir(parents=True, exist_ok=True)
    aps = np.full(len(nodes), np.nan)
    for c in classes:
        graph = nx.DiGraph(target_class=str(c))
        graph.add_node(CLASS_NODE, layer=-1, segments=0)
        mine = np.flatnonzero(nodes["class"] == c)
        for r in mine:
            graph.add_node(
                nodes.at[r, "node"],
                layer=int(nodes.at[r, "layer"]),
                segments=int(nodes.at[r, "segments"]),
            )
        for e in edges[edges["class"] == c].itertuples():
            p = float(np.nan_to_num(e.p_value, nan=1.0))
            graph.add_edge(e.source, e.target, weight=e.weight, p_value=p, kept=e.kept)
        strengths = average_path_strength(graph, CLASS_NODE)
        aps[mine] = [strengths.get(n, np.nan) for n in nodes["node"].iloc[mine]]
        nx.write_graphml(graph, folder / f"{safe_name(c)}.graphml")
    return aps


def layer_table(
    name: str, segments: Segments, video_class: np.ndarray, concepts: Concepts, settings: Settings
) -> pd.DataFrame:
    """Per class and layer: segments, the mean share of the token grid one covers (the
    paper's Figure 5.3a), and concept nodes."""
    grid = segments.labels[0][0].size
    segment_class = video_class[segments.video]
    rows = []
    for c in dict.fromkeys(video_class):
        for i, layer in enumerate(settings.layers):
            own = np.flatnonzero((segments.layer == i) & (segment_class == c))
            shares = [segments.mask(s).sum() / grid for s in own]
            rows.append(
                {
                    "model": name,
                    "class": c,
                    "layer": layer,
                    "segments": len(own),
                    "segment_share": float(np.mean(shares)) if shares else np.nan,
                    "nodes": len(concepts.nodes[(c, layer)]),
                }
            )
    return pd.DataFrame(rows)


def connectome(
    name: str,
    feature_stores: Sequence[str | Path],
    targets_path: str | Path,
    scoring: TargetSettings,
    settings: Settings,
    runtime: Runtime,
    out: str | Path,
    graphs: str | Path,
) -> dict[str, pd.DataFrame]:
    """Write the store and one GraphML per class; return the tables."""
    if len(settings.layers) < 2:
        raise ValueError(f"connectome needs two layers or more, got {settings.layers}")
    ids, decode_paths, residual = read_videos(feature_stores, settings.layers)
    targets, _ = read_targets(targets_path, ids)
    adapter = load_adapter(scoring.model, runtime.device, runtime.precision)
    if adapter.has_classes:
        video_class = np.array([adapter.class_names[t] for t in targets], dtype=object)
    else:  # the sheet's labels group the videos
        table = pd.read_csv(targets_path, sep="\t", keep_default_na=False, dtype=str)
        labels = table.set_index("video").loc[ids, "label"]
        video_class = np.array([v or "all" for v in labels], dtype=object)
    # gradients and eq. 5.9 need the target's logit, not a thresholded metric
    metric = "logit" if adapter.has_classes else scoring.metric
    frames = [open_decoded(p)["frames"][...] for p in decode_paths]
    segments = segment_videos(residual, settings)
    pooled, scores = segment_features(
        adapter, segments, frames, targets, settings, metric, runtime.batch_size
    )
    concepts = find_concepts(name, segments, pooled, scores, video_class[segments.video], settings)
    upper_grads, class_grads = itcav_gradients(
        adapter, segments, frames, concepts, targets, metric, settings, runtime.batch_size
    )
    edges = edge_table(name, concepts, upper_grads, class_grads, video_class, settings)
    nodes = pd.DataFrame(concepts.rows, columns=[c for c in NODE_COLUMNS if c != "aps"])
    nodes.insert(
        list(NODE_COLUMNS).index("aps"),
        "aps",
        write_graphs(nodes, edges, list(dict.fromkeys(video_class)), Path(graphs)),
    )
    suppression = fidelity(
        name, adapter, frames, targets, video_class, residual, concepts.centroids, nodes,
        settings, metric, runtime.batch_size,
    )  # fmt: skip
    tables = {
        "nodes": nodes,
        "edges": edges,
        "layers": graph_statistics(
            layer_table(name, segments, video_class, concepts, settings), edges
        ),
        "fidelity": suppression,
        "validation": validation(name, nodes, suppression),
    }
    with atomic_store(
        out,
        KIND,
        model=name,
        video_ids=ids,
        classes=video_class.tolist(),
        layers=settings.layers,
        decode_stores=[str(p) for p in decode_paths],
        feature_stores=[str(p) for p in feature_stores],
        settings=asdict(settings),
    ) as group:
        for i, layer in enumerate(settings.layers):
            volume = segments.labels[i]
            write_array(group, f"labels_{layer}", volume, (1, *volume.shape[1:]))
        for key, value in (
            ("segment_video", segments.video),
            ("segment_layer", np.asarray(settings.layers)[segments.layer]),
            ("segment_number", segments.number),
            ("segment_parent", segments.parent),
            ("segment_concept", concepts.of_segment),
            ("segment_score", scores),
            ("pooled", pooled),
            ("centroids", concepts.centroids),
            ("cavs", concepts.cavs),
            ("random_cavs", np.stack(list(concepts.null_cavs.values()))),
        ):
            write_array(group, key, value)
    return tables


def safe_name(text: str) -> str:
    """A class name as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"


def graph_statistics(layers: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
    """Figure 5.5's per-layer statistics: the edges to the next selected layer (the
    class node after the top) that the t-test kept, their share of all possible ones
    (the edge density) and their mean weight."""
    kept = edges[edges["kept"].astype(bool)]  # (an empty object column would pick columns)
    nodes = layers.set_index(["class", "layer"])["nodes"]
    rows = []
    for row in layers.to_dict("records"):
        above = layers[(layers["class"] == row["class"]) & (layers["layer"] > row["layer"])]
        targets = nodes[(row["class"], above["layer"].min())] if len(above) else 1
        mine = kept[(kept["class"] == row["class"]) & (kept["source_layer"] == row["layer"])]
        possible = row["nodes"] * targets
        rows.append(
            {
                **row,
                "edges_kept": len(mine),
                "edge_density": len(mine) / possible if possible else np.nan,
                "mean_weight": mine["weight"].mean() if len(mine) else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


def fidelity(
    name: str,
    adapter: ModelAdapter,
    frames: list[np.ndarray],
    targets: np.ndarray,
    video_class: np.ndarray,
    residual: np.ndarray,
    centroids: np.ndarray,
    nodes: pd.DataFrame,
    settings: Settings,
    metric: str,
    batch_size: int,
) -> pd.DataFrame:
    """§5.4.2: accuracy and target score of each class's videos with a concept's
    direction, a random one, or the layer's mean token over every video taken off every
    token of its layer (z - eps q / |q|), eps a multiple of the layer's mean token norm
    on the class's videos.

    Centroids of features that share a large common part point along it (the demo's
    self-supervised VideoMAE: cosine 0.88 with the mean token), so the mean token is the
    control a concept must beat besides random directions. Over every video, not the
    class's: a class's own mean carries what tells the class apart.
    """
    rng = np.random.default_rng([settings.seed, 1])
    common = residual.reshape(len(residual), len(settings.layers), -1, adapter.hidden_size)
    common = common.mean((0, 2))  # (layers, D)
    rows = []
    for c in tqdm(list(dict.fromkeys(video_class)), desc="concept suppression"):
        videos = np.flatnonzero(video_class == c)
        clips = torch.from_numpy(np.stack([frames[v] for v in videos]))
        target = torch.as_tensor(targets[videos])
        work: list[tuple[int, str, int, np.ndarray, float, float]] = []
        for i, layer in enumerate(settings.layers):
            candidates = np.flatnonzero((nodes["class"] == c) & (nodes["layer"] == layer))
            chosen = rng.choice(
                candidates, min(settings.fidelity_concepts, len(candidates)), replace=False
            )
            norm = float(np.linalg.norm(residual[videos, i], axis=-1).mean())
            directions = [("concept", r, centroids[row]) for r, row in enumerate(chosen)]
            directions += [
                ("random", r, rng.standard_normal(adapter.hidden_size)) for r in range(len(chosen))
            ]
            if len(chosen):
                directions.append(("mean", 0, common[i]))
            work += [
                (layer, d, r, v / np.linalg.norm(v), f, f * norm)
                for d, r, v in directions
                for f in settings.eps
            ]
        # eps 0 is the unchanged model: scored once per class (layer -1)
        work.insert(0, (settings.layers[0], "none", 0, np.zeros(adapter.hidden_size), 0.0, 0.0))
        per = max(1, batch_size // len(videos))
        for start in range(0, len(work), per):
            chunk = work[start : start + per]
            # per edited layer, each batch row's shift (zero for rows edited elsewhere)
            shifts: dict[int, torch.Tensor] = {}
            for k, (layer, _, _, unit, _, eps) in enumerate(chunk):
                rows_of = shifts.setdefault(
                    layer, torch.zeros(len(chunk) * len(videos), adapter.hidden_size)
                )
                rows_of[k * len(videos) : (k + 1) * len(videos)] = torch.as_tensor(
                    eps * unit, dtype=torch.float32
                )
            batch = clips.repeat(len(chunk), 1, 1, 1, 1)
            with ExitStack() as edits:
                for layer, shift in shifts.items():
                    shift = shift.to(adapter.device)[:, None]
                    edits.enter_context(
                        adapter.edited_residual(layer, lambda t, s=shift: t - s, len(batch))
                    )
                logits = adapter.logits(batch).cpu()
            repeated = target.repeat(len(chunk))
            score = get_metric(metric)(logits, repeated).view(len(chunk), -1).mean(1)
            right = (logits.argmax(-1) == repeated).float().view(len(chunk), -1).mean(1)
            for k, (layer, direction, repeat, _, factor, eps) in enumerate(chunk):
                accuracy = float(right[k]) if adapter.has_classes else np.nan
                rows.append(
                    (
                        name,
                        c,
                        layer if direction != "none" else -1,
                        direction,
                        repeat,
                        factor,
                        eps,
                        len(videos),
                        accuracy,
                        float(score[k]),
                    )
                )
    return pd.DataFrame(rows, columns=FIDELITY_COLUMNS)


def validation(name: str, nodes: pd.DataFrame, fidelity_t: pd.DataFrame) -> pd.DataFrame:
    """The paper's two checks in numbers: Pearson and Spearman correlation of APS with
    the logit sum over every concept node (eq. 5.8 vs 5.9), pooled as the paper does and
    within classes (Pearson of both less their class's mean), and how much more area under
    the accuracy-vs-eps curve (the score's without classes) a random direction leaves
    than a concept's, and the layer's mean token, with Wilcoxon signed-rank tests over
    (class, layer, repeat)."""
    rows = []
    both = nodes[["class", "aps", "logit_sum"]].dropna()
    # each class's own level removed: pooled over classes, APS and logit sums also differ
    # by class (on the demo that difference dominates the pooled numbers)
    centred = both[["aps", "logit_sum"]] - both.groupby("class")[["aps", "logit_sum"]].transform(
        "mean"
    )
    for check, values, test in (
        ("aps_logit_sum_pearson", both, stats.pearsonr),
        ("aps_logit_sum_spearman", both, stats.spearmanr),
        ("aps_logit_sum_within_class", centred, stats.pearsonr),
    ):
        varied = values["aps"].nunique() > 1 and values["logit_sum"].nunique() > 1
        result = test(values["aps"], values["logit_sum"]) if len(values) >= 3 and varied else None
        value, p = (float(result[0]), float(result[1])) if result else (np.nan, np.nan)
        rows.append((name, check, value, p, len(values)))
    measure = "accuracy" if fidelity_t["accuracy"].notna().any() else "score"
    base = fidelity_t[fidelity_t["direction"] == "none"].set_index("class")[measure]
    areas: dict[str, dict[tuple, float]] = {"concept": {}, "random": {}, "mean": {}}
    moved = fidelity_t[fidelity_t["direction"] != "none"]
    for (c, layer, direction, repeat), curve in moved.groupby(
        ["class", "layer", "direction", "repeat"]
    ):
        x = np.r_[0.0, curve["eps_factor"]]
        y = np.r_[base[c], curve[measure]]
        areas[direction][(c, layer, repeat)] = np.trapezoid(y, x) / x.max()
    # each concept against the random direction of its repeat, and against its class and
    # layer's mean token
    for control, suffix in (("random", ""), ("mean", "_mean_token")):
        paired = [
            (k, k if control == "random" else (k[0], k[1], 0)) for k in sorted(areas["concept"])
        ]
        gap = np.array(
            [areas[control][j] - areas["concept"][k] for k, j in paired if j in areas[control]]
        )
        p = float(stats.wilcoxon(gap).pvalue) if len(gap) >= 5 and np.any(gap != 0) else np.nan
        value = float(gap.mean()) if len(gap) else np.nan
        rows.append((name, f"suppression_{measure}_area_gap{suffix}", value, p, len(gap)))
    return pd.DataFrame(rows, columns=VALIDATION_COLUMNS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the model's name in the run")
    parser.add_argument("--out", required=True, help="the store (.zarr)")
    parser.add_argument("--graphs", required=True, help="folder of one GraphML per class")
    for table in TABLES:
        parser.add_argument(f"--{table}", required=True, help=f"the {table} table (.tsv)")
    parser.add_argument("--targets", required=True, help="the targets stage's table")
    parser.add_argument(
        "--scoring", required=True, type=typed_json(TargetSettings), help="model, metric, target"
    )
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    Runtime.add_arguments(parser)
    parser.add_argument("feature_stores", nargs="+")


def run(args: argparse.Namespace) -> None:
    runtime = Runtime.from_args(args)
    tables = connectome(
        args.name,
        args.feature_stores,
        args.targets,
        args.scoring,
        args.settings,
        runtime,
        args.out,
        args.graphs,
    )
    for key, table in tables.items():
        write_table(table, getattr(args, key), "%.6g")
    print(tables["layers"].to_string(index=False), file=sys.stderr)
    print(tables["validation"].to_string(index=False), file=sys.stderr)
