"""A warm interpreter that a local run's jobs fork from, so each job skips the imports.

Every model-running job spends most of its start-up importing torch and transformers
(about 6.6 s of a 9 s targets job on the 2-core CPU of docs/BENCHMARKS.md); a run has
dozens of jobs. In a local run Snakemake starts one server (``onstart``) that imports
the third-party libraries once and then waits on a Unix socket; each ``videoconcepts
<stage>`` command (:mod:`videoconcepts.jobclient`) connects, hands over its argv,
working folder, environment and its stdin/stdout/stderr, and the server forks a child
that runs the stage as the command would have. The command waits, forwards the signals
it gets to the child and exits with the child's status, so Snakemake, the job's log and
a kill see an ordinary job. The server imports no stage or method of videoconcepts (only
the client's protocol): an edited stage runs as edited.

Where anything differs (no server, another interpreter or ``PYTHONPATH``, a server
not started yet) the command simply runs in its own process. Checked instead of
writing this: ``multiprocessing.forkserver`` serves only the process that started it,
and PyPI's module-launcher, the one package for this, is abandoned by its author
without exit codes or shutdown.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from videoconcepts.jobclient import (
    HEADER,
    PID,
    SOCKET_ENV,
    STATUS,
    identity,
    ready_path,
    receive,
)

# Third-party modules the stages import; one that is not installed is left out.
PRELOAD = (
    "numpy",
    "scipy.optimize",
    "pandas",
    "zarr",
    "google_crc32c",
    "tqdm",
    "threadpoolctl",
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "transformers.models.videomae.modeling_videomae",
    "transformers.models.timesformer.modeling_timesformer",
    "transformers.models.vivit.modeling_vivit",
    "transformers.models.x_clip.modeling_x_clip",
    "transformers.models.vjepa2.modeling_vjepa2",
    "transformers.models.dinov2.modeling_dinov2",
    "sklearn.cluster",
    "sklearn.impute",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.neural_network",
    "sklearn.pipeline",
    "joblib",
    "skimage.segmentation",
    "av",
)
# The server computes nothing: one thread for every math library, so it holds no
# worker threads that a fork would copy half-way; each child sets the job's own count.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# glibc's malloc, which the children inherit configured: blocks of up to 32 MiB (a
# batch's activations) from the heap and kept there, not mapped, unmapped and faulted
# in again for every forward pass. A CRIS job's system time went 0.9 -> 0.45 s.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


# ---------------------------------------------------------------------- Snakemake's side

_running: list[tuple[subprocess.Popen, Path]] = []


def start(log: Path) -> None:
    """Start the server for this Snakemake process (``onstart``) and point its jobs at
    it; Linux only (fork after importing torch is unsafe on macOS)."""
    if not sys.platform.startswith("linux"):
        return
    folder = Path(tempfile.mkdtemp(prefix="videoconcepts-"))  # a Unix socket path is short
    path = folder / "jobs.sock"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "videoconcepts.jobserver", str(path), str(os.getpid())],
            env={**MALLOC, **os.environ},  # a user's own malloc settings win
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C goes to the commands only
        )
    _running.append((server, folder))
    os.environ[SOCKET_ENV] = str(path)


def stop() -> None:
    """End the server (``onsuccess``, ``onerror``); every job has ended by then."""
    os.environ.pop(SOCKET_ENV, None)
    while _running:
        server, folder = _running.pop()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------ server


def serve(path: Path, parent: int) -> None:
    """Listen, preload, then fork a child per request until ``parent`` (Snakemake) is
    gone or SIGTERM comes.

    The socket listens before the imports: a job that starts meanwhile waits for them
    instead of importing the same libraries in a process of its own (a features job
    started 4 s into the demo spent 5 s so, beside the server's own imports); only the
    stages that import none of them (``jobclient.IMPATIENT``) run alone until the ready
    file appears."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = path.with_name(f".{path.name}")
    listener.bind(str(temporary))
    listener.listen(64)
    temporary.rename(path)
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    for module in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(module)
    if len(os.listdir("/proc/self/task")) != 1:  # a fork would copy a half-held lock
        path.unlink()  # the waiting commands see the connection close and run their jobs
        sys.exit(f"job server: the preloaded modules started threads; not serving {path}")
    ready = Path(ready_path(str(path)))
    ready.touch()
    print(f"job server ready at {path}", file=sys.stderr, flush=True)

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    # A child that ends wakes the loop at once, so its command hears of it without
    # waiting out the select timeout (half of it per job on average): SIGCHLD writes a
    # byte to `wake`.
    wake, woken = socket.socketpair()
    for end in (wake, woken):
        end.setblocking(False)
    signal.signal(signal.SIGCHLD, lambda sig, frame: None)
    signal.set_wakeup_fd(wake.fileno(), warn_on_full_buffer=False)
    selector.register(woken, selectors.EVENT_READ)
    jobs: dict[int, socket.socket] = {}  # child pid -> its command's connection
    stop = []
    signal.signal(signal.SIGTERM, lambda sig, frame: stop.append(sig))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the commands, not us
    while not stop and (os.getppid() == parent or jobs):
        if os.getppid() != parent and listener.fileno() != -1:
            selector.unregister(listener)  # Snakemake is gone: finish, take nothing new
            listener.close()
        for key, _ in selector.select(timeout=0.1):
            if key.fileobj is woken:
                with contextlib.suppress(BlockingIOError):
                    woken.recv(4096)
            elif key.fileobj is listener:
                conn, _ = listener.accept()
                pid = _start(conn, selector)
                if pid:
                    jobs[pid] = conn
                    selector.register(conn, selectors.EVENT_READ, pid)
                else:
                    conn.close()
            elif not key.fileobj.recv(1):  # the command died (SIGKILL): so does its job
                selector.unregister(key.fileobj)
                _kill(key.data)
        _reap(jobs, selector)
    for pid in jobs:
        _kill(pid)
    path.unlink(missing_ok=True)
    ready.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the folder `start` made for the socket, if empty
        path.parent.rmdir()


def _start(conn: socket.socket, selector: selectors.BaseSelector) -> int:
    """Fork the child for the request on ``conn``; 0 where the command must run it."""
    conn.settimeout(10)
    try:
        header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
        body = receive(conn, HEADER.unpack(header)[0]) if len(header) == HEADER.size else None
        request = json.loads(body) if body else None
    except (OSError, ValueError):
        request = None
    if request is None or len(fds) != 3 or any(request[k] != v for k, v in identity().items()):
        for fd in fds:
            os.close(fd)
        _send(conn, PID.pack(0))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child keeps no socket of the server's: not the listener, not
        # another command's connection (which would hide the server's end from it)
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
        conn.close()
        os._exit(_child(request, fds))
    for fd in fds:
        os.close(fd)
    if not _send(conn, PID.pack(pid)):
        _kill(pid)
    return pid


def _child(request: dict, fds: list[int]) -> int:
    """In the forked child: become the command (its streams, folder, environment,
    thread count) and run the stage, importing the package's modules as it would."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    signal.set_wakeup_fd(-1)  # the server's: its SIGCHLD wake-up is not the child's
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(SOCKET_ENV, None)  # the child runs the stage itself
    sys.argv = ["videoconcepts", *request["argv"]]
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and threads.isdigit():
        import threadpoolctl
        import torch

        torch.set_num_threads(int(threads))
        threadpoolctl.threadpool_limits(int(threads))
    try:
        from videoconcepts.cli import run

        run(request["argv"])
        code = 0
    except SystemExit as exit:  # argparse's and the stages' errors
        if isinstance(exit.code, str):
            print(exit.code, file=sys.stderr)
        code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return int(code)


def _reap(jobs: dict[int, socket.socket], selector: selectors.BaseSelector) -> None:
    """Tell each finished child's command how it ended."""
    while jobs:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = jobs.pop(pid, None)
        if conn is None:
            continue
        with contextlib.suppress(KeyError):  # unregistered already if its command died
            selector.unregister(conn)
        code = os.waitstatus_to_exitcode(status)
        _send(conn, STATUS.pack(code, usage.ru_utime, usage.ru_stime, usage.ru_maxrss))
        conn.close()


def _send(conn: socket.socket, data: bytes) -> bool:
    try:
        conn.sendall(data)
        return True
    except OSError:
        return False


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def main() -> None:
    """``python -m videoconcepts.jobserver SOCKET PARENT_PID``."""
    serve(Path(sys.argv[1]), int(sys.argv[2]))


if __name__ == "__main__":
    main()
