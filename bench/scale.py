"""The queue's scale with the number of tasks (issue 12): first read and warm `queue`.

    python bench/scale.py [N ...]      # default: 10000 1000000

For each N, a worklog of N command-task lines (~69 bytes each) in a scratch HOME; times
`agentd queue --json` three ways: the first read (no index), warm (unchanged file) and after
one appended line; prints wall seconds and the peak memory (max RSS) of each.
Targets: 10,000 tasks warm < 0.2 s; 1,000,000 tasks first < 60 s, warm < 5 s, memory < 1 GiB.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AGENTD = [sys.executable, "-m", "agentd"]


def run(env: dict) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one `agentd queue --json`."""
    t = time.perf_counter()
    p = subprocess.Popen([*AGENTD, "queue", "--json"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, _, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    if p.returncode not in (None, 0) and p.returncode != 0:
        raise SystemExit(p.stderr.read().decode()[-2000:])
    return dt, ru.ru_maxrss / 1024


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [10_000, 1_000_000]
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="agentd-scale.") as d:
            root = Path(d)
            (root / "wl").mkdir()
            wl = root / "wl" / "scale_worklog.txt"
            with open(wl, "w") as f:
                for i in range(n):
                    f.write(f"- [ ] task number {i} {{id: t{i}, run: 'true', value: {i % 10}}}\n")
            env = {**os.environ, "HOME": str(root), "XDG_CONFIG_HOME": str(root / "c"),
                   "XDG_STATE_HOME": str(root / "s"), "XDG_CACHE_HOME": str(root / "cache"),
                   "AGENTD_HOST": "scale", "AGENTD_WORKLOG_DIR": str(root / "wl"), "AGENTD_PROVIDER": "none",
                   "HF_HUB_OFFLINE": "1"}
            first = run(env)
            warm = min(run(env) for _ in range(3))
            with open(wl, "a") as f:
                f.write("- [ ] one more {id: one-more, run: 'true'}\n")
            grown = run(env)
            mib = wl.stat().st_size / 2**20
            print(f"{n:>9} tasks ({mib:.0f} MiB): first {first[0]:.2f} s {first[1]:.0f} MiB · "
                  f"warm {warm[0]:.3f} s {warm[1]:.0f} MiB · one line appended {grown[0]:.2f} s {grown[1]:.0f} MiB",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
