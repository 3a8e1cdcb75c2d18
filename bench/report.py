"""`agentd report` on 100,000 runs (issue 22): a store filled with N runs over 60 days (report_fill.py),
then `agentd report --json` and `agentd report` (the HTML page) timed, best of 3, with the size of each.

    python bench/report.py [N]          # default 100000

Goals: each under 3 s, the page under 2 MB.  The exit status is 1 when a goal is missed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_fill import fill  # noqa: E402

AGENTD = [sys.executable, "-m", "agentd"]
GOAL_S = 3.0
GOAL_BYTES = 2 * 10**6


def timed(env: dict, *args: str) -> tuple[float, bytes]:
    t = time.perf_counter()
    r = subprocess.run([*AGENTD, "report", *args], env=env, capture_output=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"agentd report {' '.join(args)} exited {r.returncode}: {r.stderr.decode()[-2000:]}")
    return dt, r.stdout


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 100_000
    with tempfile.TemporaryDirectory(prefix="agentd-report.") as d:
        root = Path(d)
        (root / "wl").mkdir()
        env = {**os.environ, "HOME": str(root), "XDG_CONFIG_HOME": str(root / "c"), "XDG_STATE_HOME": str(root / "s"),
               "XDG_CACHE_HOME": str(root / "cache"), "AGENTD_HOST": "bench", "AGENTD_WORKLOG_DIR": str(root / "wl"),
               "AGENTD_PROVIDER": "none", "HF_HUB_OFFLINE": "1"}
        subprocess.run([*AGENTD, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"filling a store with {n:,} runs…", flush=True)
        fill(root / "s" / "agentd" / "agentd.sqlite3", n, time.time(), host="bench")
        out = root / "report.html"
        js = min((timed(env, "--json") for _ in range(3)), key=lambda x: x[0])
        page = min((timed(env, "-o", str(out)) for _ in range(3)), key=lambda x: x[0])
        size = out.stat().st_size
        rows = [(f"agentd report --json, {n:,} runs", js[0], len(js[1])),
                (f"agentd report (HTML), {n:,} runs", page[0], size)]
        missed = 0
        print(f"\n{'measure':<40} {'best s':>8} {'goal':>6} {'size':>10} {'goal':>8}  result")
        for name, t, b in rows:
            ok = t < GOAL_S and b < GOAL_BYTES
            missed += not ok
            print(f"{name:<40} {t:>8.2f} {GOAL_S:>5.0f}s {b / 1e6:>8.2f}MB {GOAL_BYTES / 1e6:>6.0f}MB  "
                  f"{'ok' if ok else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
