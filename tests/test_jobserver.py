"""The job server: a command handed to it behaves as the command run alone would (its
output, log streams, exit status, signals), and a command it cannot serve runs alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from videoconcepts import jobclient, jobserver
from videoconcepts.stores.base import IncompleteStoreError, open_store

COMMAND = str(Path(sys.executable).parent / "videoconcepts")
SERVED = jobclient.SERVED

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[psutil.Process]:
    """A server started as Snakemake's ``onstart`` starts it, ready to take jobs."""
    log = tmp_path_factory.mktemp("server") / "jobserver.log"
    jobserver.start(log)
    path = Path(os.environ[jobclient.SOCKET_ENV])
    ready = Path(jobclient.ready_path(str(path)))
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    process = psutil.Process(jobserver._running[0][0].pid)
    yield process
    jobserver.stop()
    assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    assert not path.parent.exists()


@pytest.mark.parametrize("stage", sorted(jobclient.IMPATIENT))
def test_impatient_stages_import_neither_torch_nor_transformers(stage):
    """What lets them run alone while the server imports: were one to import torch, it
    would pay that import beside the server's instead of waiting for it."""
    code = (
        "import sys, importlib; importlib.import_module('videoconcepts.stages.' + sys.argv[1]); "
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code, stage], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_job_started_while_the_server_imports_waits_unless_it_needs_none_of_it(tmp_path):
    """The socket takes jobs before the imports are done: a stage that needs them waits
    and is served; an impatient one (demo_data) runs alone at once."""
    jobserver.start(tmp_path / "jobserver.log")
    try:
        path = Path(os.environ[jobclient.SOCKET_ENV])
        ready = Path(jobclient.ready_path(str(path)))
        deadline = time.monotonic() + 60
        while not path.exists():
            assert time.monotonic() < deadline, "no socket"
            time.sleep(0.01)
        assert not ready.exists()  # still importing (about 5 s)
        waiting = videoconcepts("features", "--help")
        impatient = demo_data(tmp_path / "out")
        _, err = impatient.communicate(60)
        assert impatient.returncode == 0 and SERVED not in err
        out, err = waiting.communicate(120)
        assert waiting.returncode == 0 and SERVED in err and "--batch-size" in out
        assert ready.exists()
    finally:
        jobserver.stop()


def videoconcepts(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [COMMAND, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def demo_data(out: Path, videos_per_event: int = 1, **kwargs) -> subprocess.Popen:
    args = ("--out", str(out), "--videos-per-event", str(videos_per_event), "--seed", "1")
    args = (*args, "--styles", "0")
    return videoconcepts("demo_data", *args, **kwargs)


def test_a_served_job_writes_what_it_writes_alone(server, tmp_path):
    served = demo_data(tmp_path / "served", cwd=tmp_path)
    alone = demo_data(tmp_path / "alone", env={jobclient.SOCKET_ENV: ""})
    (_, err), (_, alone_err) = served.communicate(60), alone.communicate(60)
    assert served.returncode == alone.returncode == 0, err + alone_err
    assert SERVED in err and SERVED not in alone_err
    assert f"6 demo videos in {tmp_path / 'served'}" in err  # the child's stderr is the job's
    for name in ("samples.tsv", "videos/vid0000.mp4"):
        served_file = (tmp_path / "served" / name).read_bytes()
        assert served_file == (tmp_path / "alone" / name).read_bytes()


def test_a_failing_job_fails_with_its_status_and_message(server, tmp_path):
    served = videoconcepts("demo_data", "--seed", "1")  # --out missing
    _, err = served.communicate(60)
    assert served.returncode == 2
    assert "the following arguments are required: --out" in err and SERVED in err
    helped = videoconcepts("--help")
    out, err = helped.communicate(60)
    assert helped.returncode == 0 and SERVED in err
    assert "demo_data" in out  # the child's stdout is the command's


def test_an_interpreter_the_server_does_not_run_runs_the_job_alone(server, tmp_path):
    alone = demo_data(tmp_path / "out", env={"PYTHONPATH": str(tmp_path)})
    _, err = alone.communicate(60)
    assert alone.returncode == 0 and SERVED not in err
    missing = demo_data(tmp_path / "out2", env={jobclient.SOCKET_ENV: str(tmp_path / "no")})
    _, err = missing.communicate(60)
    assert missing.returncode == 0 and SERVED not in err


def _child(server: psutil.Process, before: set[int]) -> psutil.Process:
    deadline = time.monotonic() + 30
    while not (new := {p.pid for p in server.children()} - before):
        assert time.monotonic() < deadline, "the server started no child"
        time.sleep(0.05)
    return psutil.Process(new.pop())


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGKILL, -signal.SIGKILL)]
)
def test_a_killed_command_takes_its_job_down(server, tmp_path, sig, code):
    """SIGTERM is forwarded (the command then ends as the job did); after a SIGKILL,
    which the command cannot forward, the server sees its connection close."""
    before = {p.pid for p in server.children()}
    command = demo_data(tmp_path / "out", videos_per_event=200)
    child = _child(server, before)
    while not (tmp_path / "out").exists():
        time.sleep(0.05)
    command.send_signal(sig)
    assert command.wait(30) == code
    child.wait(10)  # gone, not left running in the server
    with pytest.raises(IncompleteStoreError):
        open_store(tmp_path / "out" / "ground_truth.zarr", "ground_truth")


def test_a_server_whose_snakemake_died_ends_and_leaves_nothing():
    """A Snakemake killed before its ``onsuccess``/``onerror`` leaves no server running
    and no socket folder behind."""
    folder = Path(tempfile.mkdtemp(prefix="videoconcepts-"))
    socket_path = folder / "jobs.sock"
    starter = (  # starts the server as Snakemake's onstart does, then dies at once
        "import os, subprocess, sys; subprocess.Popen([sys.executable, '-m', "
        f"'videoconcepts.jobserver', {str(socket_path)!r}, str(os.getpid())], "
        "start_new_session=True)"
    )
    subprocess.run([sys.executable, "-c", starter], check=True)
    deadline = time.monotonic() + 120
    while folder.exists():
        assert time.monotonic() < deadline, "the orphaned server is still there"
        time.sleep(0.1)
