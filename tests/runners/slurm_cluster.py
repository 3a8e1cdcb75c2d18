"""A real one-node Slurm cluster for the tests: munged with its own key and socket, slurmctld and slurmd
with a minimal slurm.conf, all in a temp dir, stopped after (``Cluster.start``/``stop``).

One node, this host (``hostname -s``); SlurmUser root; no accounting (so ``sacct`` can't answer, as on
many small clusters); proctrack/linuxproc and task/none (no cgroups needed); ports found free.  The
tests point agentd at it by ``SLURM_CONF`` (and the munge socket by the conf's AuthInfo)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

TOOLS = ("sbatch", "squeue", "scancel", "slurmctld", "slurmd", "munged")


def missing() -> str | None:
    """Why no cluster can be started here, or None."""
    gone = [t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if gone:
        return f"{', '.join(gone)} not installed (apt-get install slurm-wlm munge; tests/sysdeps.sh)"
    if os.geteuid() != 0:
        return "the test cluster runs slurmd as root (SlurmUser=root)"
    return None


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self.procs: list[subprocess.Popen] = []
        self.env: dict = {}

    def start(self, wait_s: float = 60) -> "Cluster":
        r = self.root
        for d in ("munge", "state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o700)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        sock = r / "munge" / "munge.sock"
        self.procs.append(subprocess.Popen(
            [_sbin("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={sock}",
             f"--pid-file={r / 'munge' / 'munged.pid'}", f"--log-file={r / 'log' / 'munged.log'}",
             f"--seed-file={r / 'munge' / 'seed'}"],
            stdout=subprocess.DEVNULL, stderr=open(r / "log" / "munged.err", "wb"), start_new_session=True))
        ctld, node = _free_ports(2)
        cpus = os.cpu_count() or 1
        self.conf.write_text(f"""\
ClusterName=agentdtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=2
Waittime=0
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        self.env = {"SLURM_CONF": str(self.conf)}
        env = {**os.environ, **self.env}
        self._wait_for(sock, wait_s)
        self.procs.append(subprocess.Popen([_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)], env=env,
                                           stdout=subprocess.DEVNULL, stderr=open(r / "log" / "ctld.err", "wb"),
                                           start_new_session=True))
        self.procs.append(subprocess.Popen([_sbin("slurmd"), "-D", "-f", str(self.conf), "-N", self.node],
                                           env=env, stdout=subprocess.DEVNULL,
                                           stderr=open(r / "log" / "slurmd.err", "wb"), start_new_session=True))
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            p = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=10)
            if p.returncode == 0 and p.stdout.strip() in ("idle", "mix", "alloc"):
                return self
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}: {self.logs()}")
            time.sleep(0.3)
        raise RuntimeError(f"the test cluster's node never came up: {self.logs()}")

    def _wait_for(self, path: Path, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while not path.exists():
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise RuntimeError(f"munged did not start: {self.logs()}")
            time.sleep(0.05)

    def logs(self) -> str:
        out = []
        for f in sorted((self.root / "log").glob("*")):
            out.append(f"--- {f.name}\n" + f.read_text(errors="replace")[-2000:])
        return "\n".join(out)

    def run(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout)

    def stop(self) -> None:
        if self.env:
            try:  # no job outlives the tests
                self.run("scancel", "--full", "-u", "root", timeout=10)
            except (OSError, subprocess.SubprocessError):
                pass
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
        self.procs = []
