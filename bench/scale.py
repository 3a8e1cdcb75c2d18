"""The queue's scale with the number of tasks (issue 12): first read and warm `queue`.

    python bench/scale.py [--distinct] [N ...]      # default: 10000 1000000

For each N, a worklog of N command-task lines (~69 bytes each; with ``--distinct``, each with its own
score: ``value:`` a random number with 6 decimals, ~72 bytes) in a scratch HOME; times
`agentd queue --json` three ways: the first read (no index), warm (unchanged file, best of 3) and
after one appended line, and the text `agentd queue` warm (best of 3); then `agentd wake --now`
twice (the first makes the store; each runs a task, `true`, and appends its entries) and a warm
`queue --json` with the store (best of 2).  Prints wall seconds and the peak memory (max RSS) of
each, then the targets of issue 12 that apply to N and whether each was met.  Targets: 10,000
tasks warm < 0.2 s; 1,000,000 tasks first < 60 s, warm `queue` (text, JSON, with a store) and
wake < 5 s, memory < 1 GiB at every step.  The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AGENTD = [sys.executable, "-m", "agentd"]


def run(env: dict, json: bool = True, args: tuple = ()) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one `agentd queue --json` (or the text `agentd queue`, or ``args``)."""
    t = time.perf_counter()
    p = subprocess.Popen([*AGENTD, *(args or ("queue", *(["--json"] if json else [])))], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"agentd queue exited {os.waitstatus_to_exitcode(status)}: "
                         + p.stderr.read().decode()[-2000:])
    return dt, ru.ru_maxrss / 1024


# issue 12's targets: N -> {what: limit in seconds, or MiB for memory (the peak over every step)}
TARGETS = {10_000: {"warm": 0.2, "text warm": 0.2},
           1_000_000: {"first": 60.0, "warm": 5.0, "text warm": 5.0, "wake": 5.0, "store warm": 5.0,
                       "memory": 1024.0}}


def main(argv: list[str]) -> int:
    distinct = "--distinct" in argv
    sizes = [int(a) for a in argv if a != "--distinct"] or [10_000, 1_000_000]
    rand = random.Random(1)
    missed = 0
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="agentd-scale.") as d:
            root = Path(d)
            (root / "wl").mkdir()
            wl = root / "wl" / "scale_worklog.txt"
            with open(wl, "w") as f:
                for i in range(n):
                    value = f"{rand.random() * 10:.6f}" if distinct else i % 10
                    f.write(f"- [ ] task number {i} {{id: t{i}, run: 'true', value: {value}}}\n")
            env = {**os.environ, "HOME": str(root), "XDG_CONFIG_HOME": str(root / "c"),
                   "XDG_STATE_HOME": str(root / "s"), "XDG_CACHE_HOME": str(root / "cache"),
                   "AGENTD_HOST": "scale", "AGENTD_WORKLOG_DIR": str(root / "wl"), "AGENTD_PROVIDER": "none",
                   "HF_HUB_OFFLINE": "1"}
            first = run(env)
            warm = min(run(env) for _ in range(3))
            text = min(run(env, json=False) for _ in range(3))
            with open(wl, "a") as f:
                f.write("- [ ] one more {id: one-more, run: 'true'}\n")
            grown = run(env)
            # a wake (the first makes the store and records every task's first sight), then a second
            # one, and a warm `queue --json` with the store
            woke = run(env, args=("wake", "--now"))
            wake = run(env, args=("wake", "--now"))
            stored = min(run(env) for _ in range(2))
            mib = wl.stat().st_size / 2**20
            print(f"{n:>9} tasks{' (each scores differently)' if distinct else ''} ({mib:.0f} MiB): first {first[0]:.2f} s {first[1]:.0f} MiB · "
                  f"warm {warm[0]:.3f} s {warm[1]:.0f} MiB · text warm {text[0]:.3f} s {text[1]:.0f} MiB · "
                  f"one line appended {grown[0]:.2f} s {grown[1]:.0f} MiB · first wake {woke[0]:.2f} s "
                  f"{woke[1]:.0f} MiB · wake {wake[0]:.2f} s {wake[1]:.0f} MiB · warm with the store "
                  f"{stored[0]:.3f} s {stored[1]:.0f} MiB", flush=True)
            got = {"first": first[0], "warm": warm[0], "text warm": text[0], "wake": wake[0], "store warm": stored[0],
                   "memory": max(first[1], warm[1], text[1], grown[1], woke[1], wake[1], stored[1])}
            for what, limit in TARGETS.get(n, {}).items():
                ok = got[what] < limit
                missed += not ok
                unit = "MiB" if what == "memory" else "s"
                print(f"{'':>12}{what:<10} {got[what]:9.3f} {unit:<3} target < {limit:g} {unit:<3} "
                      f"{'ok' if ok else 'MISSED'}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
