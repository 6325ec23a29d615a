"""Real workflow runs that go wrong: killed jobs, full or read-only disks, stores damaged
from outside; and determinism across runs and shard layouts. Each test works on a copy
of the finished tiny run and runs only the jobs it needs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr
from helpers import (
    copy_run,
    file_states,
    messages,
    model_view,
    planned,
    run_snakemake,
    snakemake_command,
    snakemake_env,
    tiny_config,
    write_config,
)

from videoconcepts.plan.settings import decode_naming, resolve_proposals, settings_hash
from videoconcepts.stores.base import COMPLETE_ATTR, IncompleteStoreError, open_store
from videoconcepts.stores.concepts import open_concepts
from videoconcepts.stores.tubelets import open_tubelets
from videoconcepts.stores.units import open_units

# --------------------------------------------------------------------------- killed jobs


def _temps(output: Path) -> list[Path]:
    """Hidden temporaries of a store or table being written."""
    return list(output.parent.glob(f".{output.name}.tmp*"))


FROZEN = (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE, psutil.STATUS_DISK_SLEEP)


class Run:
    """A Snakemake run in its own process group that the test can freeze and kill."""

    def __init__(self, workdir: Path, *targets: str):
        self.log = (workdir / "snakemake.out").open("a")
        # Without the job server: its children live outside the group this freezes (its
        # own kill test is in tests/test_jobserver.py).
        self.proc = subprocess.Popen(
            snakemake_command(workdir, *targets, "--config", "jobserver=False"),
            cwd=workdir,
            env=snakemake_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()  # never leave a frozen run behind a failed assertion

    def _group(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def _stopped(self) -> bool:
        """Every process stopped, or in the kernel (D state: a parent waiting in vfork for
        its stopped child never reaches T); those stop as they return to user space."""
        try:
            return all(p.status() in FROZEN for p in self._group())
        except psutil.NoSuchProcess:  # a process ended meanwhile: look again
            return False

    def _signal(self, sig: signal.Signals) -> None:
        os.killpg(self.proc.pid, sig)

    def freeze_when(self, condition: Callable[[], bool], timeout: float = 180) -> None:
        """Run in steps of 20 ms until ``condition()`` holds while every
        process of the run is stopped; leave it stopped, so what the test sees is what
        a kill leaves behind."""
        deadline = time.monotonic() + timeout
        while True:
            self._signal(signal.SIGSTOP)
            while self.proc.poll() is None and not self._stopped():
                time.sleep(0.001)
            if condition():
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("the run ended (or timed out) before the awaited moment")
            self._signal(signal.SIGCONT)
            time.sleep(0.02)  # the features store is open for ~0.3 s

    def job(self, command: str) -> psutil.Process | None:
        """The Python process of the running ``videoconcepts <command>`` job, if any."""
        for proc in self._group():
            try:
                cmdline = proc.cmdline()
            except psutil.NoSuchProcess:
                continue
            if "python" in Path(cmdline[0]).name and cmdline[2:3] == [command]:
                return proc
        return None

    def kill(self) -> None:
        """SIGKILL the whole group (Snakemake and its jobs), as a crashed node would."""
        if self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def resume_and_wait(self) -> int:
        self._signal(signal.SIGCONT)
        code = self.proc.wait(timeout=300)
        self.log.close()
        return code


def _assert_nothing_looks_complete(store: Path, kind: str) -> None:
    """Only hidden temps (never marked complete) may exist, and readers refuse them."""
    assert not store.exists()
    with pytest.raises(IncompleteStoreError, match="does not exist"):
        open_store(store, kind)
    for temp in _temps(store):
        with pytest.raises(IncompleteStoreError, match="temporary store"):
            open_store(temp, kind)
        assert not zarr.open_group(temp, mode="r").attrs.get(COMPLETE_ATTR)


def _assert_same_store(a: Path, b: Path, kind: str) -> None:
    first, second = open_store(a, kind), open_store(b, kind)
    assert dict(first.attrs) == dict(second.attrs)
    names = sorted(first.array_keys())
    assert names == sorted(second.array_keys())
    for name in names:
        assert np.array_equal(first[name][...], second[name][...]), f"{b}: {name} differs"


def test_killed_jobs_leave_nothing_that_looks_complete_and_resume_bitwise(finished_run, tmp_path):
    """SIGKILL a features job with Snakemake (a crashed node), and a CRIS job alone; the
    reruns give the uninterrupted run's stores bit for bit."""
    work = copy_run(finished_run, tmp_path / "run")
    features = next(work.glob("results/features/*/shard-001.zarr"))
    cris = next(work.glob("results/cris/*/shards-2x4/shard-001.zarr"))
    targets = [str(p.relative_to(work)) for p in (features, cris)]
    shutil.rmtree(features)
    shutil.rmtree(cris)

    with Run(work, targets[0]) as run:
        # frozen while the store is being written
        run.freeze_when(lambda: any((t / "zarr.json").exists() for t in _temps(features)))
        _assert_nothing_looks_complete(features, "features")
        run.kill()
    assert _temps(features) and not features.exists()  # a crash leaves the hidden temp only
    run_snakemake(work, "--unlock")  # what Snakemake asks for after a crash

    cris_log = next(work.glob("results/logs/cris/*/shards-2x4/shard-001.log"))
    cris_log.unlink()  # the finished run's
    scoring = lambda: cris_log.exists() and "CRIS shard" in cris_log.read_text()  # noqa: E731
    with Run(work, targets[1], "--rerun-incomplete") as run:
        run.freeze_when(lambda: run.job("cris") is not None and scoring())
        _assert_nothing_looks_complete(cris, "cris_shard")
        run.job("cris").kill()  # the job dies, Snakemake survives and fails the run
        assert run.resume_and_wait() != 0
    _assert_nothing_looks_complete(cris, "cris_shard")

    run_snakemake(work, *targets, "--rerun-incomplete")
    assert not _temps(features)  # the new writer removed the killed one's temp
    for path, kind in ((features, "features"), (cris, "cris_shard")):
        _assert_same_store(finished_run / path.relative_to(work), path, kind)


# ---------------------------------------------------------------------------- bad disks


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (
            "size=16k",
            "videoconcepts decode: error: {job}/vid0000.zarr: cannot write: No space left on "
            "device",
        ),
        # Snakemake itself stops first: it unlinks the (missing) output, which a read-only
        # file system refuses; our own read-only error is tested in test_stores.py
        ("ro,size=16k", "Read-only file system: '{job}'"),
    ],
    ids=["disk-full", "read-only"],
)
def test_unwritable_output_folder_fails_naming_the_store_and_loses_nothing(
    options, error, finished_run, tmp_path, mount_tmpfs
):
    work = copy_run(finished_run, tmp_path / "run")
    config = write_config(work, decode={"clip_start": "start"})  # a new decode folder
    decode = settings_hash(decode_naming(model_view(config)))
    folder = work / "results/decode" / decode
    mount_tmpfs(folder, options)
    before = file_states(work / "results")
    job = f"results/decode/{decode}/shard-000"  # its first store: vid0000's

    result = run_snakemake(work, job, check=False)
    assert result.returncode != 0
    assert error.format(job=job) in messages(result)  # the profile shows failed logs
    assert list(folder.iterdir()) == []  # no store, no temp
    assert file_states(work / "results") == before


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def _fails_naming(work: Path, readers: list[Path], expected: list[str]) -> None:
    """Rerunning the deleted ``readers`` of damaged stores fails with every ``expected``
    message, writes nothing and loses nothing else."""
    results = work / "results"
    for reader in readers:
        shutil.rmtree(reader) if reader.is_dir() else reader.unlink()
    before = file_states(results)
    targets = [str(p.relative_to(work)) for p in readers]
    result = run_snakemake(work, *targets, "--keep-going", check=False)
    assert result.returncode != 0
    shown = messages(result)  # the profile shows the failed jobs' logs
    for message in expected:
        assert message in shown
    assert file_states(results) == before  # nothing written, nothing else lost
    assert not any(p.exists() or _temps(p) for p in readers)


def test_stores_damaged_from_outside_fail_their_readers_naming_file_and_problem(
    finished_run, tmp_path
):
    """A deleted chunk, a garbled zarr.json and edited attributes, each in an upstream
    store: the job reading it fails naming the file; nothing else changes. Two copies of
    the run: every concepts job reads every shard's tubelets, and a tubelets job writes
    every layer of its shard, so no concepts job could run after a tubelets job failed."""
    slic = settings_hash(resolve_proposals(model_view(tiny_config()), "slic"))
    work = copy_run(finished_run, tmp_path / "frames_features")
    results = work / "results"
    decoded = next((results / "decode").rglob("vid0005.zarr"))
    features = next(results.glob("features/*/shard-000.zarr"))
    heads = next(results.glob("heads/*/head_importance.tsv"))
    tubelets = next(results.glob(f"tubelets/*-{slic}/shard-000"))  # a store per layer
    assert len(list(tubelets.glob("layer-*.zarr"))) == len(tiny_config()["features"]["layers"])
    chunk = decoded / "frames/c/3/0/0/0"
    chunk.unlink()
    (features / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gr')
    heads.with_name("pruning_curve.tsv").unlink()
    rel = lambda p: str(p.relative_to(work))  # noqa: E731
    expected = [
        f"videoconcepts heads: error: {rel(chunk)}: chunk file missing",
        f"tubelets: error: {rel(features)}/zarr.json: not readable Zarr metadata",
    ]
    _fails_naming(work, [heads, tubelets], expected)

    work = copy_run(finished_run, tmp_path / "tubelets")
    results = work / "results"
    tubelet_store = next(results.glob(f"tubelets/*-{slic}/shard-001/layer-03.zarr"))
    _edit_json(tubelet_store / "zarr.json", lambda m: m["attributes"]["video_ids"].reverse())
    message = (
        f"concepts: error: {tubelet_store.relative_to(work)}/zarr.json: "
        "attributes 'video_ids' differ"
    )
    _fails_naming(work, [next(results.glob(f"concepts/*-{slic}-*/layers-01-03"))], [message])


# ---------------------------------------------------------------------------- determinism


def _gathered(workdir: Path, layout: str) -> tuple[Path, Path, list[Path]]:
    """A run's CRIS table (by shard layout), the units store it was computed from and the
    CRIS shards it gathered (their folders carry the same tags)."""
    table = next(workdir.glob(f"results/cris_gather/*/{layout}-*/concept_importance.tsv"))
    tag = table.parent.relative_to(workdir / "results" / "cris_gather").parts[0]
    # the units' tag: the model's name and D, F, P, C
    units = workdir / "results" / "units" / "-".join(tag.split("-")[:5]) / "units.zarr"
    shards = sorted((workdir / "results" / "cris" / tag / layout).glob("shard-*.zarr"))
    return table, units, shards


def _tubelets_by_video(workdir: Path, concepts: zarr.Group) -> dict[str, list[np.ndarray]]:
    """Label volumes, descriptors and tubelet rows of each video, whatever its shard."""
    out = {}
    for path in concepts.attrs["tubelet_stores"]:
        group = open_tubelets(workdir / path)
        table, offsets = group["tubelets"][...], group["offsets"][...]
        descriptors, n_heads = group["descriptors"][...], group.attrs["num_heads"]
        for v, video in enumerate(group.attrs["video_ids"]):
            rows = slice(offsets[v * n_heads], offsets[(v + 1) * n_heads])
            out[video] = [group["labels"][v], descriptors[rows], table[rows, 1:]]
    return out


def test_results_are_identical_across_runs_and_shard_layouts(finished_run, tmp_path):
    """Another run with one feature shard and one CRIS shard (the finished run has two of
    each): tubelets, concept assignments and importance are bit-identical; switching the
    layout back plans nothing (the first layout's outputs stayed)."""
    work = copy_run(finished_run, tmp_path / "run")
    write_config(work, "variant.yaml", features={"videos_per_job": 6}, cris={"shards": 1})
    run_snakemake(work, "--until", "cris_gather", configfile=work / "variant.yaml")

    base_table, base_units, base_shards = _gathered(work, "shards-2x4")
    table, units, shards = _gathered(work, "shards-1x4")
    assert base_units != units and base_units.is_dir() and units.is_dir()  # computed anew
    assert len(base_shards) == 2 and len(shards) == 1
    assert table.read_text() == base_table.read_text()
    scores = [
        np.concatenate([open_store(s, "cris_shard")["scores"][...] for s in paths], axis=1)
        for paths in (base_shards, shards)
    ]
    assert np.array_equal(*scores)
    first, second = (open_units(u).store.attrs["concept_stores"] for u in (base_units, units))
    for a, b in zip(first, second, strict=True):
        concepts_a, concepts_b = open_concepts(work / a), open_concepts(work / b)
        assert (
            len(concepts_b.attrs["tubelet_stores"]) == 1 < len(concepts_a.attrs["tubelet_stores"])
        )
        by_video = [_tubelets_by_video(work, c) for c in (concepts_a, concepts_b)]
        assert by_video[0].keys() == by_video[1].keys()
        for video, arrays in by_video[0].items():
            for x, y in zip(arrays, by_video[1][video], strict=True):
                assert np.array_equal(x, y), video
        # assignment columns video (global), head, label, concept; shard/row differ
        assign = [c["assignment"][...][:, 2:] for c in (concepts_a, concepts_b)]
        assert np.array_equal(*assign)
        for name in ("centroids", "n_concepts", "concept_counts"):
            assert np.array_equal(concepts_a[name][...], concepts_b[name][...], equal_nan=True)
    assert planned(work) == {}
