"""The workflow on a real one-node SLURM cluster through profiles/slurm.

The cluster is Debian's Slurm (munge, slurmctld, slurmd, slurm-client), installed when
missing and started by hand: no systemd, nothing written to /etc, every daemon stopped by
its PID afterwards. Snags met on the way, and what this file does about them:

- munged refuses a socket below a directory that not everyone may enter, and pytest's
  tmp tree is 0700: the cluster lives in its own 0755 directory from ``mkdtemp``.
- Clients find the cluster through ``SLURM_CONF`` (the plugin's sbatch, squeue, scontrol
  and sinfo calls inherit Snakemake's environment); slurm.conf names the munge socket
  (``AuthInfo``) and two free ports, so nothing clashes with another Slurm or munge on
  the machine, and nothing goes to /etc.
- Inside a job, snakemake-executor-plugin-slurm-jobstep runs the rule through ``srun``
  with every ``SLURM_*`` variable but the job's identity removed, ``SLURM_CONF`` too, so
  that srun finds no configuration ("Could not establish a configuration source"). A
  cluster with slurm.conf at the default path or in configless mode never notices; here
  an ``srun`` first on the jobs' PATH puts ``SLURM_CONF`` back and runs the real one.
- No slurmdbd: ``sacct`` fails and the plugin would wait forever, so the run uses
  ``slurm-status-command: squeue``. squeue forgets a job MinJobAge seconds after it
  ends, and the plugin falls back to sacct when MinJobAge < 3x its first status-check
  delay: MinJobAge is 600 s, the delay 2 s.
- The partition oversubscribes CPUs (``OverSubscribe=FORCE``; memory stays consumable):
  every ready job starts at once, as on a cluster with room to spare. Counting CPUs, the
  two CRIS shards (2 threads each) would queue one after the other on a 2-core machine.
  ``CR_Memory`` alone is no way out: select/cons_tres refuses it, select/linear still
  gives each job the whole node.
- A slurmd whose controller is gone ignores SIGTERM for a while, and Slurm clients
  talking to a dead controller retry for long: teardown kills after a grace period and
  cancels jobs only while slurmctld lives.
- ``srun --cpu-bind=q`` (the plugin's job step) prints "cluster configuration lacks
  support for cpu binding" under ``task/none``: harmless.
- The partition is not the default one, so the run only works if the partition given
  to the profile reaches sbatch.
- The run has no ``--cores``, as a user's would: a rule reading ``workflow.cores`` at
  parse time (``train_demo_model`` did) makes Snakemake refuse to parse.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, copy_run, job_stats, run_snakemake

from videoconcepts.stores.base import open_store

pytestmark = pytest.mark.slurm

PACKAGES = ["munge", "slurmctld", "slurmd", "slurm-client"]
DAEMONS = ["munged", "slurmctld", "slurmd"]
CLIENTS = ["sbatch", "srun", "squeue", "scontrol", "sinfo", "scancel"]
PARTITION = "vctest"


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS + CLIENTS if shutil.which(name) is None]


def install_slurm() -> None:
    """Debian's Slurm and munge when missing (root only), refreshing the lists if needed."""
    if not missing_binaries() or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *PACKAGES]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        subprocess.run(install, capture_output=True, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    condition, seconds: float, what: str, daemons: list[subprocess.Popen], logs: list[Path]
) -> None:
    """Poll ``condition`` until true; fail with the daemons' log tails when it never gets
    there or a daemon exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        if dead := [d.args[0] for d in daemons if d.poll() is not None]:
            what = f"{what}: {', '.join(dead)} exited"
            break
        time.sleep(0.5)
    else:
        what = f"{what}: not within {seconds} s"
    tails = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in logs if p.exists())
    raise AssertionError(f"{what}\n{tails}")


@dataclass
class Cluster:
    env: dict[str, str]  # what a process needs to reach this cluster (SLURM_CONF, PATH)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster (bounded: clients retry for long)."""
        env = {**os.environ, **self.env}
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)

    def jobs(self) -> pd.DataFrame:
        """Every job slurmctld still remembers: id, Snakemake rule, state, start, end."""
        listed = self.run("squeue", "--states=all", "--noheader", "--format=%i|%k|%T|%S|%e")
        assert listed.returncode == 0, listed.stderr
        rows = [line.split("|") for line in listed.stdout.splitlines() if line]
        table = pd.DataFrame(rows, columns=["id", "comment", "state", "start", "end"])
        # the plugin's comment: rule_<name>, or rule_<name>_wildcards_<values>
        table["rule"] = table["comment"].str.extract(r"^rule_(\w+?)(?:_wildcards_.*)?$")[0]
        for column in ("start", "end"):  # N/A while a job has not started or ended
            table[column] = pd.to_datetime(table[column], errors="coerce")
        return table


def cancel_jobs(cluster: Cluster) -> None:
    """Cancel every job of the test cluster and give slurmd a few seconds to end them."""
    cluster.run("scancel", f"--partition={PARTITION}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        active = cluster.run("squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING")
        if active.returncode != 0 or not active.stdout.strip():
            return
        time.sleep(0.5)


def slurm_conf(root: Path) -> str:
    """One node, this machine: its host name, its CPUs (as nproc counts), 90% of its memory."""
    host = socket.gethostname().split(".")[0]
    cpus = len(os.sched_getaffinity(0))
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return f"""\
ClusterName=videoconcepts
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=600
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_kib * 9 // 10240}
PartitionName={PARTITION} Nodes={host} Default=NO MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
"""


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[Cluster]:
    install_slurm()
    if missing := missing_binaries():
        install = " ".join(["apt-get install", *PACKAGES])
        reason = f"Slurm is not installed (no {', '.join(missing)}): {install}"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI must run this test, not skip it
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="videoconcepts-slurm-"))
    root.chmod(0o755)
    for sub in ("munge", "state", "spool"):
        (root / sub).mkdir(mode=0o755)
    key = root / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root))
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(
        f"#!/bin/sh\nSLURM_CONF='{conf}' exec '{shutil.which('srun')}' \"$@\"\n"
    )
    (bin_dir / "srun").chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    cluster = Cluster({"SLURM_CONF": str(conf), "PATH": path})
    logs = [root / name for name in ("munged.log", "slurmctld.log", "slurmd.log")]
    daemons: list[subprocess.Popen] = []

    def start(*cmd: str) -> None:
        with open(root / f"{Path(cmd[0]).name}.out", "w") as out:
            daemons.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT))

    try:
        start(
            shutil.which("munged"),
            "--foreground",
            f"--key-file={key}",
            f"--socket={root}/munge/munge.socket",
            f"--pid-file={root}/munge/munged.pid",
            f"--log-file={root}/munged.log",
            f"--seed-file={root}/munge/munged.seed",
        )
        socket_made = (root / "munge/munge.socket").exists
        wait_for(socket_made, 10, "waiting for munged's socket", daemons, logs)
        start(shutil.which("slurmctld"), "-D", "-f", str(conf))
        start(shutil.which("slurmd"), "-D", "-f", str(conf))

        def node_idle() -> bool:
            return cluster.run("sinfo", "--noheader", "--format=%T").stdout.strip() == "idle"

        wait_for(node_idle, 60, "waiting for an idle Slurm node", daemons, logs)
        yield cluster
    finally:
        if len(daemons) == 3 and daemons[1].poll() is None:
            cancel_jobs(cluster)  # what a failed run left, while slurmd can still end it
        for daemon in reversed(daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        shutil.rmtree(root, ignore_errors=True)


def result_tables(workdir: Path) -> dict[str, pd.DataFrame]:
    """Every table the run wrote (not logs or benchmarks), by path below results/."""
    results = workdir / "results"
    return {
        str(path.relative_to(results)): pd.read_csv(path, sep="\t")
        for path in sorted(results.rglob("*.tsv"))
        if path.relative_to(results).parts[0] not in ("logs", "benchmarks")
    }


def test_workflow_on_slurm_matches_a_local_run(slurm_cluster, finished_run, tmp_path):
    """The model-running core of a finished local run again on SLURM: the CRIS shards
    side by side and their gathering, and the heads beside them. The rest stays local: each
    SLURM job starts a Snakemake of its own in the job step, so the whole run took 5 min
    here, and every rule's resources are checked in the profile's plan (test_workflow)."""
    copy_run(finished_run, tmp_path)
    result = run_snakemake(
        tmp_path,
        "--forcerun",
        "cris",
        "heads",
        "--until",
        "cris_gather",
        "heads",
        "--workflow-profile",
        str(REPO / "profiles" / "slurm"),
        # the test cluster has no job accounting, a partition of its own, no patience
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",  # a finished job is seen within 1 s, not 10
        "1",
        "--default-resources",
        f"slurm_partition={PARTITION}",
        cores=None,  # as a user would run it: a cluster run needs no --cores
        env=slurm_cluster.env,
        timeout=900,
    )
    assert "workflow specific profile" in result.stderr and "profiles/slurm" in result.stderr

    # every job Snakemake planned ran as a SLURM job (all but the target rule `all`)
    jobs = slurm_cluster.jobs()
    assert (jobs["state"] == "COMPLETED").all(), jobs
    plan = job_stats(result.stdout + result.stderr)
    assert Counter(jobs["rule"]) == {r: n for r, n in plan.items() if r not in ("all", "total")}
    assert set(jobs["rule"]) == {"cris", "cris_gather", "heads"}

    # the CRIS shards ran side by side: each started before the other ended
    cris = jobs[jobs["rule"] == "cris"]
    assert len(cris) == 2
    assert cris["start"].max() < cris["end"].min(), cris

    # and gave what a local run gives, to the last bit (both on this CPU)
    here, there = result_tables(tmp_path), result_tables(finished_run)
    assert sorted(here) == sorted(there)
    assert any("heads/" in name for name in here) and any(
        name.startswith("cris_gather/") for name in here
    )
    for name, table in here.items():
        pd.testing.assert_frame_equal(table, there[name], check_exact=True, obj=name)
    shards = sorted(p.relative_to(tmp_path) for p in tmp_path.glob("results/cris/*/*/*.zarr"))
    assert len(shards) == 2
    for shard in shards:
        mine, local = (open_store(run / shard, "cris_shard") for run in (tmp_path, finished_run))
        assert mine.attrs["precision"] == local.attrs["precision"]
        np.testing.assert_array_equal(mine["scores"][...], local["scores"][...], err_msg=str(shard))
