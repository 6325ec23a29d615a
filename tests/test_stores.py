import numpy as np
import pytest

from videoconcepts.stores import (
    IncompleteStoreError,
    atomic_store,
    open_store,
    remove_stale_temps,
    write_array,
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
        "demo-data",
        "--out",
        str(out),
        "--videos-per-event",
        "30",
        "--seed",
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
