"""Zarr stores written atomically: a killed job never leaves a store that looks complete.

Every stage writes its store into a hidden temporary sibling, seals it (a digest of each
attribute and array's metadata), marks it complete, consolidates the metadata and only
then renames it into place. Readers open stores with :func:`open_store`, which refuses
anything without the completion mark, a temporary store, and a store changed after it
was written; chunk reads go through a store that names the file of a missing or
corrupt chunk instead of returning fill values or garbage.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google_crc32c
import numpy as np
import zarr
from zarr.abc.store import ByteRequest
from zarr.codecs import BloscCodec, BloscShuffle, Crc32cCodec
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore

if TYPE_CHECKING:  # pandas is for tables only: frame-store jobs start faster without it
    import pandas as pd

COMPLETE_ATTR = "videoconcepts_complete"
FORMAT_ATTR = "videoconcepts_store"
SEAL_ATTR = "videoconcepts_seal"
# Errors that mean "this location cannot take the store", as opposed to a bug or bad input.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class StoreError(RuntimeError):
    """Base of the errors below: a store that cannot be used, named with the problem."""


class IncompleteStoreError(StoreError):
    """A store is missing, was never finished, or holds another kind of data."""


class CorruptStoreError(StoreError):
    """A finished store was changed afterwards: edited metadata, a missing or damaged chunk."""


class StoreWriteError(StoreError):
    """The file system refused the store (full, read-only, no permission)."""


def compressors(dtype: np.dtype | str) -> tuple[BloscCodec, Crc32cCodec]:
    """Blosc/zstd, then a CRC32C checksum per chunk so damaged chunks are detected.

    Bit-shuffle suits float tensors, byte-shuffle small ints and pixels.
    """
    shuffle = BloscShuffle.bitshuffle if np.dtype(dtype).kind == "f" else BloscShuffle.shuffle
    return BloscCodec(cname="zstd", clevel=5, shuffle=shuffle), Crc32cCodec()


# Every chunk is written, even one that holds only the fill value, so a missing chunk
# file always means damage (zarr would otherwise read it silently as fill values).
_ARRAY_CONFIG = {"write_empty_chunks": True}


@contextmanager
def _consolidated_is_intended() -> Iterator[None]:
    """Consolidated metadata is a zarr-python extension to format 3; we rely on it on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        yield


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def _is_temp(path: Path) -> bool:
    return path.name.startswith(".") and ".tmp-" in path.name


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete temporary siblings left by killed writers of ``path``; return what was removed."""
    removed = []
    if path.parent.is_dir():
        for stale in path.parent.glob(_temp_prefix(path) + "*"):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _seal(attrs: dict[str, Any], arrays: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Digest of every attribute and of every array's metadata (shape, dtype, chunks, codecs)."""
    return {
        "attributes": {
            key: _digest(value)
            for key, value in attrs.items()
            if key not in (SEAL_ATTR, COMPLETE_ATTR)
        },
        "arrays": {name: _digest(meta.to_dict()) for name, meta in arrays.items()},
    }


def _write_error(err: OSError, path: Path) -> StoreWriteError | None:
    """A clear error for a file system that refuses ``path``; None for other OS errors."""
    folder = Path(os.path.abspath(path.parent))
    ours = err.filename is None or Path(os.path.abspath(err.filename)).is_relative_to(folder)
    if err.errno not in _WRITE_ERRNOS or not ours:
        return None
    where = f" ({err.filename})" if err.filename else ""
    return StoreWriteError(
        f"{path}: cannot write: {err.strerror or err}{where}; nothing was written "
        f"(free space or make {path.parent} writable, then rerun)"
    )


def _discard(tmp: Path, settle: float = 0.1, timeout: float = 5.0) -> None:
    """Remove a failed writer's temp directory.

    When one chunk write fails (a full disk), zarr raises while its other writes are
    still running in its threads, and they recreate folders: remove until the directory
    has stayed gone for ``settle`` seconds. What might still survive is a hidden temp,
    never a store, and the next writer of the path removes it.
    """
    gone_since, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            gone_since = None
        elif gone_since is None:
            gone_since = time.monotonic()
        elif time.monotonic() - gone_since >= settle:
            return
        time.sleep(0.01)


@contextmanager
def atomic_store(path: str | Path, kind: str, **attrs: Any) -> Iterator[zarr.Group]:
    """Yield a Zarr v3 group written to a temp sibling, renamed to ``path`` only on success.

    ``kind`` names what the store holds (``decode``, ``features``, ...); readers check it.
    On any exception the temporary directory is removed and ``path`` is left untouched; a
    file system that refuses the store (full, read-only) raises :class:`StoreWriteError`.
    """
    path = Path(path)
    tmp = path.with_name(_temp_prefix(path) + uuid.uuid4().hex[:8])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        group.attrs.update({FORMAT_ATTR: kind, **attrs})
        yield group
        written = zarr.open_group(tmp, mode="r", zarr_format=3)  # as a reader will see it
        arrays = {name: node.metadata for name, node in written.members()}
        group.attrs.update({SEAL_ATTR: _seal(dict(written.attrs), arrays), COMPLETE_ATTR: True})
        with _consolidated_is_intended():
            zarr.consolidate_metadata(tmp)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except OSError as err:
        refused = _write_error(err, path)
        if refused is None:
            raise
        raise refused from err
    finally:
        if tmp.exists():  # the writer failed
            _discard(tmp)


def write_array(
    group: zarr.Group, name: str, data: np.ndarray, chunks: tuple[int, ...] | None = None
) -> zarr.Array:
    """Create a compressed array filled with ``data`` (chunked as a whole unless given)."""
    data = np.asarray(data)
    array = create_array(
        group, name, data.shape, data.dtype, chunks or tuple(max(1, s) for s in data.shape)
    )
    if data.size:
        array[...] = data
    return array


def create_array(
    group: zarr.Group,
    name: str,
    shape: tuple[int, ...],
    dtype: np.dtype | str,
    chunks: tuple[int, ...],
) -> zarr.Array:
    """Create an empty compressed array to be filled chunk region by chunk region."""
    return group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        compressors=compressors(dtype),
        config=_ARRAY_CONFIG,
    )


class _CheckedStore(LocalStore):
    """Read-only local store that names the file of a missing or damaged chunk.

    Stores written here hold every chunk with a CRC32C suffix, so a missing chunk file or
    a checksum mismatch means the store was changed after it was written.
    """

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        buffer = await super().get(key, prototype, byte_range)
        if key.rsplit("/", 1)[-1] == "zarr.json" or byte_range is not None:
            return buffer
        if buffer is None:
            raise CorruptStoreError(
                f"{self.root / key}: chunk file missing (deleted after writing)"
            )
        data = buffer.as_numpy_array()
        if len(data) < 4 or google_crc32c.value(data[:-4].tobytes()) != int.from_bytes(
            data[-4:].tobytes(), "little"
        ):
            raise CorruptStoreError(f"{self.root / key}: chunk damaged (checksum mismatch)")
        return buffer


def _check_seal(path: Path, group: zarr.Group) -> None:
    """Raise naming what differs from the seal written with the store."""
    sealed = group.attrs.get(SEAL_ATTR)
    if sealed is None:
        raise CorruptStoreError(f"{path / 'zarr.json'}: no seal (written by an older version?)")
    arrays = group.metadata.consolidated_metadata.metadata
    found = _seal(dict(group.attrs), arrays)
    for section in ("attributes", "arrays"):
        changed = sorted(
            key
            for key in found[section].keys() | sealed[section].keys()
            if found[section].get(key) != sealed[section].get(key)
        )
        if changed:
            raise CorruptStoreError(
                f"{path / 'zarr.json'}: {section} {', '.join(map(repr, changed))} differ from "
                "the seal written with the store (edited afterwards?); delete the store and "
                "rerun the stage that writes it"
            )


def open_store(path: str | Path, kind: str) -> zarr.Group:
    """Open a finished store of the given kind read-only, or raise naming the problem."""
    path = Path(path)
    if _is_temp(path):
        raise IncompleteStoreError(f"{path}: temporary store of a writer, not a finished one")
    if not path.exists():
        raise IncompleteStoreError(f"{path}: store does not exist")
    try:
        with _consolidated_is_intended():
            store = _CheckedStore(path, read_only=True)
            group = zarr.open_consolidated(store, mode="r", zarr_format=3)
    except Exception as err:  # zarr raises several types for unreadable metadata
        raise CorruptStoreError(
            f"{path / 'zarr.json'}: not readable Zarr metadata ({type(err).__name__}: {err})"
        ) from err
    if not group.attrs.get(COMPLETE_ATTR):
        raise IncompleteStoreError(f"{path}: store was never completed (killed writer?)")
    found = group.attrs.get(FORMAT_ATTR)
    if found != kind:
        raise IncompleteStoreError(f"{path}: holds a {found!r} store, expected {kind!r}")
    _check_seal(path, group)
    return group


def write_table(table: pd.DataFrame, path: str | Path, float_format: str | None = None) -> None:
    """Write a TSV table atomically (temp file, then rename): never half a table."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        table.to_csv(tmp, sep="\t", index=False, float_format=float_format)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        refused = _write_error(err, path)
        if refused is None:
            raise
        raise refused from err
