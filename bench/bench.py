"""`make bench`: the CLI's speed goals, measured in one run and printed as ratios.

Goals (issue 2):
  agentd --help              <= 2 x  python -c pass
  agentd queue / status      <= 4 x  python -c pass         (small worklog, index warm)
  queue on 100 MiB (warm)    <= 1.5 x queue on 0.5 MiB
  first read of 100 MiB      <= 10 x grep -c over the same file (grep -c '': no pattern, every line counted)
  wake overhead on 100 MiB   reported as a ratio to the same wake on 0.5 MiB (goal here: <= 1.5 x)

Each figure is the median of several runs of the real command in a subprocess,
its output read through a pipe.  Not /dev/null: GNU grep notices that its output
is /dev/null and stops at the first match, which once made it look 20x faster.
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


def once(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    return time.perf_counter() - t


def rounds(cases: dict, n: int = 15) -> dict:
    """Median time of each case, the cases taking turns so that load changes hit all alike."""
    times: dict = {name: [] for name in cases}
    for _ in range(n):
        for name, (cmd, env, setup) in cases.items():
            if setup:
                setup()
            times[name].append(once(cmd, env))
    return {name: statistics.median(ts) for name, ts in times.items()}


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
        index = Path(big["XDG_STATE_HOME"]) / "agentd" / "index.sqlite3"

        def drop_index():
            for suffix in ("", "-wal", "-shm"):
                Path(str(index) + suffix).unlink(missing_ok=True)

        t = rounds({
            "py": ([sys.executable, "-c", "pass"], demo, None),
            "help": ([AGENTD, "--help"], demo, None),
            "queue": ([AGENTD, "queue"], demo, None),
            "status": ([AGENTD, "status"], demo, None),
            "q_small": ([AGENTD, "queue"], small, None),
            "q_big": ([AGENTD, "queue"], big, None),
        })
        py, help_, queue, status, q_small, q_big = (t[k] for k in ("py", "help", "queue", "status", "q_small",
                                                                   "q_big"))
        # the wake's own overhead: a wake that runs `true`, on the big and the small worklog
        wake_tasks = "".join(f"- [ ] noop {i} {{id: noop{i}, run: 'true', value: 10, certainty: 1}}\n"
                             for i in range(40))
        for name in ("small_worklog.txt", "big_worklog.txt"):
            with open(root / name, "a", encoding="utf-8") as f:
                f.write(wake_tasks)
        for e in (small, big):
            subprocess.run([AGENTD, "queue"], env=e, stdout=subprocess.DEVNULL, check=True)
        t = rounds({"w_small": ([AGENTD, "wake", "--now"], small, None),
                    "w_big": ([AGENTD, "wake", "--now"], big, None)}, n=9)
        w_small, w_big = t["w_small"], t["w_big"]
        big_file = str(root / "big_worklog.txt")
        t = rounds({"grep": (["grep", "-c", "", big_file], big, None),
                    "grep_entries": (["grep", "-c", "^=== agentd entry ", big_file], big, None),
                    "first": ([AGENTD, "queue"], big, drop_index)}, n=5)
        grep, grep_entries, first = t["grep"], t["grep_entries"], t["first"]
        rows = [
            ("python -c pass", py, None, None),
            ("agentd --help", help_, help_ / py, 2.0),
            ("agentd queue (demo)", queue, queue / py, 4.0),
            ("agentd status (demo)", status, status / py, 4.0),
            ("agentd queue, 0.5 MiB, warm", q_small, None, None),
            ("agentd queue, 100 MiB, warm", q_big, q_big / q_small, 1.5),
            ("agentd wake (runs `true`), 0.5 MiB", w_small, None, None),
            ("agentd wake (runs `true`), 100 MiB", w_big, w_big / w_small, 1.5),
            ("grep -c '', 100 MiB", grep, None, None),
            ("grep -c '^=== agentd entry ', 100 MiB", grep_entries, None, None),
            ("agentd queue, 100 MiB, first read", first, first / grep, 10.0),
            ("  the same, against the entry grep", first, first / grep_entries, None),
        ]
        print(f"\n{'measure':<40} {'median ms':>10} {'ratio':>8} {'goal':>6}  result")
        ok_all = True
        for name, t, ratio, goal in rows:
            if ratio is None:
                print(f"{name:<40} {t * 1000:>10.1f}")
                continue
            if goal is None:
                print(f"{name:<40} {t * 1000:>10.1f} {ratio:>7.2f}x  (for reference)")
                continue
            ok = ratio <= goal
            ok_all &= ok
            print(f"{name:<40} {t * 1000:>10.1f} {ratio:>7.2f}x {goal:>5.1f}x  {'ok' if ok else 'MISSED'}")
        print("\nratios: --help and queue/status against python -c pass; 100 MiB warm, and the wake, against"
              " 0.5 MiB; first read against grep -c '' (and, for reference, a grep for the entry markers).")
        return 0 if ok_all else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
