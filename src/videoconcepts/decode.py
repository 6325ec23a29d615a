"""Decode stage: sample a clip the way the model expects and store it as uint8 frames.

Frames are decoded with decord, resized by decord (short side to ``size``, aspect kept)
and centre-cropped to ``size`` x ``size``. The store keeps the map from sampled frames
back to source frames and the crop box, so later stages can put ground truth or
concept masks back on the source video.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import decord
import numpy as np
import zarr

from videoconcepts.stores import atomic_store, open_store, write_array

KIND = "decode"
OnBadVideo = Literal["fail", "skip"]


class BadVideoError(ValueError):
    """A video file cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class SkippedVideoError(RuntimeError):
    """A decode store records a skipped video; there are no frames to read."""


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def write_decode_store(
    video: str | Path,
    out: str | Path,
    video_id: str,
    settings: DecodeSettings,
    on_bad_video: OnBadVideo = "fail",
) -> str:
    """Decode ``video`` into the store ``out``; return ``"ok"`` or ``"skipped"``.

    With ``on_bad_video="skip"`` a bad file yields a store holding no frames and the
    attributes ``status="skipped"`` and ``reason``; with ``"fail"`` the error propagates
    and nothing is written.
    """
    video = Path(video)
    provenance = {"video_id": video_id, "source_path": str(video.resolve())}
    try:
        clip = decode_clip(video, settings)
    except BadVideoError as err:
        if on_bad_video == "fail":
            raise
        with atomic_store(out, KIND, status="skipped", reason=err.reason, **provenance):
            pass
        return "skipped"
    with atomic_store(
        out,
        KIND,
        status="ok",
        **provenance,
        source_sha256=sha256_of(video),
        fps=clip.fps,
        original_size=list(clip.original_size),
        resized_size=list(clip.resized_size),
        crop_box=list(clip.crop_box),
        source_num_frames=clip.source_num_frames,
        sampled_indices=clip.indices.tolist(),
        settings=asdict(settings),
    ) as group:
        write_array(group, "frames", clip.frames, chunks=(1, *clip.frames.shape[1:]))
    return "ok"


def open_decoded(path: str | Path) -> zarr.Group:
    """Open a decode store that holds frames; raise :class:`SkippedVideoError` for a skip record."""
    group = open_store(path, KIND)
    if group.attrs["status"] != "ok":
        raise SkippedVideoError(f"{path}: video was skipped ({group.attrs['reason']})")
    return group


def decode_status(path: str | Path) -> dict[str, str]:
    """The id, source, status and skip reason recorded in a decode store."""
    attrs = open_store(path, KIND).attrs
    return {
        "id": attrs["video_id"],
        "path": attrs["source_path"],
        "status": attrs["status"],
        "reason": attrs.get("reason", ""),
    }


class Clips:
    """Decoded clips of the videos a job scores, read one at a time from their stores."""

    def __init__(self, video_ids: Sequence[str], decode_stores: Sequence[str | Path]):
        self.video_ids = list(video_ids)
        self._frames = [open_decoded(p)["frames"] for p in decode_stores]

    def __len__(self) -> int:
        return len(self.video_ids)

    def frames(self, video: int) -> np.ndarray:
        return self._frames[video][...]
