"""`make bench`: the CLI's speed goals, measured in one run and printed as ratios.

Goals (issue 2):
  agentd --help              <= 2 x  python -c pass
  agentd queue / status      <= 4 x  python -c pass         (small worklog, index warm)
  queue on 100 MiB (warm)    <= 1.5 x queue on 0.5 MiB
  first read of 100 MiB      <= 10 x grep -c over the same file

Each figure is the median of several runs of the real command in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_worklog import generate  # noqa: E402

BIN = Path(sys.executable).parent
AGENTD = str(BIN / "agentd")


def timed(cmd: list[str], env: dict, n: int = 15, setup=None) -> float:
    times = []
    for _ in range(n):
        if setup:
            setup()
        t = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def env_for(root: Path, host: str) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("AGENTD_")}
    e.update(HOME=str(root / "home"), XDG_CONFIG_HOME=str(root / "home/.config"),
             XDG_STATE_HOME=str(root / f"state-{host}"), AGENTD_HOST=host, AGENTD_WORKLOG_DIR=str(root),
             AGENTD_PROVIDER="none")
    return e


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="agentd-bench."))
    try:
        shutil.copy(HERE.parent / "worklogs" / "demo_worklog.txt", root / "demo_worklog.txt")
        print("generating worklogs (0.5 MiB and 100 MiB)…", flush=True)
        generate(str(root / "small_worklog.txt"), 0.5)
        generate(str(root / "big_worklog.txt"), 100)
        demo, small, big = env_for(root, "demo"), env_for(root, "small"), env_for(root, "big")
        for e in (demo, small, big):  # warm the index
            subprocess.run([AGENTD, "queue"], env=e, stdout=subprocess.DEVNULL, check=True)
        py = timed([sys.executable, "-c", "pass"], demo)
        help_ = timed([AGENTD, "--help"], demo)
        queue = timed([AGENTD, "queue"], demo)
        status = timed([AGENTD, "status"], demo)
        q_small = timed([AGENTD, "queue"], small)
        q_big = timed([AGENTD, "queue"], big)
        grep = timed(["grep", "-c", "^- \\[", str(root / "big_worklog.txt")], big, n=7)
        index = Path(big["XDG_STATE_HOME"]) / "agentd" / "index.sqlite3"

        def drop_index():
            for suffix in ("", "-wal", "-shm"):
                Path(str(index) + suffix).unlink(missing_ok=True)

        first = timed([AGENTD, "queue"], big, n=5, setup=drop_index)
        rows = [
            ("python -c pass", py, None, None),
            ("agentd --help", help_, help_ / py, 2.0),
            ("agentd queue (demo)", queue, queue / py, 4.0),
            ("agentd status (demo)", status, status / py, 4.0),
            ("agentd queue, 0.5 MiB, warm", q_small, None, None),
            ("agentd queue, 100 MiB, warm", q_big, q_big / q_small, 1.5),
            ("grep -c, 100 MiB", grep, None, None),
            ("agentd queue, 100 MiB, first read", first, first / grep, 10.0),
        ]
        print(f"\n{'measure':<36} {'median ms':>10} {'ratio':>8} {'goal':>6}  result")
        ok_all = True
        for name, t, ratio, goal in rows:
            if ratio is None:
                print(f"{name:<36} {t * 1000:>10.1f}")
                continue
            ok = ratio <= goal
            ok_all &= ok
            print(f"{name:<36} {t * 1000:>10.1f} {ratio:>7.2f}x {goal:>5.1f}x  {'ok' if ok else 'MISSED'}")
        print("\nratios: --help and queue/status against python -c pass; 100 MiB warm against 0.5 MiB warm;"
              " first read against grep -c.")
        return 0 if ok_all else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
