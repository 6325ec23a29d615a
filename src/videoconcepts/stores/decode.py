"""Decode stores (kind ``decode``): one per video, its sampled uint8 frames or a skip record.

The store keeps the map from sampled frames back to source frames and the crop box, so
later stages can put ground truth or concept masks back on the source video.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import zarr

from videoconcepts.stores.base import open_store

KIND = "decode"


class SkippedVideoError(RuntimeError):
    """A decode store records a skipped video; there are no frames to read."""


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


def split_decoded(
    decode_stores: Sequence[str | Path],
) -> tuple[list[Path], list[str], list[dict[str, str]]]:
    """The stores that hold frames, their video ids, and the status of each skipped video
    (each store's attributes read once)."""
    ok, ids, skipped = [], [], []
    for store in decode_stores:
        status = decode_status(store)
        if status["status"] == "ok":
            ok.append(Path(store))
            ids.append(status["id"])
        else:
            skipped.append(status)
    return ok, ids, skipped


class Clips:
    """Decoded clips of the videos a job scores, read one at a time from their stores;
    the last ``cache`` clips read are kept (the report draws each video many times)."""

    def __init__(
        self, video_ids: Sequence[str], decode_stores: Sequence[str | Path], cache: int = 0
    ):
        self.video_ids = list(video_ids)
        self._frames = [open_decoded(p)["frames"] for p in decode_stores]
        self.frames = lru_cache(maxsize=cache)(self._read) if cache else self._read

    def __len__(self) -> int:
        return len(self.video_ids)

    def _read(self, video: int) -> np.ndarray:
        return self._frames[video][...]
