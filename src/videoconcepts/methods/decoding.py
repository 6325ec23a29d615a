"""Decoding one clip the way a model expects: which frames, at what size, with what crop.

Frames are decoded with decord, resized by decord (short side to ``size``, aspect kept)
and centre-cropped to ``size`` x ``size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import decord
import numpy as np


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
    centre-cropped to ``size`` pixels square."""

    num_frames: int
    frame_stride: int
    clip_start: str | int
    size: int


@dataclass(frozen=True)
class DecodedClip:
    frames: np.ndarray  # (T, size, size, 3) uint8
    indices: np.ndarray  # (T,) source frame index of each sampled frame
    fps: float
    original_size: tuple[int, int]  # (height, width) of the source
    resized_size: tuple[int, int]  # (height, width) after the aspect-preserving resize
    crop_box: tuple[int, int, int, int]  # (top, left, height, width) in resized coordinates
    source_num_frames: int


def sample_indices(n_source: int, settings: DecodeSettings) -> np.ndarray:
    """Source frame indices of the clip; raises ``ValueError`` when the video is too short."""
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


def _decord_reason(err: Exception) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1].split("] ")[-1][:200] if lines else type(err).__name__


def decode_clip(path: str | Path, settings: DecodeSettings) -> DecodedClip:
    """Decode and sample one clip; raises :class:`BadVideoError` for unusable files."""
    path = Path(path)
    _check_file(path)
    try:
        probe = decord.VideoReader(str(path), num_threads=1)
        n_source = len(probe)
        height, width = probe[0].shape[:2]
        fps = float(probe.get_avg_fps())
        del probe
    except (decord.DECORDError, RuntimeError) as err:
        raise BadVideoError(path, f"not a readable video ({_decord_reason(err)})") from err
    if n_source == 0:
        raise BadVideoError(path, "the file holds no video frames")
    try:
        indices = sample_indices(n_source, settings)
    except ValueError as err:
        raise BadVideoError(path, str(err)) from err
    new_h, new_w = resized_shape(height, width, settings.size)
    try:
        reader = decord.VideoReader(str(path), width=new_w, height=new_h, num_threads=1)
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError) as err:
        raise BadVideoError(
            path, f"corrupt or truncated video data ({_decord_reason(err)})"
        ) from err
    if frames.shape[0] != settings.num_frames:
        raise BadVideoError(
            path, f"decoded {frames.shape[0]} of {settings.num_frames} requested frames"
        )
    top, left = (new_h - settings.size) // 2, (new_w - settings.size) // 2
    frames = frames[:, top : top + settings.size, left : left + settings.size]
    return DecodedClip(
        frames=np.ascontiguousarray(frames, dtype=np.uint8),
        indices=indices,
        fps=fps,
        original_size=(height, width),
        resized_size=(new_h, new_w),
        crop_box=(top, left, settings.size, settings.size),
        source_num_frames=n_source,
    )
