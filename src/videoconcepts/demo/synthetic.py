"""Deterministic synthetic videos with per-pixel ground truth for the built-in demo.

Every clip shows the same cast on a dark, slightly textured background: a red disc (the
``target``), one or two slowly drifting ``distractor`` squares, a grey ``occluder`` bar and a
brown ``container`` cup, both drawn in front of the target. All clips contain the same kinds
of objects, so a single frame does not tell the event; only the target's motion over time
does. Next to the RGB frames each clip carries the visible mask of every role (what is seen
after occlusion) and the amodal target (the whole disc, also where it is hidden).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np
import pandas as pd
from tqdm import tqdm

from videoconcepts.demo import EVENTS, dataset_ids, manipulated_id, manipulated_path, styled_path
from videoconcepts.stores.base import atomic_store, create_array, write_array, write_table

ROLES: tuple[str, ...] = ("target", "distractor", "occluder", "container")

MIN_SIZE = 48
MIN_FRAMES = 8
# Near lossless; single-threaded and without macroblock-tree so the bytes are reproducible.
X264_OPTIONS = {"crf": "10", "threads": "1", "x264-params": "mbtree=0"}


@dataclass(frozen=True)
class SyntheticVideo:
    """One rendered clip and its ground truth."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    masks: np.ndarray  # (len(ROLES), T, H, W) bool, visible pixels of each role
    amodal_target: np.ndarray  # (T, H, W) bool, the whole target disc even where hidden
    event: str
    defect: str = ""  # a manipulated clip's defect (one of DEFECTS), "" for a natural one
    defect_frames: np.ndarray | None = None  # (T,) bool, frames showing it (manipulated only)


@dataclass(frozen=True)
class _Box:
    """Half-open pixel rectangle: rows ``[y0, y1)``, columns ``[x0, x1)``."""

    y0: int
    y1: int
    x0: int
    x1: int


@dataclass(frozen=True)
class _Layout:
    """Static geometry of one clip, in pixels (``scale`` is ``size / 64``)."""

    size: int
    scale: float
    radius: float
    occluder: _Box
    container: _Box
    free_rows: tuple[float, float]  # target centre rows clear of occluder and container
    behind_rows: tuple[float, float]  # target centre rows fully hidden by the occluder


def _centre_rows(rows: tuple[int, int], radius: float) -> tuple[float, float]:
    """Centre rows that keep a disc inside the pixel rows ``[start, stop)``."""
    return rows[0] + radius, rows[1] - 1 - radius


def _sample_layout(rng: np.random.Generator, size: int) -> _Layout:
    """Random static geometry: a bar near the middle and a cup on the floor beside it.

    The bar hangs from the top or stands on the floor; a horizontal lane stays free of both.
    Bar and cup never share a column, so a target falls into the cup without passing behind
    the bar.
    """
    scale = size / 64
    radius = rng.uniform(5.5, 6.5) * scale
    disc = 2 * radius + 1  # most pixels the disc spans in a row or column
    margin = max(1, round(2 * scale))
    lane = int(np.ceil(disc))  # rows a disc moving past both objects needs
    hide = int(np.ceil(disc + rng.uniform(3, 5) * scale))  # rows of bar a disc hides behind

    cup_w = int(np.ceil(disc + rng.uniform(2.5, 3.5) * scale))
    cup_y1 = size - margin
    cup_y0 = cup_y1 - int(np.ceil(disc + rng.uniform(5, 7) * scale))

    occ_w = int(np.ceil(disc + rng.uniform(2.5, 4) * scale))
    occ_x0 = round(size / 2 + rng.uniform(-2, 2) * scale - occ_w / 2)
    occ_x1 = occ_x0 + occ_w
    if rng.random() < 0.5:  # hanging from the top, the free lane below it
        occ_y0, occ_y1 = 0, int(rng.integers(1 + hide, cup_y0 - 2 - lane + 1))
        behind, free = (1, occ_y1), (occ_y1 + 1, cup_y0 - 1)
    else:  # standing on the floor, the free lane above it
        occ_y0, occ_y1 = int(rng.integers(lane + 2, cup_y0 - 1 - hide + 1)), cup_y1
        behind, free = (occ_y0, cup_y0 - 1), (1, occ_y0 - 1)

    gap = max(1, round(scale))  # columns kept clear between cup, bar and side walls
    sides = []
    if occ_x0 - 2 * gap >= cup_w:
        sides.append((gap, occ_x0 - gap - cup_w))
    if size - occ_x1 - 2 * gap >= cup_w:
        sides.append((occ_x1 + gap, size - gap - cup_w))
    lo, hi = sides[int(rng.integers(len(sides)))]
    cup_x0 = int(rng.integers(lo, hi + 1))

    return _Layout(
        size=size,
        scale=scale,
        radius=radius,
        occluder=_Box(occ_y0, occ_y1, occ_x0, occ_x1),
        container=_Box(cup_y0, cup_y1, cup_x0, cup_x0 + cup_w),
        free_rows=_centre_rows(free, radius),
        behind_rows=_centre_rows(behind, radius),
    )


# ---------------------------------------------------------------------- trajectories
# Each returns the target centre (x, y) at clip times u in [0, 1], one entry per frame.

Trajectory = Callable[[_Layout, np.random.Generator, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _lane(layout: _Layout) -> tuple[float, float]:
    """Centre columns from which the disc keeps a clear gap to both walls."""
    gap = 3 * layout.scale
    return layout.radius + gap, layout.size - 1 - layout.radius - gap


def _free_row(layout: _Layout, rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
    return np.full_like(u, rng.uniform(*layout.free_rows))


def _mirror(layout: _Layout, x: np.ndarray) -> np.ndarray:
    lo, hi = _lane(layout)
    return lo + hi - x


def _random_direction(rng: np.random.Generator) -> int:
    return 1 if rng.random() < 0.5 else -1


def _moves(
    layout: _Layout, rng: np.random.Generator, u: np.ndarray, direction: int
) -> tuple[np.ndarray, np.ndarray]:
    """Constant speed across most of the free lane, clear of occluder and walls."""
    lo, hi = _lane(layout)
    span = rng.uniform(0.7, 0.95) * (hi - lo)
    x = rng.uniform(lo, hi - span) + span * u
    return (x if direction > 0 else _mirror(layout, x)), _free_row(layout, rng, u)


def _passes_behind(
    layout: _Layout, rng: np.random.Generator, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Visible on one side, fully hidden behind the bar for a while, visible on the other."""
    r, occ = layout.radius, layout.occluder
    lo, hi = _lane(layout)
    left = rng.uniform(lo, occ.x0 - 1 - r)
    right = rng.uniform(occ.x1 + r, hi)
    hidden_left, hidden_right = occ.x0 + r, occ.x1 - 1 - r
    keys = [left, hidden_left, hidden_right, right]
    if _random_direction(rng) < 0:
        keys.reverse()
    hidden_time = rng.uniform(0.15, 0.25)
    before, after = abs(keys[1] - keys[0]), abs(keys[3] - keys[2])
    enter = (1 - hidden_time) * before / (before + after)
    x = np.interp(u, [0, enter, enter + hidden_time, 1], keys)
    y = np.full_like(u, rng.uniform(*layout.behind_rows))
    return x, y


def _falls_into_container(
    layout: _Layout, rng: np.random.Generator, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Free fall from rest above the cup, landing inside it (hidden) before the end."""
    r, cup = layout.radius, layout.container
    x = np.full_like(u, rng.uniform(cup.x0 + r + 0.25, cup.x1 - 1 - r - 0.25))
    top = rng.uniform(r + 1, r + 1 + 6 * layout.scale)
    bottom = cup.y0 + r + rng.uniform(0.25, 1.0) * layout.scale
    landing = rng.uniform(0.7, 0.85)
    y = top + (bottom - top) * np.minimum(u / landing, 1.0) ** 2
    return x, y


def _even_frame_time(rng: np.random.Generator, u: np.ndarray, lo: float, hi: float) -> float:
    """A clip time in [lo, hi] that falls on an even frame (kept by every-2nd-frame sampling)."""
    last = len(u) - 1
    frames = np.arange(int(np.ceil(lo * last)), int(hi * last) + 1)
    frames = frames[frames % 2 == 0]
    return float(rng.choice(frames)) / last


def _bounces_off_wall(
    layout: _Layout, rng: np.random.Generator, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Towards a side wall at constant speed, touching it on an even frame, then back."""
    r = layout.radius
    contact = _even_frame_time(rng, u, 0.35, 0.65)
    reach = _lane(layout)[1] - r
    speed = rng.uniform(0.55, 0.95) * reach / max(contact, 1 - contact)
    # At the contact time the disc reaches half a pixel past the border: it touches column 0.
    x = r - 0.5 + speed * np.abs(u - contact)
    if _random_direction(rng) < 0:
        x = layout.size - 1 - x
    return x, _free_row(layout, rng, u)


def _stops_midway(
    layout: _Layout, rng: np.random.Generator, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Constant speed until the middle of the clip, then still until the end."""
    lo, hi = _lane(layout)
    stop = _even_frame_time(rng, u, 0.4, 0.6)
    distance = rng.uniform(0.4, 0.6) * (hi - lo)
    x = rng.uniform(lo, hi - distance) + distance * np.minimum(u / stop, 1.0)
    if _random_direction(rng) < 0:
        x = _mirror(layout, x)
    return x, _free_row(layout, rng, u)


_TRAJECTORIES: dict[str, Trajectory] = {
    "moves_right": partial(_moves, direction=1),
    "moves_left": partial(_moves, direction=-1),
    "passes_behind": _passes_behind,
    "falls_into_container": _falls_into_container,
    "bounces_off_wall": _bounces_off_wall,
    "stops_midway": _stops_midway,
}


# ------------------------------------------------------------------------- rendering


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of every pixel centre, (H, W) each."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def _discs(x: np.ndarray, y: np.ndarray, radius: float, size: int) -> np.ndarray:
    """(T, H, W) masks of pixel centres within ``radius`` of each frame's centre."""
    yy, xx = _grid(size)
    dist2 = (xx - x[:, None, None]) ** 2 + (yy - y[:, None, None]) ** 2
    return dist2 <= radius**2 + 1e-6


def _box(box: _Box, size: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[box.y0 : box.y1, box.x0 : box.x1] = True
    return mask


def _rounded_bottom(box: _Box, corner: int, size: int) -> np.ndarray:
    """The box with its two bottom corners rounded off (radius ``corner``)."""
    yy, xx = _grid(size)
    dx = np.maximum(np.maximum(box.x0 + corner - xx, xx - (box.x1 - 1 - corner)), 0)
    dy = np.maximum(yy - (box.y1 - 1 - corner), 0)
    return _box(box, size) & (dx**2 + dy**2 <= corner**2 + 1e-6)


def _cup(layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Silhouette of the cup and its darker inside; their difference is the U of the walls."""
    cup, size = layout.container, layout.size
    wall = max(2, round(2.5 * layout.scale))
    corner = max(wall + 1, round(4 * layout.scale))
    inside = _Box(cup.y0, cup.y1 - wall, cup.x0 + wall, cup.x1 - wall)
    return _rounded_bottom(cup, corner, size), _rounded_bottom(inside, corner - wall, size)


def _distractors(rng: np.random.Generator, layout: _Layout, n_frames: int) -> list[np.ndarray]:
    """(T, H, W) masks of 1 or 2 small squares on slow random walks, kept inside the frame."""
    size, scale = layout.size, layout.scale
    masks = []
    for _ in range(int(rng.integers(1, 3))):
        side = max(2, round(rng.uniform(4, 5) * scale))
        room = size - side
        pos = rng.uniform(0, room, 2)
        vel = rng.uniform(-0.35, 0.35, 2) * scale
        mask = np.zeros((n_frames, size, size), bool)
        for t in range(n_frames):
            y, x = np.rint(pos).astype(int)
            mask[t, y : y + side, x : x + side] = True
            vel = np.clip(vel + rng.normal(0, 0.05 * scale, 2), -0.5 * scale, 0.5 * scale)
            pos = pos + vel
            bounced = (pos < 0) | (pos > room)
            vel = np.where(bounced, -vel, vel)
            pos = np.clip(pos, 0, room)
        masks.append(mask)
    return masks


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: int) -> np.ndarray:
    return np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, 3), 0, 255)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Dark (H, W, 3) float image with a static, gently smoothed noise texture."""
    noise = rng.normal(0.0, 1.0, (size, size))
    noise = (noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1) + np.roll(noise, 1, (0, 1))) / 2
    tint = rng.normal(0.0, 1.0, (size, size, 3))
    return _jitter(rng, (18, 20, 26), 4) + 5.0 * noise[..., None] + 1.5 * tint


def _visible(layers: list[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Visible part of each role's (T, H, W) mask, layers given back to front."""
    covered = np.zeros_like(layers[0][1])
    visible = {}
    for role, mask in reversed(layers):
        visible[role] = mask & ~covered
        covered |= mask
    return visible


# Defects of the manipulated variants, as generated videos show them: the target jumps
# to another place (teleport); the whole clip freezes and skips ahead (stutter); the
# background texture and the brightness change on some frames (flicker); the target is
# drawn in front of the bar and the cup it should pass behind or fall into
# (pass_through: only for the events where it meets them).
DEFECTS: tuple[str, ...] = ("teleport", "stutter", "flicker", "pass_through")
_MEETS_OBJECTS = ("passes_behind", "falls_into_container")


def defect_of(index: int) -> str:
    """The defect of the manipulated variant of demo video ``index``: each event's
    variants cycle through the defects it can show, starting at a different one per
    event so that every defect appears."""
    event = index % len(EVENTS)
    kinds = [d for d in DEFECTS if d != "pass_through" or EVENTS[event] in _MEETS_OBJECTS]
    return kinds[(index // len(EVENTS) + event) % len(kinds)]


def _teleported(
    layout: _Layout, flaws: np.random.Generator, x: np.ndarray
) -> tuple[np.ndarray, int]:
    """The target's columns jumping by a quarter to two fifths of the frame at one frame
    in the middle of the clip (towards the side with more room), and that frame."""
    n = len(x)
    jump = int(flaws.integers(round(0.3 * n), round(0.7 * n) + 1))
    r = layout.radius
    room_right = layout.size - 1 - r - x[jump:].max()
    room_left = x[jump:].min() - r
    step = flaws.uniform(0.25, 0.4) * layout.size * (1 if room_right > room_left else -1)
    moved = x.copy()
    moved[jump:] = np.clip(x[jump:] + step, r, layout.size - 1 - r)
    return moved, jump


def _stutter(flaws: np.random.Generator, n_frames: int) -> np.ndarray:
    """Frame order with two freezes of a sixth to a fifth of the clip, each followed by a
    skip ahead (at 32 frames: 5 or 6 frames held, then 5 or 6 skipped)."""
    order = np.arange(n_frames)
    for lo, hi in ((0.1, 0.3), (0.55, 0.75)):
        start = int(flaws.integers(round(lo * n_frames), round(hi * n_frames)))
        hold = int(flaws.integers(round(n_frames / 6), round(n_frames / 5) + 1))
        order[start : start + hold] = start
    return order


def render_video(
    event: str,
    rng: np.random.Generator,
    n_frames: int = 32,
    size: int = 64,
    look: np.random.Generator | None = None,
    defect: str = "",
    flaws: np.random.Generator | None = None,
) -> SyntheticVideo:
    """Render one clip of ``event``; the same rng state always gives the same clip.

    ``rng`` draws the geometry (layout, trajectories, distractors) before the look, so
    passing ``look`` re-renders the very same scene, masks and motion in another style:
    every colour and the background texture drawn from ``look`` instead of the demo's
    palette (the stylized copies of the static/dynamic analysis). ``defect`` (one of
    DEFECTS, its details drawn from ``flaws``) renders the same scene manipulated.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; expected one of {EVENTS}")
    if n_frames < MIN_FRAMES or size < MIN_SIZE:
        raise ValueError(f"need n_frames >= {MIN_FRAMES} and size >= {MIN_SIZE}")
    if defect and (defect not in DEFECTS or flaws is None):
        raise ValueError(f"defect {defect!r} needs to be one of {DEFECTS}, with a flaws rng")
    if defect == "pass_through" and event not in _MEETS_OBJECTS:
        raise ValueError(f"a {event} target meets no object to pass through")
    layout = _sample_layout(rng, size)
    u = np.linspace(0.0, 1.0, n_frames)
    x, y = _TRAJECTORIES[event](layout, rng, u)
    defect_frames = np.zeros(n_frames, bool)
    if defect == "teleport":
        x, jump = _teleported(layout, flaws, x)
        defect_frames[jump] = True
    target = _discs(x, y, layout.radius, size)
    squares = _distractors(rng, layout, n_frames)
    cup, inside = _cup(layout)
    occluder = _box(layout.occluder, size)

    paint = rng if look is None else look
    frames = np.repeat(_background(paint, size)[None], n_frames, axis=0)
    if defect == "flicker":  # another texture and a brightness jump on a quarter of the frames
        defect_frames[flaws.choice(n_frames, max(2, n_frames // 4), replace=False)] = True
        frames[defect_frames] = _background(flaws, size)
    for square in squares:
        frames[square] = _jitter(paint, [(40, 90, 220), (40, 190, 80)][paint.integers(2)], 20)
    target_colour = _jitter(paint, (215, 40, 35), 20)
    frames[target] = target_colour
    frames[:, occluder] = _jitter(paint, (135, 135, 135), 4) + paint.integers(-15, 16)
    frames[:, cup] = _jitter(paint, (215, 125, 45), 15)
    frames[:, inside] = _jitter(paint, (110, 60, 25), 10)

    def every_frame(mask: np.ndarray) -> np.ndarray:
        return np.broadcast_to(mask, target.shape)

    depth = [
        ("distractor", np.logical_or.reduce(squares)),
        ("target", target),
        ("occluder", every_frame(occluder)),
        ("container", every_frame(cup)),
    ]
    if defect == "pass_through":  # the target in front of everything
        frames[target] = target_colour
        depth.append(depth.pop(1))
        defect_frames = (target & (occluder | cup)).any(axis=(1, 2))
    visible = _visible(depth)
    masks = np.stack([visible[role] for role in ROLES])
    if defect == "flicker":
        shift = flaws.uniform(25, 45, defect_frames.sum()) * flaws.choice(
            [-1, 1], defect_frames.sum()
        )
        frames[defect_frames] += shift[:, None, None, None]
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    if defect == "stutter":
        order = _stutter(flaws, n_frames)
        frames, masks, target = frames[order], masks[:, order], target[order]
        defect_frames = np.r_[False, order[1:] == order[:-1]] | np.r_[False, np.diff(order) > 1]
    return SyntheticVideo(
        frames=frames,
        masks=masks,
        amodal_target=target,
        event=event,
        defect=defect,
        defect_frames=defect_frames if defect else None,
    )


# ---------------------------------------------------------------------------- output


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 24) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as near-lossless H.264, replacing ``path`` atomically.

    The same frames always give the same bytes: x264 runs single-threaded and without its
    macroblock-tree rate control, which made the output of small clips vary from run to run.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 (yuv420p) needs even sizes, got {height}x{width}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    try:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream("libx264", rate=fps, options=X264_OPTIONS)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 1
            for index, rgb in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, fps)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def generate_dataset(
    out_dir: str | Path,
    videos_per_event: int,
    seed: int,
    n_frames: int = 32,
    size: int = 64,
    fps: int = 24,
    styles: int = 0,
    manipulated: bool = False,
    *,
    progress: bool = False,
) -> pd.DataFrame:
    """Write ``videos/*.mp4``, ``samples.tsv`` and ``ground_truth.zarr`` under ``out_dir``,
    and ``styles`` stylized copies of each video, ``styled/<id>-s<k>.mp4``; with
    ``manipulated``, each scene's manipulated variant ``manipulated/<id>-m.mp4``, their
    ground truth ``manipulated.zarr`` and ``detection.tsv`` (every natural and manipulated
    video, ``label`` natural or manipulated, ``group`` the scene, and the ``defect``).

    Video ``i`` shows ``EVENTS[i % len(EVENTS)]`` and is rendered from
    ``np.random.default_rng([seed, i])``, so each one can be reproduced on its own; its
    copy ``k`` is the same scene in the look drawn from ``default_rng([seed, i, k])``, its
    manipulated variant the same scene with ``defect_of(i)`` drawn from
    ``default_rng([seed, i, 0, 1])``. Returns the samples table (columns ``path``, ``id``,
    ``label``, and ``styled``, the copies' paths joined by ``;``, when there are copies).
    """
    if videos_per_event < 1:
        raise ValueError("videos_per_event must be at least 1")
    out_dir = Path(out_dir)
    ids = dataset_ids(videos_per_event)
    labels = np.arange(len(ids), dtype=np.int64) % len(EVENTS)
    attrs = {
        "roles": list(ROLES),
        "events": list(EVENTS),
        "seed": int(seed),
        "n_frames": n_frames,
        "size": size,
        "fps": fps,
    }
    natural, variants = [], []
    for i in tqdm(range(len(ids)), desc="synthetic videos", unit="video", disable=not progress):
        event = EVENTS[labels[i]]
        video = render_video(event, np.random.default_rng([seed, i]), n_frames, size)
        write_mp4(out_dir / "videos" / f"{ids[i]}.mp4", video.frames, fps)
        natural.append(video)
        for k in range(1, styles + 1):
            look = np.random.default_rng([seed, i, k])
            copy = render_video(event, np.random.default_rng([seed, i]), n_frames, size, look)
            write_mp4(out_dir / styled_path(ids[i], k), copy.frames, fps)
        if manipulated:
            flaws = np.random.default_rng([seed, i, 0, 1])
            variant = render_video(
                event, np.random.default_rng([seed, i]), n_frames, size, None, defect_of(i), flaws
            )
            write_mp4(out_dir / manipulated_path(ids[i]), variant.frames, fps)
            variants.append(variant)
    _write_ground_truth(out_dir / "ground_truth.zarr", ids, labels, natural, attrs)
    table = pd.DataFrame(
        {
            "path": [f"videos/{vid}.mp4" for vid in ids],
            "id": ids,
            "label": [EVENTS[k] for k in labels],
        }
    )
    if styles:
        table["styled"] = [
            ";".join(styled_path(vid, k) for k in range(1, styles + 1)) for vid in ids
        ]
    write_table(table, out_dir / "samples.tsv")
    if manipulated:
        variant_ids = [manipulated_id(vid) for vid in ids]
        _write_ground_truth(out_dir / "manipulated.zarr", variant_ids, labels, variants, attrs)
        detection = pd.DataFrame(
            {
                "path": [f"videos/{vid}.mp4" for vid in ids]
                + [manipulated_path(vid) for vid in ids],
                "id": ids + variant_ids,
                "label": ["natural"] * len(ids) + ["manipulated"] * len(ids),
                "group": ids + ids,
                "defect": [""] * len(ids) + [v.defect for v in variants],
            }
        )
        write_table(detection, out_dir / "detection.tsv")
    return table


def _write_ground_truth(
    path: Path,
    ids: list[str],
    labels: np.ndarray,
    videos: list[SyntheticVideo],
    attrs: dict,
) -> None:
    """A ground-truth store: each video's role masks, amodal target and event label;
    for manipulated videos also each one's defect (index into DEFECTS) and the frames
    showing it."""
    defects = [v.defect for v in videos]
    extra = {"defects": list(DEFECTS)} if any(defects) else {}
    with atomic_store(path, kind="ground_truth", video_ids=ids, **attrs, **extra) as group:
        frame_shape = videos[0].amodal_target.shape
        masks = create_array(
            group,
            "masks",
            (len(ids), len(ROLES), *frame_shape),
            "uint8",
            (1, len(ROLES), *frame_shape),
        )
        amodal = create_array(
            group, "amodal_target", (len(ids), *frame_shape), "uint8", (1, *frame_shape)
        )
        for i, video in enumerate(videos):
            masks[i] = video.masks.astype(np.uint8)
            amodal[i] = video.amodal_target.astype(np.uint8)
        write_array(group, "labels", labels)
        if extra:
            write_array(group, "defects", np.array([DEFECTS.index(d) for d in defects]))
            write_array(
                group, "defect_frames", np.stack([v.defect_frames for v in videos]).astype(np.uint8)
            )
