"""Tubelet proposals: label volumes on a head's T'xH'xW' feature grid, and their descriptors.

VTCD (Kowal et al. 2024, section 3.1.1) groups one head's feature volume into tubelets
with 3-D SLIC in feature space, then describes each tubelet by the mean feature over its
support (global average pooling of the masked volume). ``random_crops`` is the
content-agnostic baseline of the paper's ablation. Pure functions on numpy arrays; the
tubelets stage does the I/O.

Label volumes are int16 on the (possibly upsampled) grid: 0 is background / dropped,
tubelets are 1..n consecutively.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.ndimage as ndi
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from skimage.segmentation import slic

LABEL_DTYPE = np.int16


@dataclass(frozen=True, kw_only=True)
class ProposalSettings:
    """How to cut one (T', H', W', C) feature volume into tubelets.

    ``upsample`` gives integer factors (t, h, w) applied (trilinearly) to the grid before
    proposing; labels and descriptors live on that finer grid. ``min_share``: tubelets
    covering less than this share of the voxels are dropped (label 0). ``n_segments`` and
    ``compactness`` belong to ``slic``, ``n_crops`` and ``seed`` to ``random_crops``; the
    other method's are None. ``n_crops`` "matched" takes the count per (video, head) from
    the caller (the tubelets stage: SLIC's count there). No defaults: they live in the
    config schema.
    """

    method: Literal["slic", "random_crops"]
    upsample: tuple[int, int, int]
    min_share: float
    n_segments: int | None = None
    compactness: float | None = None
    n_crops: int | Literal["matched"] | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        # YAML gives lists; keep the frozen instance hashable and comparable.
        object.__setattr__(self, "upsample", tuple(int(f) for f in self.upsample))
        own = {"slic": ("n_segments", "compactness"), "random_crops": ("n_crops", "seed")}
        if self.method not in own:
            raise ValueError(f"unknown proposal method {self.method!r}")
        missing = [name for name in own[self.method] if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.method} needs {', '.join(missing)}")
        if len(self.upsample) != 3 or min(self.upsample) < 1:
            raise ValueError(f"upsample must be three factors >= 1, got {self.upsample}")
        if not 0 <= self.min_share < 1:
            raise ValueError(f"min_share must be in [0, 1), got {self.min_share}")
        crops = 1 if self.n_crops in (None, "matched") else self.n_crops
        if (self.n_segments or 1) < 1 or crops < 1 or (self.compactness or 1) <= 0:
            raise ValueError("n_segments and n_crops must be >= 1 and compactness > 0")


def upsample_volume(volume: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """(T, H, W, C) -> (T*ft, H*fh, W*fw, C) float32, trilinear with half-voxel centres.

    torch's ``interpolate(mode="trilinear", align_corners=False)`` rather than
    ``scipy.ndimage.zoom(order=1)``: it is PyTorch's resizing convention, the one the video
    models' own code uses (voxel centres at (i + 0.5) / f - 0.5, edges replicated), whereas
    zoom's default ``grid_mode=False`` maps corner centres onto corner centres (a different,
    slightly stretched grid); and it interpolates all C channels in one batched call.
    """
    volume = np.asarray(volume, dtype=np.float32)
    if tuple(factors) == (1, 1, 1):
        return volume
    t, h, w, _ = volume.shape
    size = (t * factors[0], h * factors[1], w * factors[2])
    x = torch.from_numpy(np.ascontiguousarray(volume)).permute(3, 0, 1, 2)[None]
    y = F.interpolate(x, size=size, mode="trilinear", align_corners=False)
    return np.ascontiguousarray(y[0].permute(1, 2, 3, 0).numpy())


def _drop_and_renumber(labels: np.ndarray, min_share: float) -> np.ndarray:
    """Set labels covering < ``min_share`` of the voxels to 0; renumber the rest 1..n in order."""
    labels = np.asarray(labels)
    counts = np.bincount(labels.ravel())
    keep = counts >= min_share * labels.size
    keep[0] = False
    keep &= counts > 0
    if keep.sum() > np.iinfo(LABEL_DTYPE).max:
        raise ValueError(f"{keep.sum()} tubelets do not fit the int16 label volume")
    lookup = np.zeros(len(counts), dtype=LABEL_DTYPE)
    lookup[keep] = np.arange(1, keep.sum() + 1)
    return lookup[labels]


def slic_tubelets(volume: np.ndarray, settings: ProposalSettings) -> np.ndarray:
    """3-D SLIC in feature space on a (T, H, W, C) volume, as VTCD runs it.

    skimage's ``slic`` rescales the whole array to [0, 1] with one global min and max (over
    all channels at once); that is VTCD's only normalisation, so nothing is done here
    beforehand. ``convert2lab=False`` matters: with the default (None) skimage converts any
    3-channel input from RGB to Lab. Everything else stays at skimage's defaults (sigma=0,
    isotropic spacing, 10 iterations), with ``enforce_connectivity=True`` so each tubelet is
    one 6-connected component. The input is not modified.
    """
    features = np.ascontiguousarray(volume, dtype=np.float32)
    if features.ndim != 4:
        raise ValueError(f"expected a (T, H, W, C) volume, got shape {features.shape}")
    labels = slic(
        features,
        n_segments=settings.n_segments,
        compactness=settings.compactness,
        channel_axis=-1,
        convert2lab=False,
        enforce_connectivity=True,
        start_label=1,
    )
    return _drop_and_renumber(labels, settings.min_share)


def _random_boxes(
    grid: tuple[int, int, int], n_boxes: int, rng: np.random.Generator, min_voxels: int = 0
) -> list[list[tuple[int, int]]]:
    """Tile ``grid`` with up to ``n_boxes`` boxes by random guillotine cuts.

    Each step picks a box with probability proportional to its volume, an axis with
    probability proportional to the box's extent relative to the grid (so T, H and W are
    treated alike whatever their resolution), and cuts it between 1/4 and 3/4 of that
    extent, leaving both parts at least ``min_voxels`` (boxes and axes where no cut does
    are not picked).
    """
    boxes = [[(0, int(n)) for n in grid]]
    while len(boxes) < n_boxes:
        extents = np.array([[hi - lo for lo, hi in box] for box in boxes])
        face = extents.prod(axis=1, keepdims=True) // extents  # voxels per unit of extent
        need = -(-min_voxels // face)
        first = np.maximum(np.maximum(1, np.round(extents / 4)), need).astype(int)
        last = np.minimum(np.minimum(extents - 1, np.round(3 * extents / 4)), extents - need)
        cuttable = last.astype(int) >= first  # (boxes, axes)
        volumes = np.where(cuttable.any(axis=1), extents.prod(axis=1), 0)
        if volumes.sum() == 0:
            break
        i = rng.choice(len(boxes), p=volumes / volumes.sum())
        box, length = boxes.pop(i), extents[i]
        weight = np.where(cuttable[i], length / np.asarray(grid), 0)
        axis = rng.choice(3, p=weight / weight.sum())
        lo, hi = box[axis]
        cut = lo + int(rng.integers(first[i, axis], int(last[i, axis]) + 1))
        boxes.append([*box[:axis], (lo, cut), *box[axis + 1 :]])
        boxes.append([*box[:axis], (cut, hi), *box[axis + 1 :]])
    return boxes


def random_crop_tubelets(
    grid: tuple[int, int, int],
    settings: ProposalSettings,
    rng: np.random.Generator,
    n_crops: int | None = None,
) -> np.ndarray:
    """The image-style baseline: ``n_crops`` random spatiotemporal boxes on ``grid``.

    Overlapping crops cannot be stored in a label volume (one label per voxel), and letting
    later boxes overwrite earlier ones leaves fragments of arbitrary shape. So the crops are
    drawn as a random tiling instead: every tubelet is a whole axis-aligned box of random
    extent and position, and the boxes partition the grid like SLIC's tubelets do. Boxes
    below ``min_share`` are then dropped (label 0) and the rest numbered 1..n (seeded order).

    With ``settings.n_crops`` "matched", ``n_crops`` is the count to reach: no cut leaves a
    box below ``min_share``, so none is dropped and the baseline gets exactly as many
    tubelets as SLIC found (fewer only if the grid cannot hold them).
    """
    min_voxels = 0
    if settings.n_crops == "matched":
        if n_crops is None:
            raise ValueError("matched random crops need n_crops (SLIC's count) from the caller")
        min_voxels = int(np.ceil(settings.min_share * np.prod(grid)))
    else:
        n_crops = settings.n_crops
    labels = np.zeros(grid, dtype=np.int32)
    for i, box in enumerate(_random_boxes(grid, n_crops, rng, min_voxels), start=1):
        labels[tuple(slice(lo, hi) for lo, hi in box)] = i
    return _drop_and_renumber(labels, settings.min_share)


def _check_consecutive(labels: np.ndarray) -> np.ndarray:
    """Voxel count of labels 0..n; raises if some label in 1..n has no voxel."""
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be >= 0")
    counts = np.bincount(labels.ravel())
    if (counts[1:] == 0).any():
        missing = np.flatnonzero(counts[1:] == 0) + 1
        raise ValueError(f"labels are not consecutive: {missing.tolist()} have no voxel")
    return counts


def tubelet_descriptors(volume: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n, C) float32 mean feature of each tubelet 1..n; voxels labelled 0 are ignored.

    ``volume`` (T, H, W, C) must be on the grid of ``labels`` (T, H, W). One sparse
    (n x voxels) indicator product sums all tubelets and channels at once, in float64 (a
    float32 product is ~2x faster here but loses ~4 bits on large tubelets).
    """
    if volume.shape[:3] != labels.shape:
        raise ValueError(f"volume {volume.shape} and labels {labels.shape} grids differ")
    flat = labels.ravel()
    counts = _check_consecutive(flat)
    # CSR built directly: row k lists the voxels of tubelet k+1, i.e. the stable sort order
    voxels = np.argsort(flat, kind="stable")[counts[0] :]
    indptr = np.concatenate([[0], np.cumsum(counts[1:])])
    indicator = sp.csr_matrix(
        (np.ones(len(voxels)), voxels, indptr), shape=(len(counts) - 1, flat.size)
    )
    sums = indicator @ volume.reshape(flat.size, -1).astype(np.float64)
    return (sums / counts[1:, None]).astype(np.float32)


def tubelet_stats(labels: np.ndarray) -> pd.DataFrame:
    """One row per tubelet 1..n: ``label``, ``voxels`` and its bounding box.

    ``t_start``/``t_stop``, ``y0``/``y1`` and ``x0``/``x1`` are half-open ranges on the
    label grid (stop exclusive), so ``labels[t_start:t_stop, y0:y1, x0:x1]`` holds it.
    """
    counts = _check_consecutive(labels)
    boxes = ndi.find_objects(labels.astype(np.int32, copy=False))
    bounds = np.array(
        [[s.start for s in box] + [s.stop for s in box] for box in boxes], dtype=np.int64
    ).reshape(-1, 6)
    return pd.DataFrame(
        {
            "label": np.arange(1, len(counts), dtype=np.int64),
            "voxels": counts[1:].astype(np.int64),
            "t_start": bounds[:, 0],
            "t_stop": bounds[:, 3],
            "y0": bounds[:, 1],
            "y1": bounds[:, 4],
            "x0": bounds[:, 2],
            "x1": bounds[:, 5],
        }
    )


def propose(
    volume: np.ndarray,
    settings: ProposalSettings,
    rng: np.random.Generator | None = None,
    n_crops: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Upsample if asked, cut into tubelets, describe them: (labels, descriptors).

    ``rng`` and ``n_crops`` (the count of matched crops) only matter for ``random_crops``;
    a None ``rng`` seeds one from ``settings.seed`` (a caller proposing for many videos
    should pass one generator, or derive per-video seeds).
    """
    fine = upsample_volume(volume, settings.upsample)
    if settings.method == "slic":
        labels = slic_tubelets(fine, settings)
    else:
        rng = np.random.default_rng(settings.seed) if rng is None else rng
        labels = random_crop_tubelets(fine.shape[:3], settings, rng, n_crops)
    return labels, tubelet_descriptors(fine, labels)
