"""Tubelet proposals: SLIC and random-crop label volumes, upsampling, descriptors, stats."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from helpers import proposal_settings
from skimage.segmentation import slic

from videoconcepts.methods.proposals import (
    propose,
    random_crop_tubelets,
    slic_tubelets,
    tubelet_descriptors,
    tubelet_stats,
    upsample_volume,
)


def moving_object_volume(seed: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(4, 10, 10, 16) features: two background halves and a 4x4 square moving right 1/frame."""
    rng = np.random.default_rng(seed)
    left, right, thing = rng.normal(size=(3, 16))
    volume = np.empty((4, 10, 10, 16), dtype=np.float32)
    volume[:, :, :5] = left
    volume[:, :, 5:] = right
    mask = np.zeros((4, 10, 10), dtype=bool)
    for t in range(4):
        mask[t, 3:7, 1 + t : 5 + t] = True
    volume[mask] = thing
    volume += noise * rng.normal(size=volume.shape).astype(np.float32)
    return volume, mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def assert_consecutive(labels: np.ndarray) -> int:
    n = int(labels.max())
    present = np.unique(labels)
    assert set(present) - {0} == set(range(1, n + 1))
    return n


# --- SLIC ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_slic_finds_moving_object(seed):
    volume, mask = moving_object_volume(seed)
    settings = proposal_settings(n_segments=12, compactness=0.1)
    labels = slic_tubelets(volume, settings)

    assert labels.dtype == np.int16 and labels.shape == mask.shape
    n = assert_consecutive(labels)
    assert 2 <= n <= 2 * settings.n_segments
    dominant = np.bincount(labels[mask], minlength=n + 1).argmax()
    assert dominant > 0
    assert iou(labels == dominant, mask) > 0.7
    for k in range(1, n + 1):
        _, components = ndi.label(labels == k)
        assert components == 1, f"tubelet {k} is split in {components} pieces"


def test_slic_is_skimage_with_global_rescale_and_no_lab():
    """Exactly skimage's slic: no per-channel scaling of our own, no RGB->Lab on 3 channels."""
    rng = np.random.default_rng(3)
    volume, _ = moving_object_volume(3)
    volume = volume[..., :3] * np.array([100.0, 1.0, 0.01], dtype=np.float32)
    volume += rng.normal(size=volume.shape).astype(np.float32)
    kwargs = dict(n_segments=12, compactness=0.1, channel_axis=-1, start_label=1)
    expected = slic(volume, convert2lab=False, **kwargs)
    with_lab = slic(volume, **kwargs)
    per_channel = slic((volume - volume.min((0, 1, 2))) / np.ptp(volume, (0, 1, 2)), **kwargs)
    # the volume is one where both mistakes would change the tubelets
    assert not np.array_equal(with_lab, expected)
    assert not np.array_equal(per_channel, expected)

    labels = slic_tubelets(volume, proposal_settings(n_segments=12, min_share=0.0))
    np.testing.assert_array_equal(labels, expected)


def test_slic_drops_small_tubelets_and_renumbers():
    volume, _ = moving_object_volume(4)
    reference = slic_tubelets(volume, proposal_settings(min_share=0.0))
    shares = np.bincount(reference.ravel())[1:] / reference.size
    min_share = float(np.sort(shares)[len(shares) // 2])  # the median: about half go
    labels = slic_tubelets(volume, proposal_settings(min_share=min_share))

    kept = np.flatnonzero(shares >= min_share) + 1
    assert 0 < len(kept) < len(shares)
    assert_consecutive(labels)
    assert labels.max() == len(kept)
    for new, old in enumerate(kept, start=1):  # survivors keep their order and support
        np.testing.assert_array_equal(labels == new, reference == old)
    np.testing.assert_array_equal(labels == 0, ~np.isin(reference, kept))


def test_slic_is_deterministic_and_leaves_input_alone():
    volume, _ = moving_object_volume(5)
    before = volume.copy()
    first = slic_tubelets(volume, proposal_settings())
    np.testing.assert_array_equal(first, slic_tubelets(volume, proposal_settings()))
    np.testing.assert_array_equal(volume, before)


# --- upsampling ---------------------------------------------------------------------------


def test_upsample_shapes_and_identity():
    volume = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    assert upsample_volume(volume, (2, 3, 4)).shape == (4, 9, 16, 5)
    assert upsample_volume(volume, (1, 2, 1)).shape == (2, 6, 4, 5)
    np.testing.assert_array_equal(upsample_volume(volume, (1, 1, 1)), volume)


def test_upsample_keeps_constants_constant():
    volume = np.full((3, 4, 5, 2), 1.5, dtype=np.float32)
    volume[..., 1] = -7.0
    out = upsample_volume(volume, (2, 4, 4))
    np.testing.assert_allclose(out[..., 0], 1.5, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], -7.0, rtol=1e-6)


def test_upsample_is_linear_on_a_ramp_with_half_voxel_centres():
    t, y, x = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing="ij")
    ramp = np.stack([t + 2 * y - x, 3 * x - t], axis=-1).astype(np.float32)
    factors = (2, 3, 4)
    out = upsample_volume(ramp, factors)

    # output voxel i samples source coordinate (i + 0.5) / f - 0.5 (align_corners=False)
    src = [(np.arange(n * f) + 0.5) / f - 0.5 for n, f in zip(ramp.shape[:3], factors, strict=True)]
    st, sy, sx = np.meshgrid(*src, indexing="ij")
    expected = np.stack([st + 2 * sy - sx, 3 * sx - st], axis=-1)
    inside = (st >= 0) & (st <= 3) & (sy >= 0) & (sy <= 4) & (sx >= 0) & (sx <= 5)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-4)


# --- descriptors and stats ----------------------------------------------------------------


def test_descriptors_golden_values_ignore_background():
    labels = np.array([[[1, 1, 0], [2, 1, 2]]], dtype=np.int16)  # (1, 2, 3)
    volume = np.array(
        [[[[0, 1], [1, 11], [1000, -1000]], [[3, 31], [4, 41], [5, 51]]]], dtype=np.float32
    )  # (1, 2, 3, 2); the 0-labelled voxel holds outliers
    descriptors = tubelet_descriptors(volume, labels)
    assert descriptors.dtype == np.float32 and descriptors.shape == (2, 2)
    np.testing.assert_allclose(descriptors, [[5 / 3, 53 / 3], [4, 41]], rtol=1e-6)


def test_descriptors_reject_gaps_and_mismatched_grids():
    volume = np.zeros((1, 2, 2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="not consecutive"):
        tubelet_descriptors(volume, np.array([[[1, 3], [3, 0]]], dtype=np.int16))
    with pytest.raises(ValueError, match="grids differ"):
        tubelet_descriptors(volume, np.ones((1, 2, 3), dtype=np.int16))


def test_stats_golden_values():
    labels = np.zeros((3, 4, 5), dtype=np.int16)
    labels[0, 0, 0:2] = 1
    labels[1, 1, 1] = 1
    labels[2, 2:4, 3:5] = 2
    labels[1, 3, 0] = 3
    stats = tubelet_stats(labels)
    assert list(stats.columns) == ["label", "voxels", "t_start", "t_stop", "y0", "y1", "x0", "x1"]
    assert stats.values.tolist() == [
        [1, 3, 0, 2, 0, 2, 0, 2],
        [2, 4, 2, 3, 2, 4, 3, 5],
        [3, 1, 1, 2, 3, 4, 0, 1],
    ]


# --- random crops -------------------------------------------------------------------------


def crops(seed: int, grid=(8, 16, 16), matched: int | None = None, **kwargs) -> np.ndarray:
    """Random crops of a fixed count (12 unless given), or ``matched`` to that count."""
    n_crops = "matched" if matched else kwargs.pop("n_crops", 12)
    settings = proposal_settings(method="random_crops", n_crops=n_crops, **kwargs)
    return random_crop_tubelets(grid, settings, np.random.default_rng(seed), matched)


def test_random_crops_are_seeded():
    np.testing.assert_array_equal(crops(7), crops(7))
    assert not np.array_equal(crops(7), crops(8))


@pytest.mark.parametrize("seed", range(5))
def test_random_crops_tile_the_grid_with_boxes(seed):
    labels = crops(seed, n_crops=12, min_share=0.0)
    assert labels.dtype == np.int16 and labels.shape == (8, 16, 16)
    assert labels.min() == 1 and assert_consecutive(labels) == 12
    stats = tubelet_stats(labels)
    box_volume = (stats.t_stop - stats.t_start) * (stats.y1 - stats.y0) * (stats.x1 - stats.x0)
    assert (stats.voxels == box_volume).all()  # every tubelet is a whole box
    assert stats.voxels.sum() == labels.size


def test_random_crops_drop_small_boxes():
    everything = crops(1, n_crops=40, min_share=0.0)
    labels = crops(1, n_crops=40, min_share=0.02)
    shares = np.bincount(everything.ravel())[1:] / everything.size
    kept = np.flatnonzero(shares >= 0.02) + 1
    assert 0 < len(kept) < 40
    assert labels.max() == len(kept)
    np.testing.assert_array_equal(labels == 0, ~np.isin(everything, kept))
    for new, old in enumerate(kept, start=1):
        np.testing.assert_array_equal(labels == new, everything == old)


def test_matched_random_crops_reach_the_count_exactly():
    fixed = [crops(seed, n_crops=20, min_share=0.02).max() for seed in range(10)]
    assert min(fixed) < 20  # a fixed count loses boxes to min_share
    for seed in range(10):
        labels = crops(seed, matched=20, min_share=0.02)
        assert assert_consecutive(labels) == 20
        assert (np.bincount(labels.ravel())[1:] >= 0.02 * labels.size).all()
    with pytest.raises(ValueError, match="n_crops"):
        settings = proposal_settings(method="random_crops", n_crops="matched")
        random_crop_tubelets((8, 16, 16), settings, np.random.default_rng(0))


# --- propose ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["slic", "random_crops"])
def test_propose_works_on_the_upsampled_grid(method):
    volume, _ = moving_object_volume(0)
    crops = {"n_crops": 12} if method == "random_crops" else {}
    settings = proposal_settings(method=method, upsample=[1, 2, 2], **crops)
    assert settings.upsample == (1, 2, 2)
    labels, descriptors = propose(volume, settings)
    assert labels.shape == (4, 20, 20)
    fine = upsample_volume(volume, (1, 2, 2))
    np.testing.assert_allclose(descriptors, tubelet_descriptors(fine, labels), rtol=1e-6)
    assert descriptors.shape == (labels.max(), 16)
    again, _ = propose(volume, settings)
    np.testing.assert_array_equal(labels, again)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="method"):
        proposal_settings(method="superpixels")
    with pytest.raises(ValueError, match="upsample"):
        proposal_settings(upsample=(1, 0, 2))
