"""Dry runs forked from one interpreter that has imported Snakemake already.

The suite makes about a hundred ``snakemake -n`` runs; each one as its own process
spends about a second importing Snakemake (of about two). This server imports it once
and forks a child per request, which runs ``snakemake.cli.main`` exactly as the command
would (its own working folder, environment, argv, output files). It imports none of
videoconcepts: the Snakefile's imports happen in each child, so edited modules are seen.
It is single-threaded, so a fork never copies a lock held by another thread.
``python -m snakemake`` remains the way for every run that executes jobs.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

_server: tuple[subprocess.Popen, Path] | None = None
_lock = threading.Lock()


def _serve(path: str) -> None:
    import snakemake.cli  # the import every request would otherwise pay

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    listener.settimeout(1)
    print("ready", flush=True)
    while os.getppid() == parent:  # a pytest killed outright leaves no server behind
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        if os.fork():
            conn.close()
            continue
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        request = json.loads(conn.makefile().readline())
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        code = 1
        try:
            snakemake.cli.main(request["argv"])
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(f"{code}\n".encode())
            os._exit(0)


def _socket() -> Path:
    """The running server's socket, starting the server on first use."""
    global _server
    with _lock:
        if _server is None or _server[0].poll() is not None:
            folder = tempfile.mkdtemp(prefix="snakemake-forks-")
            path = Path(folder) / "sock"
            process = subprocess.Popen(
                [sys.executable, __file__, str(path)], stdout=subprocess.PIPE, text=True
            )
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("the dry-run server did not start")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            atexit.register(process.kill)  # runs first
            _server = process, path
        return _server[1]


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``snakemake <argv>`` in ``cwd`` with ``env``, forked from the server."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        request = {"argv": argv, "cwd": str(cwd), "env": env}
        request |= {"stdout": str(out), "stderr": str(err)}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(_socket()))
            conn.sendall((json.dumps(request) + "\n").encode())
            code = int(conn.makefile().readline() or 1)
        return subprocess.CompletedProcess(
            ["snakemake", *argv], code, out.read_text(), err.read_text()
        )


if __name__ == "__main__":
    _serve(sys.argv[1])
