"""validation: on the demo, how well concepts match the ground-truth object roles.

Like the VTCD paper's concept-validation table: for each role (target, distractor,
occluder, container), the best-matching concept over all layers and heads, scored by its
mean IoU with the role's visible masks. IoU is computed on the tubelet grid (the grid SLIC
ran on, upsampled toward frame resolution): ground-truth masks are taken at the clip's
sampled frames, resized and cropped as the decode stage did, then area-resampled to the
grid and thresholded at 0.5. The mean runs over the videos where the role is visible in
the clip; a concept absent from such a video scores 0 there.

Choosing the best of many concepts and scoring it on the same videos flatters it (the
maximum of noisy means), so ``mean_iou`` is the paper's in-sample number and
``crossfit_iou`` the honest one: the concept chosen on one half of the videos, scored on
the other half, both ways, averaged over seeded random halvings.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from skimage.transform import resize
from tqdm import tqdm

from videoconcepts.runtime import named_paths, typed_json
from videoconcepts.stores.base import open_store, write_table
from videoconcepts.stores.concepts import ConceptSupport, open_concepts
from videoconcepts.stores.decode import open_decoded

HELP = "score concepts against the demo's ground truth"

CANDIDATE = ["layer", "head", "concept"]


@dataclass(frozen=True)
class ValidationSettings:
    """``crossfit_splits`` random halvings of the videos, drawn from ``seed``."""

    crossfit_splits: int
    seed: int


Settings = ValidationSettings


def role_masks_on_grid(
    truth: zarr.Group, video_id: str, decoded: zarr.Group, grid: Sequence[int]
) -> np.ndarray:
    """(roles, T, H, W) bool ground truth of one video on the clip's tubelet grid."""
    index = truth.attrs["video_ids"].index(video_id)
    frames = truth["masks"][index][:, decoded.attrs["sampled_indices"]]  # (R, T, H, W)
    top, left, height, width = decoded.attrs["crop_box"]
    resized = tuple(decoded.attrs["resized_size"])
    out = np.empty((len(frames), *grid), bool)
    for r, role in enumerate(frames.astype(np.float32)):
        role = resize(role, (len(role), *resized), order=0, anti_aliasing=False)
        role = role[:, top : top + height, left : left + width]
        out[r] = resize(role, tuple(grid), order=1, anti_aliasing=True) >= 0.5
    return out


def concept_role_iou(
    concept_store: str | Path,
    roles: Sequence[str],
    truth_on_grid: Callable[[str, tuple[int, ...]], np.ndarray],
) -> pd.DataFrame:
    """IoU of every (head, concept) of one layer with every role in every video where the
    role is visible.

    ``truth_on_grid(video_id, grid)`` gives the (roles, T, H, W) ground truth on the grid.
    """
    concepts = open_concepts(concept_store)
    support = ConceptSupport(concepts)
    n_heads = len(support.n_concepts)
    records = []
    for v, video_id in enumerate(tqdm(concepts.attrs["video_ids"], desc="validate")):
        truth_grid = truth_on_grid(video_id, support.grid)
        visible = truth_grid.any(axis=(1, 2, 3))
        for head in range(n_heads):
            masks = support.masks(head, v)[:, None]  # (k, 1, T, H, W)
            inter = (masks & truth_grid[None]).sum(axis=(2, 3, 4))
            union = (masks | truth_grid[None]).sum(axis=(2, 3, 4))
            iou = inter / np.maximum(union, 1)
            for concept, role in zip(*np.nonzero(np.broadcast_to(visible, iou.shape)), strict=True):
                records.append((head, concept, roles[role], video_id, iou[concept, role]))
    table = pd.DataFrame(records, columns=["head", "concept", "role", "video", "iou"])
    table.insert(0, "layer", concepts.attrs["layer"])
    return table


def crossfit_iou(per_video: pd.DataFrame, splits: int, seed: int) -> pd.Series:
    """Cross-fitted IoU of the best concept per (method, role): over ``splits`` random
    halvings of the videos, the concept with the best mean IoU on one half, scored by its
    mean IoU on the other, both ways round, averaged.

    ``per_video`` has one row per (method, role, layer, head, concept, video) with ``iou``.
    A fold where the role is visible in no video of either half counts for nothing.
    """
    videos = np.sort(per_video["video"].unique())
    rng = np.random.default_rng(seed)
    halves = []
    for _ in range(splits):
        first = np.zeros(len(videos), bool)
        first[rng.permutation(len(videos))[: len(videos) // 2]] = True
        halves += [(first, ~first), (~first, first)]
    out = {}
    for key, group in per_video.groupby(["method", "role"]):
        iou = group.pivot_table(index=CANDIDATE, columns="video", values="iou")
        iou = iou.reindex(columns=videos).to_numpy()  # NaN: the role is hidden there
        visible = ~np.isnan(iou[0])
        held_out = [
            iou[:, score & visible].mean(1)[iou[:, pick & visible].mean(1).argmax()]
            for pick, score in halves
            if (pick & visible).any() and (score & visible).any()
        ]
        out[key] = float(np.mean(held_out)) if held_out else float("nan")
    return pd.Series(out, name="crossfit_iou").rename_axis(["method", "role"])


def validation_tables(
    concept_stores: dict[str, Sequence[str | Path]],
    ground_truth: str | Path,
    decode_stores: Sequence[str | Path],
    settings: ValidationSettings,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(best concept per method and role, every concept's score) for proposal methods.

    The best concept is chosen in-sample (``mean_iou``, the paper's protocol); its row also
    carries the cross-fitted IoU of the choice (``crossfit_iou``).
    """
    truth = open_store(ground_truth, "ground_truth")
    decoded_of = {Path(p).name.removesuffix(".zarr"): p for p in decode_stores}

    @functools.cache
    def truth_on_grid(video_id: str, grid: tuple[int, ...]) -> np.ndarray:
        # the same for every layer and method: resample each video's ground truth once
        if video_id not in decoded_of:
            raise ValueError(f"no decode store of video {video_id!r} among the decoded")
        decoded = open_decoded(decoded_of[video_id])
        return role_masks_on_grid(truth, video_id, decoded, grid)

    roles = truth.attrs["roles"]
    per_video = pd.concat(
        [
            concept_role_iou(path, roles, truth_on_grid).assign(method=method)
            for method, paths in concept_stores.items()
            for path in paths
        ],
        ignore_index=True,
    )
    scores = per_video.groupby(["method", "role", *CANDIDATE], as_index=False).agg(
        mean_iou=("iou", "mean"), videos=("video", "nunique")
    )
    best = scores.loc[scores.groupby(["method", "role"])["mean_iou"].idxmax()]
    crossfit = crossfit_iou(per_video, settings.crossfit_splits, settings.seed)
    best = best.join(crossfit, on=["method", "role"])
    order = {role: i for i, role in enumerate(truth.attrs["roles"])}
    best = best.sort_values(
        ["role", "method"], key=lambda c: c.map(order) if c.name == "role" else c
    ).reset_index(drop=True)
    return best, scores.sort_values(["method", "layer", "head", "concept", "role"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", required=True, type=typed_json(Settings))
    parser.add_argument("--ground-truth", required=True)
    parser.add_argument("--decoded", nargs="+", required=True, help="the decode stores")
    parser.add_argument("--out", required=True, help="best concept per method and role")
    parser.add_argument("--scores", required=True, help="every concept's score")
    parser.add_argument("concepts", nargs="+", help="METHOD=concept store, one per layer")


def run(args: argparse.Namespace) -> None:
    stores = named_paths(args.concepts)
    best, scores = validation_tables(stores, args.ground_truth, args.decoded, args.settings)
    write_table(best, args.out, "%.4f")
    write_table(scores, args.scores, "%.4f")
    print(best.to_string(index=False), file=sys.stderr)
