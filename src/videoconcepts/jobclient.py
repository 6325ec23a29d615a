"""The client side of the job server (:mod:`videoconcepts.jobserver`): the command every
rule runs hands its job to the run's server, or runs it here where none takes it.

Apart from the server so that each job's command imports only what the hand-off needs
(the standard library's socket, json and struct): about 35 ms a command, not 75.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Sequence

SOCKET_ENV = "VIDEOCONCEPTS_JOBSERVER"
SERVED = "ran in job server child"  # the line a served job's log starts its summary with
# Stages that import neither torch nor transformers: while the server still imports
# them (about 5 s), these run at once in their own process (under 1 s of imports)
# instead of waiting; the demo's first jobs are these.
IMPATIENT = frozenset({"demo_data", "decode", "skipped"})

HEADER = struct.Struct("!Q")  # request length
PID = struct.Struct("!q")  # 0: run it yourself
STATUS = struct.Struct("!qddq")  # exit code (-N: killed by signal N), user s, system s, RSS KiB


def identity() -> dict[str, str | None]:
    """What must match for a child of the server to run the same code as the command."""
    return {"prefix": sys.prefix, "pythonpath": os.environ.get("PYTHONPATH")}


def ready_path(socket_path: str) -> str:
    """The file the server creates once it has imported everything."""
    return f"{socket_path}.ready"


def hand_off(argv: Sequence[str]) -> int | None:
    """Run ``videoconcepts argv`` in a child of the run's server and return its exit code
    (as a shell gives it: 128 + N for signal N); None where no server takes the job."""
    path = os.environ.get(SOCKET_ENV)
    if not path or not hasattr(socket, "send_fds"):
        return None
    if argv[:1] and argv[0] in IMPATIENT and not os.path.exists(ready_path(path)):
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        request = json.dumps(
            {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), **identity()}
        ).encode()
        socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
        reply = receive(conn, PID.size)
    except OSError:  # no server, or it went before the job started: nothing ran
        conn.close()
        return None
    if reply is None or (pid := PID.unpack(reply)[0]) == 0:
        conn.close()
        return None

    def forward(sig: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended, its status is on its way
            os.kill(pid, sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    status = receive(conn, STATUS.size)
    conn.close()
    if status is None:
        print(f"videoconcepts: the job server ended while job {pid} ran", file=sys.stderr)
        return 1
    code, user, system, rss = STATUS.unpack(status)
    print(
        f"videoconcepts: {SERVED} {pid}: CPU {user + system:.1f} s, max RSS {rss / 1024:.0f} MiB",
        file=sys.stderr,
    )
    return 128 - code if code < 0 else code


def receive(conn: socket.socket, size: int) -> bytes | None:
    """Exactly ``size`` bytes, or None at end of stream."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main(argv: list[str] | None = None) -> None:
    """The ``videoconcepts`` command (``argv``: default the command line): handed to the
    run's job server where there is one (a local Snakemake run), else run here."""
    argv = sys.argv[1:] if argv is None else argv
    code = hand_off(argv)
    if code is None:
        from videoconcepts.cli import run  # argparse and the stage: only when run here

        run(argv)
    elif code:
        sys.exit(code)
