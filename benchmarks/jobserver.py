"""A command's start-up alone against the same command forked from the job server.

    python benchmarks/jobserver.py [--repeats 3]

Times ``videoconcepts --help``, which imports every stage module and with them torch,
transformers and the rest (what each model-running job pays before its first forward
pass), run as its own process and handed to a ready job server, and prints the median
seconds of each and their ratio. The server's own start-up (once per run) is printed
apart. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from videoconcepts import jobserver

COMMAND = [str(Path(sys.executable).parent / "videoconcepts"), "--help"]


def seconds(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(COMMAND, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    alone_env = {k: v for k, v in os.environ.items() if k != jobserver.SOCKET_ENV}
    alone = statistics.median(seconds(alone_env) for _ in range(args.repeats))

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        jobserver.start(Path(folder) / "jobserver.log")
        try:
            path = Path(os.environ[jobserver.SOCKET_ENV])
            while not path.exists():
                time.sleep(0.05)
            ready = time.perf_counter() - start
            served = statistics.median(seconds(dict(os.environ)) for _ in range(args.repeats))
        finally:
            jobserver.stop()
    print(f"server ready after {ready:.2f} s (once per run)")
    print(
        f"command alone {alone:.2f} s, from the job server {served:.2f} s (median of "
        f"{args.repeats}): {alone / served:.1f}x faster start-up"
    )


if __name__ == "__main__":
    main()
