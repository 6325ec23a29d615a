import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from videoconcepts.stores.base import (
    SEAL_ATTR,
    CorruptStoreError,
    IncompleteStoreError,
    StoreWriteError,
    atomic_store,
    open_store,
    remove_stale_temps,
    write_array,
    write_table,
)


def test_round_trip_keeps_values_chunks_and_attrs(tmp_path):
    data = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    with atomic_store(tmp_path / "s.zarr", "demo_kind", note="hi") as group:
        write_array(group, "x", data, chunks=(1, 4, 5))
    group = open_store(tmp_path / "s.zarr", "demo_kind")
    np.testing.assert_array_equal(group["x"][...], data)
    assert group["x"].chunks == (1, 4, 5)
    assert group.attrs["note"] == "hi"
    assert group["x"].compressors  # stored compressed


def test_failed_writer_leaves_nothing_and_keeps_previous_store(tmp_path):
    path = tmp_path / "s.zarr"
    with atomic_store(path, "k") as group:
        write_array(group, "x", np.arange(3))
    with pytest.raises(RuntimeError, match="boom"), atomic_store(path, "k") as group:
        write_array(group, "x", np.arange(5))
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
    np.testing.assert_array_equal(open_store(path, "k")["x"][...], np.arange(3))


def test_killed_writer_temp_is_not_a_store_and_is_cleaned(tmp_path):
    path = tmp_path / "s.zarr"
    stale = tmp_path / ".s.zarr.tmp-deadbeef"
    stale.mkdir()
    (stale / "zarr.json").write_text("{}")
    with pytest.raises(IncompleteStoreError, match="does not exist"):
        open_store(path, "k")
    assert remove_stale_temps(path) == [stale]
    assert not stale.exists()


def test_open_rejects_unfinished_and_wrong_kind(tmp_path):
    import zarr

    unfinished = tmp_path / "u.zarr"
    zarr.open_group(unfinished, mode="w", zarr_format=3)
    zarr.consolidate_metadata(unfinished)
    with pytest.raises(IncompleteStoreError, match="never completed"):
        open_store(unfinished, "k")
    with atomic_store(tmp_path / "d.zarr", "decode"):
        pass
    with pytest.raises(IncompleteStoreError, match="expected 'features'"):
        open_store(tmp_path / "d.zarr", "features")


def test_sigkilled_writer_leaves_no_store_and_rerun_recovers(tmp_path):
    """Kill a real stage process mid-write: only a hidden temp remains, the rerun cleans it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "demo"
    cmd = [
        sys.executable,
        "-m",
        "videoconcepts",
        "demo_data",
        "--out",
        str(out),
        "--videos-per-event",
        "30",
        "--seed",
        "0",
        "--styles",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(out.glob(".ground_truth.zarr.tmp-*/masks")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let it write some chunks
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert list(out.glob(".ground_truth.zarr.tmp-*"))
    assert not (out / "ground_truth.zarr").exists()
    with pytest.raises(IncompleteStoreError):
        open_store(out / "ground_truth.zarr", "ground_truth")

    cmd[cmd.index("30")] = "1"
    subprocess.run(cmd, check=True, capture_output=True)
    assert not list(out.glob(".ground_truth.zarr.tmp-*"))
    assert open_store(out / "ground_truth.zarr", "ground_truth")["masks"].shape[0] == 6


@pytest.fixture
def sealed(tmp_path) -> Path:
    path = tmp_path / "s.zarr"
    with atomic_store(path, "k", video_ids=["a", "b"], layer=3) as group:
        write_array(group, "x", np.arange(12, dtype=np.float32).reshape(3, 4), chunks=(1, 4))
        write_array(group, "empty", np.zeros((2, 2), np.int16), chunks=(1, 2))
    return path


def test_every_chunk_is_written_even_when_it_holds_only_fill_values(sealed):
    assert sorted(p.name for p in (sealed / "empty/c").iterdir()) == ["0", "1"]
    assert open_store(sealed, "k")["empty"][...].tolist() == [[0, 0], [0, 0]]


def test_a_deleted_chunk_is_named_instead_of_read_as_fill_values(sealed):
    (sealed / "x/c/1/0").unlink()
    group = open_store(sealed, "k")
    np.testing.assert_array_equal(group["x"][0], [0, 1, 2, 3])  # other chunks still read
    with pytest.raises(CorruptStoreError, match=r"s\.zarr/x/c/1/0: chunk file missing"):
        group["x"][...]


def test_a_damaged_chunk_is_named_instead_of_read_as_garbage(sealed):
    chunk = sealed / "x/c/2/0"
    data = bytearray(chunk.read_bytes())
    data[-6] ^= 0xFF  # one flipped byte of compressed data: decodes, but wrongly
    chunk.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match=r"x/c/2/0: chunk damaged \(checksum mismatch\)"):
        open_store(sealed, "k")["x"][2]


def _edit_metadata(path: Path, edit) -> None:
    meta = json.loads((path / "zarr.json").read_text())
    edit(meta)
    (path / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["attributes"].update(layer=4), "attributes 'layer' differ from the seal"),
        (lambda m: m["attributes"].pop("video_ids"), "attributes 'video_ids' differ"),
        (
            lambda m: m["consolidated_metadata"]["metadata"]["x"].update(shape=[4, 4]),
            "arrays 'x' differ from the seal",
        ),
        (lambda m: m["attributes"].pop(SEAL_ATTR), "no seal"),
    ],
    ids=["changed", "removed", "array-shape", "seal"],
)
def test_metadata_edited_after_writing_is_named(sealed, edit, message):
    _edit_metadata(sealed, edit)
    with pytest.raises(CorruptStoreError, match=rf"s\.zarr/zarr\.json: {message}"):
        open_store(sealed, "k")


def test_garbled_metadata_is_named(sealed):
    (sealed / "zarr.json").write_text('{"zarr_format": 3, "attrib')
    with pytest.raises(CorruptStoreError, match=r"zarr\.json: not readable Zarr metadata"):
        open_store(sealed, "k")


def test_a_temporary_store_is_refused_even_when_it_is_complete(sealed):
    temp = sealed.with_name(".s.zarr.tmp-0123abcd")
    shutil.copytree(sealed, temp)
    with pytest.raises(IncompleteStoreError, match="temporary store"):
        open_store(temp, "k")


def test_a_full_disk_names_the_store_and_leaves_nothing(tmp_path, mount_tmpfs):
    mount_tmpfs(tmp_path / "small", "size=8k")
    big = np.random.default_rng(0).random((64, 1024))
    full = r"cannot write: No space left on device"
    with (
        pytest.raises(StoreWriteError, match=rf"s\.zarr: {full}"),
        atomic_store(tmp_path / "small/s.zarr", "k") as group,
    ):
        write_array(group, "x", big, chunks=(8, 1024))
    with pytest.raises(StoreWriteError, match=rf"t\.tsv: {full}"):
        write_table(pd.DataFrame({"x": big.ravel()}), tmp_path / "small/t.tsv")
    assert list((tmp_path / "small").iterdir()) == []


def test_a_read_only_folder_names_the_store(tmp_path, mount_tmpfs):
    mount_tmpfs(tmp_path / "ro", "ro,size=8k")
    with (
        pytest.raises(StoreWriteError, match=r"s\.zarr: cannot write: Read-only file system"),
        atomic_store(tmp_path / "ro/s.zarr", "k") as group,
    ):
        write_array(group, "x", np.arange(3))
