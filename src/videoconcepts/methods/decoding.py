"""Decoding one clip the way a model expects: which frames, at what size, with what crop.

A video is probed with PyAV (frame count, size, frame rate and every frame's timestamp),
the clip's frames are chosen from that probe, and they are decoded by one of two
backends, resized (short side to ``size``, aspect kept) and centre-cropped to ``size`` x
``size``. Both backends give identical frames: decord resizes inside its decoder with
FFmpeg's ``scale=W:H`` filter, whose default in the FFmpeg decord bundles (4.1) is
bilinear, so the PyAV backend runs the same filter with ``flags=bilinear`` in its own
filter graph (tested bit for bit). The backend is therefore a runtime option, not a
setting that shapes results, and a clip decord fails on is decoded by PyAV (recorded as
its backend), which names the damage where the file is damaged: decord also fails on
sound files at some output widths (48 and 72 px). decord is optional: it has no wheels
for macOS on Apple silicon or Linux aarch64.
"""

from __future__ import annotations

import bisect
import importlib.util
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

Backend = Literal["decord", "pyav"]


class BadVideoError(ValueError):
    """A video file cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class DecodeSettings:
    """How to sample a clip: ``num_frames`` frames every ``frame_stride`` source frames,
    starting at ``clip_start`` ("start", "center" or a source frame index), resized and
    centre-cropped to ``size`` pixels square. ``sampling="index"`` steps through frame
    indices; ``"time"`` takes the frame shown at evenly spaced times, ``frame_stride``
    frames of the stream's average frame rate apart (the same frames on a constant frame
    rate, even time steps on a variable one), or, with ``window``, ``num_frames`` instants
    spanning ``window`` seconds (ReStraV samples 24 frames over 2 s)."""

    num_frames: int
    frame_stride: int
    clip_start: str | int
    size: int
    sampling: Literal["index", "time"]
    window: float | None


@dataclass(frozen=True)
class DecodedClip:
    frames: np.ndarray  # (T, size, size, 3) uint8
    indices: np.ndarray  # (T,) source frame index of each sampled frame
    times: np.ndarray  # (T,) float64 stream timestamp of each sampled frame, in seconds
    fps: float
    original_size: tuple[int, int]  # (height, width) of the source
    resized_size: tuple[int, int]  # (height, width) after the aspect-preserving resize
    crop_box: tuple[int, int, int, int]  # (top, left, height, width) in resized coordinates
    source_num_frames: int
    backend: Backend


@dataclass(frozen=True)
class Probe:
    """What a video holds, read from its container without decoding."""

    times: list[Fraction]  # timestamp of every frame in presentation order, in seconds
    fps: Fraction  # the stream's average frame rate
    height: int
    width: int


def resolve_backend(backend: str) -> Backend:
    """``auto``: decord where it is installed, else PyAV. An explicit choice is checked."""
    has_decord = importlib.util.find_spec("decord") is not None
    if backend == "auto":
        return "decord" if has_decord else "pyav"
    if backend == "decord" and not has_decord:
        raise RuntimeError(
            "decode.backend is decord but decord is not installed "
            "(pip install 'videoconcepts[decord]', or use auto or pyav)"
        )
    if backend not in ("decord", "pyav"):
        raise ValueError(f"unknown decode backend {backend!r}")
    return backend


def sample_indices(n_source: int, settings: DecodeSettings) -> np.ndarray:
    """Source frame indices of the clip by index; raises ``ValueError`` when too short."""
    span = (settings.num_frames - 1) * settings.frame_stride + 1
    if n_source < span:
        raise ValueError(
            f"too few frames: {n_source} in the file, the clip needs {span} "
            f"({settings.num_frames} frames every {settings.frame_stride})"
        )
    if settings.clip_start == "start":
        first = 0
    elif settings.clip_start == "center":
        first = (n_source - span) // 2
    else:
        first = int(settings.clip_start)
        if first + span > n_source:
            raise ValueError(
                f"too few frames: clip_start={first} needs {first + span} frames, "
                f"the file has {n_source}"
            )
    return first + settings.frame_stride * np.arange(settings.num_frames)


def sample_times(times: list[Fraction], fps: Fraction, settings: DecodeSettings) -> np.ndarray:
    """Source frame indices of the clip by time: the frame shown at each of ``num_frames``
    instants ``frame_stride / fps`` seconds apart, or ``window / (num_frames - 1)`` with a
    window (exact rational arithmetic, so a constant frame rate gives
    :func:`sample_indices`'s frames). ``times`` are sorted frame timestamps; raises
    ``ValueError`` when the video is too short."""
    if settings.window is not None:
        step = Fraction(settings.window).limit_denominator(10**6) / (settings.num_frames - 1)
    else:
        step = settings.frame_stride / fps
    span = (settings.num_frames - 1) * step
    if settings.clip_start == "start":
        first = times[0]
    elif settings.clip_start == "center":
        first = times[0] + (times[-1] - times[0] - span) / 2
    elif int(settings.clip_start) < len(times):
        first = times[int(settings.clip_start)]
    else:
        raise ValueError(
            f"too few frames: clip_start={settings.clip_start}, the file has {len(times)}"
        )
    if first + span > times[-1]:  # centred, also when the clip would start before frame 0
        raise ValueError(
            f"too short: the clip spans {float(span):.3f} s ({settings.num_frames} frames "
            f"{float(step):.4g} s apart) from {float(first):.3f} s, "
            f"the last frame is at {float(times[-1]):.3f} s"
        )
    return np.array(
        [bisect.bisect_right(times, first + k * step) - 1 for k in range(settings.num_frames)]
    )


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Aspect-preserving (height, width) whose short side is ``size``."""
    scale = size / min(height, width)
    return max(size, round(height * scale)), max(size, round(width * scale))


def _check_file(path: Path) -> None:
    if not path.exists():
        raise BadVideoError(path, "file does not exist")
    if not path.is_file():
        raise BadVideoError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise BadVideoError(path, "empty file (0 bytes)")


def _reason(err: Exception) -> str:
    """The last line of a decoder's message, without decord's log prefix."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1].split("] ")[-1][:200] if lines else type(err).__name__


def probe(path: Path) -> Probe:
    """Frame timestamps, frame rate and size of the first video stream (packets only)."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise BadVideoError(path, "the file holds no video frames")
        stream = container.streams.video[0]
        try:
            pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        except av.FFmpegError as err:
            raise BadVideoError(path, f"corrupt or truncated video data ({_reason(err)})") from err
        if not pts:
            raise BadVideoError(path, "the file holds no video frames")
        if stream.frames > len(pts):  # the container's index (where it has one) lists more
            raise BadVideoError(
                path,
                f"corrupt or truncated video data (the index lists {stream.frames} frames, "
                f"{len(pts)} are in the file)",
            )
        fps = stream.average_rate or stream.guessed_rate
        if not fps:
            raise BadVideoError(path, "the stream states no frame rate")
        base = stream.time_base
        return Probe(
            times=[p * base for p in pts],
            fps=Fraction(fps),
            height=stream.codec_context.height,
            width=stream.codec_context.width,
        )


def _decode_decord(path: Path, indices: np.ndarray, height: int, width: int) -> np.ndarray | None:
    """The sampled frames, or None where decord fails: on damaged files, and on sound
    ones at some output sizes (48 or 72 px wide: four channels come back and the copy
    fails, dmlc/decord#336), so the caller asks PyAV, which names the damage if any."""
    import decord

    try:
        reader = decord.VideoReader(str(path), width=width, height=height, num_threads=1)
        return reader.get_batch(indices.tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError):
        return None


def _resize_graph(
    frame: av.VideoFrame, time_base: Fraction, height: int, width: int
) -> av.filter.Graph:
    """decord's filter graph: buffer -> ``scale=W:H`` (bilinear) -> rgb24 -> sink."""
    graph = av.filter.Graph()
    chain = [
        graph.add_buffer(
            width=frame.width, height=frame.height, format=frame.format, time_base=time_base
        ),
        graph.add("scale", f"{width}:{height}:flags=bilinear"),
        graph.add("format", "rgb24"),
        graph.add("buffersink"),
    ]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        upstream.link_to(downstream)
    graph.configure()
    return graph


def _decode_pyav(path: Path, indices: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decode from the start up to the clip's last frame, resizing the sampled ones with
    the filter decord runs (``scale=W:H``, bilinear, to rgb24)."""
    wanted = set(indices.tolist())
    decoded: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        graph = None
        for index, frame in enumerate(container.decode(stream)):
            if index not in wanted:
                continue
            graph = graph or _resize_graph(frame, stream.time_base, height, width)
            graph.push(frame)
            decoded[index] = graph.pull().to_ndarray()
            if len(decoded) == len(wanted):
                break
    # a frame shown at two sampled instants (time sampling) is repeated; a missing one is
    # left out, which the caller reports
    kept = [decoded[i] for i in indices.tolist() if i in decoded]
    return np.stack(kept) if kept else np.zeros((0, height, width, 3), np.uint8)


def decode_clip(path: str | Path, settings: DecodeSettings, backend: Backend) -> DecodedClip:
    """Decode and sample one clip; raises :class:`BadVideoError` for unusable files."""
    path = Path(path)
    _check_file(path)
    try:
        info = probe(path)
    except av.FFmpegError as err:
        raise BadVideoError(path, f"not a readable video ({_reason(err)})") from err
    try:
        if settings.sampling == "time":
            indices = sample_times(info.times, info.fps, settings)
        else:
            indices = sample_indices(len(info.times), settings)
    except ValueError as err:
        raise BadVideoError(path, str(err)) from err
    new_h, new_w = resized_shape(info.height, info.width, settings.size)
    frames = _decode_decord(path, indices, new_h, new_w) if backend == "decord" else None
    if frames is None:
        backend = "pyav"  # the same frames, bit for bit (module docstring)
        try:
            frames = _decode_pyav(path, indices, new_h, new_w)
        except av.FFmpegError as err:
            reason = f"corrupt or truncated video data ({_reason(err)})"
            raise BadVideoError(path, reason) from err
    if frames.shape[0] != settings.num_frames:
        raise BadVideoError(
            path,
            f"corrupt or truncated video data (decoded {frames.shape[0]} of "
            f"{settings.num_frames} requested frames)",
        )
    top, left = (new_h - settings.size) // 2, (new_w - settings.size) // 2
    frames = frames[:, top : top + settings.size, left : left + settings.size]
    return DecodedClip(
        frames=np.ascontiguousarray(frames, dtype=np.uint8),
        indices=indices,
        times=np.array([float(info.times[i]) for i in indices]),
        fps=float(info.fps),
        original_size=(info.height, info.width),
        resized_size=(new_h, new_w),
        crop_box=(top, left, settings.size, settings.size),
        source_num_frames=len(info.times),
        backend=backend,
    )
