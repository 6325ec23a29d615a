"""Trajectory geometry on planted trajectories whose angles and distances are known."""

from __future__ import annotations

import numpy as np
import pytest

from videoconcepts.methods.straightening import (
    RESTRAV_SIZE,
    curvature,
    frame_bins,
    restrav_vector,
    shuffled_curvature,
    shuffled_orders,
    steps,
)


def test_a_straight_line_has_no_curvature_and_its_steps_are_its_speed():
    t = np.arange(8, dtype=float)[:, None]
    direction = np.array([[3.0, 4.0, 0.0, 12.0]])  # length 13
    distances, angles = steps(1.5 + t * direction)
    assert np.allclose(distances, 13.0) and np.allclose(angles, 0.0, atol=1e-5)
    # uneven speed along the line: distances change, angles stay 0
    distances, angles = steps((t**2) * direction)
    assert np.allclose(distances, 13.0 * (2 * t[:-1, 0] + 1)) and np.allclose(angles, 0, atol=1e-5)


def test_a_zig_zag_turns_by_its_known_angles():
    square = np.array([[0, 0], [1, 1], [2, 0], [3, 1], [4, 0]], float)
    distances, angles = steps(square)
    assert np.allclose(distances, np.sqrt(2)) and np.allclose(angles, 90.0)
    # 60-degree turns: steps along 0, 60 and 120 degrees
    headings = np.radians([0, 60, 120])
    points = np.vstack([[0, 0], np.cumsum(np.c_[np.cos(headings), np.sin(headings)], 0)])
    assert np.allclose(steps(points)[1], 60.0)
    # going back the way it came: 180 degrees
    assert np.allclose(steps(np.array([[0.0], [1.0], [0.0]]))[1], 180.0)
    assert curvature(square) == pytest.approx(90.0)


def test_a_standing_step_has_no_angle_and_short_trajectories_are_refused():
    _, angles = steps(np.array([[0.0, 0], [1, 0], [1, 0], [2, 0]]))
    assert np.isnan(angles).all()  # both angles touch the zero-length step
    with pytest.raises(ValueError, match="3 points"):
        steps(np.zeros((2, 4)))


def test_the_restrav_vector_of_a_fixed_trajectory_equals_the_hand_computed_one():
    # steps along x of lengths 1..8 with a quarter turn between each two (alternating y)
    lengths = np.arange(1.0, 9.0)
    moves = np.zeros((8, 2))
    moves[0::2, 0] = lengths[0::2]
    moves[1::2, 1] = lengths[1::2]
    points = np.vstack([[0, 0], np.cumsum(moves, 0)])
    vector = restrav_vector(*steps(points))
    expected = [1, 2, 3, 4, 5, 6, 7]  # the first 7 distances
    expected += [90] * 6  # the first 6 angles
    expected += [4.5, 1, 8, np.var(lengths)]  # mean, min, max, population variance of d
    expected += [90, 90, 90, 0]  # and of the angles
    assert vector.shape == (RESTRAV_SIZE,) and np.allclose(vector, expected)
    with pytest.raises(ValueError, match="8 time steps"):
        restrav_vector(*steps(points[:7]))


def test_shuffling_time_curves_a_smooth_path_and_leaves_scattered_points_as_they_are():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 8)[:, None]
    smooth = np.hstack([t, t**2, np.zeros((8, 30))]) + 0.001 * rng.normal(size=(8, 32))
    scattered = rng.normal(size=(8, 32))
    orders = shuffled_orders(8, 50, rng)
    assert orders.shape == (50, 8) and all(sorted(o) == list(range(8)) for o in orders)
    assert curvature(smooth) < 30 < shuffled_curvature(smooth, orders)
    # points in no order: shuffling changes nothing on average (about 90 to 120 degrees)
    assert abs(curvature(scattered) - shuffled_curvature(scattered, orders)) < 10
    # every layer of a video takes the same orders: a layer equal to another, shuffled alike
    both = np.stack([smooth, smooth])
    null = shuffled_curvature(both, orders)
    assert null[0] == null[1]


def test_frames_are_averaged_over_the_token_grids_time_steps():
    frames = np.zeros((1, 4, 2, 2, 3), np.uint8)
    frames[0, 1] = 255  # the second frame white: the first time step is mid-grey
    binned = frame_bins(frames, 2)
    assert binned.shape == (1, 2, 12) and np.allclose(binned[0, 0], 0.5)
    assert np.allclose(binned[0, 1], 0)
    # 4 frames in 3 steps: runs of 2, 1 and 1 frames
    assert np.allclose(frame_bins(frames, 3)[0, :, 0], [0.5, 0, 0])
    with pytest.raises(ValueError, match="cannot make 5 time steps"):
        frame_bins(frames, 5)
