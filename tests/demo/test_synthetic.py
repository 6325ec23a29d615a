from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from videoconcepts.demo.synthetic import (
    DEFECTS,
    EVENTS,
    ROLES,
    SyntheticVideo,
    dataset_ids,
    defect_of,
    generate_dataset,
    render_video,
    write_mp4,
)
from videoconcepts.jobclient import main as cli_main
from videoconcepts.stores.base import open_store

SEEDS = range(6)
TARGET, DISTRACTOR = ROLES.index("target"), ROLES.index("distractor")
OCCLUDER, CONTAINER = ROLES.index("occluder"), ROLES.index("container")


def render(event: str, seed: int, n_frames: int = 32, size: int = 64) -> SyntheticVideo:
    return render_video(event, np.random.default_rng([seed, 0]), n_frames, size)


def centroids(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (x, y) centroid of non-empty (T, H, W) masks."""
    ys, xs = [], []
    for mask in masks:
        y, x = np.nonzero(mask)
        ys.append(y.mean())
        xs.append(x.mean())
    return np.array(xs), np.array(ys)


def visible_per_frame(masks: np.ndarray) -> np.ndarray:
    return masks.reshape(len(masks), -1).any(axis=1)


def test_events_and_roles():
    assert EVENTS == (
        "moves_right",
        "moves_left",
        "passes_behind",
        "falls_into_container",
        "bounces_off_wall",
        "stops_midway",
    )
    assert ROLES == ("target", "distractor", "occluder", "container")


@pytest.mark.parametrize("event", EVENTS)
def test_render_is_deterministic_and_seed_dependent(event):
    a, b, other = render(event, 3), render(event, 3), render(event, 4)
    assert a.event == event
    assert a.frames.shape == (32, 64, 64, 3) and a.frames.dtype == np.uint8
    assert a.masks.shape == (len(ROLES), 32, 64, 64) and a.masks.dtype == bool
    assert a.amodal_target.shape == (32, 64, 64) and a.amodal_target.dtype == bool
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.amodal_target, b.amodal_target)
    assert not np.array_equal(a.frames, other.frames)
    assert not np.array_equal(a.amodal_target, other.amodal_target)


def test_render_rejects_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown event"):
        render_video("flies_away", rng)
    with pytest.raises(ValueError, match="size"):
        render_video("moves_right", rng, size=16)


@pytest.mark.parametrize("size", [48, 64, 96])
@pytest.mark.parametrize("event", EVENTS)
def test_ground_truth_is_consistent(event, size):
    for seed in SEEDS:
        video = render(event, seed, size=size)
        target = video.masks[TARGET]
        assert not (target & ~video.amodal_target).any(), "visible target outside amodal disc"
        assert video.masks.sum(axis=0).max() <= 1, "a pixel belongs to two roles"
        assert visible_per_frame(video.amodal_target).all()
        # Same static cast in every clip: bar and cup are in view and never move.
        for role in (OCCLUDER, CONTAINER):
            assert video.masks[role, 0].any()
            assert (video.masks[role] == video.masks[role, :1]).all()
        assert visible_per_frame(video.masks[TARGET])[0], "target hidden in the first frame"
        red = video.frames[target].astype(int)
        assert (red[:, 0] > red[:, 1] + 100).all() and (red[:, 0] > red[:, 2] + 100).all()


@pytest.mark.parametrize("event", ["moves_right", "moves_left"])
def test_moves_monotonically_and_in_full_view(event):
    sign = 1 if event == "moves_right" else -1
    for seed in SEEDS:
        video = render(event, seed)
        np.testing.assert_array_equal(video.masks[TARGET], video.amodal_target)
        x, y = centroids(video.amodal_target)
        assert (sign * np.diff(x) > 0).all()
        assert sign * (x[-1] - x[0]) > 64 / 3
        assert np.ptp(y) < 0.5, "moves horizontally"
        # Never reaches a wall.
        assert not video.amodal_target[:, :, [0, -1]].any()


def test_passes_behind_hides_then_reappears():
    for seed in SEEDS:
        video = render("passes_behind", seed)
        seen = visible_per_frame(video.masks[TARGET])
        hidden = np.flatnonzero(~seen)
        assert len(hidden) >= 2
        assert seen[: hidden[0]].all() and seen[hidden[-1] + 1 :].all() and seen[-1]
        # Fully visible at both ends, on opposite sides of the bar.
        for t in (0, -1):
            np.testing.assert_array_equal(video.masks[TARGET, t], video.amodal_target[t])
        x, _ = centroids(video.amodal_target)
        bar_x = np.nonzero(video.masks[OCCLUDER, 0])[1]
        assert (x[0] - bar_x.mean()) * (x[-1] - bar_x.mean()) < 0


def test_falls_into_container_accelerates_and_ends_hidden():
    for seed in SEEDS:
        video = render("falls_into_container", seed)
        assert video.masks[TARGET, 0].sum() == video.amodal_target[0].sum()
        assert not video.masks[TARGET, -1].any() and video.amodal_target[-1].any()
        x, y = centroids(video.amodal_target)
        assert np.ptp(x) < 0.5, "falls vertically"
        assert (np.diff(y) >= 0).all() and y[-1] - y[0] > 64 / 3
        assert y[8] - y[0] < y[16] - y[8], "a fall speeds up"
        # Hidden inside the cup: the whole disc lies within the cup's columns.
        cup_x = np.nonzero(video.masks[CONTAINER, 0])[1]
        disc_x = np.nonzero(video.amodal_target[-1])[1]
        assert cup_x.min() <= disc_x.min() and disc_x.max() <= cup_x.max()


def test_bounces_off_wall_reverses_once_at_the_border():
    for seed in SEEDS:
        video = render("bounces_off_wall", seed)
        np.testing.assert_array_equal(video.masks[TARGET], video.amodal_target)
        x, _ = centroids(video.amodal_target)
        direction = np.sign(np.diff(x))
        assert (direction != 0).all()
        turn = np.flatnonzero(direction[1:] != direction[:-1])
        assert len(turn) == 1
        touching = video.amodal_target[:, :, [0, -1]].any(axis=(1, 2))
        assert touching[turn[0] + 1], "reverses at the frame where it touches the border"
        assert turn[0] % 2 == 1, "the contact frame survives sampling every 2nd frame"


def test_stops_midway_and_stays_still():
    for seed in SEEDS:
        video = render("stops_midway", seed)
        x, _ = centroids(video.amodal_target)
        assert abs(x[12] - x[0]) > 5
        assert (video.amodal_target[-12:] == video.amodal_target[-1]).all()


def test_distractors_drift():
    moved = 0
    for event in EVENTS:
        distractor = render(event, 1).masks[DISTRACTOR]
        assert visible_per_frame(distractor).any()
        moved += not np.array_equal(distractor[0], distractor[-1])
    assert moved >= len(EVENTS) - 1


def decode_all(path: Path) -> tuple[np.ndarray, float]:
    """Every frame as RGB (decord's frames equal these) and the average frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return np.stack(frames), float(stream.average_rate)


def test_write_mp4_round_trips(tmp_path):
    video = render("passes_behind", 2)
    path = tmp_path / "clip.mp4"
    write_mp4(path, video.frames, fps=12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    decoded, fps = decode_all(path)
    assert fps == pytest.approx(12)
    assert decoded.shape == video.frames.shape
    assert np.abs(decoded.astype(int) - video.frames).mean() < 6


def test_write_mp4_rejects_odd_sizes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", np.zeros((4, 33, 32, 3), np.uint8))
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    table = generate_dataset(first, videos_per_event=2, seed=7, n_frames=16, size=64, fps=10)
    generate_dataset(second, videos_per_event=2, seed=7, n_frames=16, size=64, fps=10)
    return first, second, table


def test_dataset_table(datasets):
    root, _, table = datasets
    ids = [f"vid{i:04d}" for i in range(12)]
    assert list(table.columns) == ["path", "id", "label"]
    assert table["id"].tolist() == ids
    assert table["label"].tolist() == [EVENTS[i % 6] for i in range(12)]
    assert table["path"].tolist() == [f"videos/{i}.mp4" for i in ids]
    pd.testing.assert_frame_equal(pd.read_csv(root / "samples.tsv", sep="\t"), table)
    assert sorted(p.name for p in (root / "videos").iterdir()) == [f"{i}.mp4" for i in ids]


def test_dataset_is_byte_identical_across_runs(datasets):
    first, second, _ = datasets
    for path in sorted((first / "videos").iterdir()):
        assert path.read_bytes() == (second / "videos" / path.name).read_bytes(), path.name
    a = open_store(first / "ground_truth.zarr", "ground_truth")
    b = open_store(second / "ground_truth.zarr", "ground_truth")
    for name in ("masks", "amodal_target", "labels"):
        np.testing.assert_array_equal(a[name][...], b[name][...])


def test_ground_truth_store(datasets):
    root, _, table = datasets
    store = open_store(root / "ground_truth.zarr", "ground_truth")
    assert store["masks"].shape == (12, len(ROLES), 16, 64, 64)
    assert store["masks"].chunks == (1, len(ROLES), 16, 64, 64)
    assert store["masks"].dtype == np.uint8
    assert store["amodal_target"].shape == (12, 16, 64, 64)
    assert store["amodal_target"].chunks == (1, 16, 64, 64)
    assert store["labels"].dtype == np.int64
    labels = store["labels"][...]
    assert [EVENTS[k] for k in labels] == table["label"].tolist()
    attrs = store.attrs
    assert attrs["video_ids"] == table["id"].tolist()
    assert attrs["roles"] == list(ROLES) and attrs["events"] == list(EVENTS)
    assert (attrs["seed"], attrs["n_frames"], attrs["size"], attrs["fps"]) == (7, 16, 64, 10)
    # Any one video can be reproduced alone from (seed, index), and matches its mp4.
    i = 9
    video = render_video(EVENTS[labels[i]], np.random.default_rng([7, i]), 16, 64)
    np.testing.assert_array_equal(store["masks"][i], video.masks)
    np.testing.assert_array_equal(store["amodal_target"][i], video.amodal_target)
    decoded, _ = decode_all(root / table["path"][i])
    assert np.abs(decoded.astype(int) - video.frames).mean() < 6


def test_cli_writes_dataset_with_the_announced_ids(tmp_path, capsys):
    cli_main(
        [
            "demo_data",
            "--out",
            str(tmp_path),
            "--videos-per-event",
            "1",
            "--seed",
            "1",
            "--styles",
            "2",
        ]
    )
    table = pd.read_csv(tmp_path / "samples.tsv", sep="\t")
    assert table["label"].tolist() == list(EVENTS)
    copies = [p for cell in table["styled"] for p in cell.split(";")]
    assert len(copies) == 12 and all((tmp_path / p).is_file() for p in copies)
    assert table["id"].tolist() == dataset_ids(1)
    store = open_store(tmp_path / "ground_truth.zarr", "ground_truth")
    assert store["masks"].shape == (6, len(ROLES), 32, 64, 64)
    assert "synthetic videos" in capsys.readouterr().err


def test_a_restyled_scene_keeps_its_geometry_and_motion_and_changes_its_look():
    """The stylized copies of static_dynamic: the same rng gives the same masks and
    amodal target whatever the look; the look redraws colours and background texture."""
    for i, event in enumerate(EVENTS):
        original = render_video(event, np.random.default_rng([5, i]))
        copies = [
            render_video(
                event, np.random.default_rng([5, i]), look=np.random.default_rng([5, i, k])
            )
            for k in (1, 2)
        ]
        for copy in copies:
            np.testing.assert_array_equal(copy.masks, original.masks)
            np.testing.assert_array_equal(copy.amodal_target, original.amodal_target)
            background = ~original.masks.any(0)
            change = np.abs(copy.frames.astype(int) - original.frames)
            assert change[background].mean() > 2  # a new background texture
            assert not np.array_equal(copies[0].frames, copies[1].frames)
    # The look is drawn after the geometry: the original stays as it was rendered.
    again = render_video(EVENTS[0], np.random.default_rng([5, 0]))
    np.testing.assert_array_equal(
        again.frames, render_video(EVENTS[0], np.random.default_rng([5, 0])).frames
    )


def manipulated(index: int, seed: int = 5) -> tuple[SyntheticVideo, SyntheticVideo]:
    """Demo video ``index`` and its manipulated variant, as generate_dataset renders them."""
    event = EVENTS[index % len(EVENTS)]
    natural = render_video(event, np.random.default_rng([seed, index]))
    variant = render_video(
        event,
        np.random.default_rng([seed, index]),
        defect=defect_of(index),
        flaws=np.random.default_rng([seed, index, 0, 1]),
    )
    return natural, variant


def test_every_defect_appears_and_pass_through_only_where_the_target_meets_an_object():
    kinds = [defect_of(i) for i in range(18)]
    assert set(kinds) == set(DEFECTS)
    meets = {"passes_behind", "falls_into_container"}
    assert all(EVENTS[i % 6] in meets for i, d in enumerate(kinds) if d == "pass_through")
    with pytest.raises(ValueError, match="moves_right target meets no object"):
        render_video(
            "moves_right",
            np.random.default_rng(0),
            defect="pass_through",
            flaws=np.random.default_rng(1),
        )
    with pytest.raises(ValueError, match="needs to be one of"):
        render_video("moves_right", np.random.default_rng(0), defect="melts")


def test_a_teleport_moves_the_target_by_a_quarter_of_the_frame_at_one_frame_only():
    for i in (0, 9, 11):  # teleports of the demo's first scenes
        assert defect_of(i) == "teleport"
        natural, variant = manipulated(i)
        (jump,) = np.flatnonzero(variant.defect_frames)
        x0, _ = centroids(natural.amodal_target)
        x1, _ = centroids(variant.amodal_target)
        np.testing.assert_allclose(x1[:jump], x0[:jump])  # the same scene until the jump
        assert np.abs(x1[jump:] - x0[jump:]).min() > 0.2 * 64 - 1
        step = np.abs(np.diff(x1))
        assert step[jump - 1] > 4 * np.median(step)  # one jump, nowhere else
        np.testing.assert_array_equal(variant.masks[OCCLUDER], natural.masks[OCCLUDER])


def test_a_stutter_freezes_the_whole_clip_then_skips_ahead():
    natural, variant = manipulated(1)
    assert variant.defect == "stutter"
    held = (
        np.flatnonzero(
            [
                np.array_equal(a, b)
                for a, b in zip(variant.frames[1:], variant.frames[:-1], strict=True)
            ]
        )
        + 1
    )
    assert len(held) >= 2 * 4  # two freezes of 5 frames or more at 32 frames
    assert set(held) <= set(np.flatnonzero(variant.defect_frames))
    # every frame is one of the natural clip's, in order, some repeated and some skipped
    source = [
        next(t for t in range(32) if np.array_equal(f, natural.frames[t])) for f in variant.frames
    ]
    assert np.all(np.diff(source) >= 0) and len(set(source)) < 32 and source[-1] > 27


def test_a_flicker_changes_the_background_and_brightness_on_its_frames_only():
    natural, variant = manipulated(2)
    assert variant.defect == "flicker"
    change = np.abs(variant.frames.astype(int) - natural.frames).mean(axis=(1, 2, 3))
    flicker = variant.defect_frames
    assert flicker.sum() == 8 and change[flicker].min() > 15 and change[~flicker].max() == 0
    np.testing.assert_array_equal(variant.masks, natural.masks)


def test_pass_through_shows_the_target_over_the_bar_or_cup():
    natural, variant = manipulated(3)  # falls into the container
    assert variant.defect == "pass_through"
    front = variant.defect_frames
    assert front.sum() >= 5
    inside = variant.amodal_target & natural.masks[CONTAINER]
    assert inside[front].any() and not (natural.masks[TARGET] & natural.masks[CONTAINER]).any()
    assert (variant.masks[TARGET] >= natural.masks[TARGET]).all()  # only more of it visible
    assert variant.masks[TARGET][front].sum() > natural.masks[TARGET][front].sum()


def test_the_dataset_with_manipulated_variants_keeps_the_natural_videos_and_lists_both(
    datasets, tmp_path
):
    generate_dataset(
        tmp_path, videos_per_event=2, seed=7, n_frames=16, size=64, fps=10, manipulated=True
    )
    first, _, table = datasets
    for vid in table["id"]:  # the natural videos exactly as without variants
        assert (tmp_path / f"videos/{vid}.mp4").read_bytes() == (
            first / f"videos/{vid}.mp4"
        ).read_bytes()
    sheet = pd.read_csv(tmp_path / "detection.tsv", sep="\t", keep_default_na=False)
    assert sheet["id"].tolist() == [*table["id"], *(f"{v}-m" for v in table["id"])]
    assert sheet["label"].tolist() == ["natural"] * 12 + ["manipulated"] * 12
    assert sheet["group"].tolist() == [*table["id"], *table["id"]]
    assert sheet["defect"].tolist()[12:] == [defect_of(i) for i in range(12)]
    assert all((tmp_path / p).is_file() for p in sheet["path"])
    store = open_store(tmp_path / "manipulated.zarr", "ground_truth")
    assert store.attrs["defects"] == list(DEFECTS)
    assert [DEFECTS[k] for k in store["defects"][...]] == sheet["defect"].tolist()[12:]
    assert (
        store["defect_frames"].shape == (12, 16) and store["defect_frames"][...].any(axis=1).all()
    )
