"""Zarr stores written atomically: a killed job never leaves a store that looks complete.

Every stage writes its store into a hidden temporary sibling, consolidates the metadata,
marks it complete and only then renames it into place. Readers open stores with
:func:`open_store`, which refuses anything without the completion mark.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

COMPLETE_ATTR = "videoconcepts_complete"
FORMAT_ATTR = "videoconcepts_store"


class IncompleteStoreError(RuntimeError):
    """A store is missing, was never finished, or holds another kind of data."""


def compressor(dtype: np.dtype | str) -> BloscCodec:
    """Blosc/zstd; bit-shuffle suits float tensors, byte-shuffle suits small ints and pixels."""
    shuffle = BloscShuffle.bitshuffle if np.dtype(dtype).kind == "f" else BloscShuffle.shuffle
    return BloscCodec(cname="zstd", clevel=5, shuffle=shuffle)


@contextmanager
def _consolidated_is_intended() -> Iterator[None]:
    """Consolidated metadata is a zarr-python extension to format 3; we rely on it on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        yield


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete temporary siblings left by killed writers of ``path``; return what was removed."""
    removed = []
    if path.parent.is_dir():
        for stale in path.parent.glob(_temp_prefix(path) + "*"):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


@contextmanager
def atomic_store(path: str | Path, kind: str, **attrs: Any) -> Iterator[zarr.Group]:
    """Yield a Zarr v3 group written to a temp sibling, renamed to ``path`` only on success.

    ``kind`` names what the store holds (``decode``, ``features``, ...); readers check it.
    On any exception the temporary directory is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = path.with_name(_temp_prefix(path) + uuid.uuid4().hex[:8])
    group = zarr.open_group(tmp, mode="w", zarr_format=3)
    group.attrs.update({FORMAT_ATTR: kind, **attrs})
    try:
        yield group
        group.attrs[COMPLETE_ATTR] = True
        with _consolidated_is_intended():
            zarr.consolidate_metadata(tmp)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_array(
    group: zarr.Group, name: str, data: np.ndarray, chunks: tuple[int, ...] | None = None
) -> zarr.Array:
    """Create a compressed array filled with ``data`` (chunked as a whole unless given)."""
    data = np.asarray(data)
    array = group.create_array(
        name,
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks or tuple(max(1, s) for s in data.shape),
        compressors=compressor(data.dtype),
    )
    if data.size:
        array[...] = data
    return array


def create_array(
    group: zarr.Group, name: str, shape: tuple[int, ...], dtype: str, chunks: tuple[int, ...]
) -> zarr.Array:
    """Create an empty compressed array to be filled chunk region by chunk region."""
    return group.create_array(
        name, shape=shape, dtype=dtype, chunks=chunks, compressors=compressor(dtype)
    )


def open_store(path: str | Path, kind: str) -> zarr.Group:
    """Open a finished store of the given kind read-only, or raise naming the problem."""
    path = Path(path)
    if not path.exists():
        raise IncompleteStoreError(f"{path}: store does not exist")
    try:
        with _consolidated_is_intended():
            group = zarr.open_consolidated(path, mode="r", zarr_format=3)
    except Exception as err:  # zarr raises several types for unreadable metadata
        raise IncompleteStoreError(f"{path}: not a readable Zarr store ({err})") from err
    if not group.attrs.get(COMPLETE_ATTR):
        raise IncompleteStoreError(f"{path}: store was never completed (killed writer?)")
    found = group.attrs.get(FORMAT_ATTR)
    if found != kind:
        raise IncompleteStoreError(f"{path}: holds a {found!r} store, expected {kind!r}")
    return group


def write_table(table: pd.DataFrame, path: str | Path, float_format: str | None = None) -> None:
    """Write a TSV table atomically (temp file, then rename): never half a table."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, sep="\t", index=False, float_format=float_format)
    os.replace(tmp, path)
