"""A store filled fast with N runs for `agentd report`'s bench and its bounded-size test: the runs spread
over 60 days before ``now``, 40 tasks (4 of them measuring a metric every run), a third of them agent runs
with tokens, a cost, a provider, an exchange and a ledger row, each run with its finding entry.

Rows go straight in with ``executemany`` (a real Store makes the schema), as a host would have them
after N wakes."""

from __future__ import annotations

import random
import time
from pathlib import Path

from agentd.store.store import Store

STATUSES = ["done"] * 7 + ["failed", "blocked", "deferred"]
PROVIDERS = ("anthropic", "openai", "claude-cli")
SPAN = 60 * 86400


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def fill(path: Path, n: int, now: float, host: str = "bench", seed: int = 1) -> None:
    rand = random.Random(seed)
    s = Store(path)
    runs, metrics, entries, exchanges, ledger = [], [], [], [], []
    for i in range(n):
        t = now - SPAN + SPAN * i / n
        task = f"task{i % 40}"
        run = f"r{i:07d}"
        status = STATUSES[i % len(STATUSES)]
        agent = i % 3 == 0
        tin, tout = (rand.randint(1000, 50000), rand.randint(100, 5000)) if agent else (0, 0)
        cost = round(tin * 3e-6 + tout * 15e-6, 6) if agent else 0.0
        provider = PROVIDERS[i % len(PROVIDERS)] if agent else None
        started = iso(t)
        runs.append((run, task, "task" if agent else "command", f"run {i} of {task} <i>", status, started,
                     rand.uniform(1, 600), 0 if status == "done" else 1, tin, tout, cost, provider,
                     f"summary {i}", None, "QC: tflops >= 90: FAIL" if status == "failed" else None, None, host))
        entries.append((run, i + 1, task, status, f"=== agentd entry seq={i + 1} run={run} ===\n> **{status}** "
                        f"· {task}\n> tflops={100 + i % 7}\n=== agentd end seq={i + 1} run={run} ===\n", started,
                        "wl"))
        if i % 40 < 4:
            metrics.append((run, task, host, "tflops", 100.0 + rand.gauss(0, 2), "TFLOP/s", "measured", started))
        metrics.append((run, task, host, "run.duration_s", runs[-1][6], "s", "measured", started))
        if agent:
            exchanges.append((run, 1, provider, "m", tin, tout, cost, started))
            ledger.append((started[:10], run, tin + tout, cost, started))
    with s.tx():
        s.db.executemany("INSERT INTO runs (run_id, task_id, kind, title, status, started_at, duration_s, exit_code,"
                         " input_tokens, output_tokens, cost_usd, provider, summary, run_dir, reason, defer_until, host)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
        s.db.executemany("INSERT INTO entries (run_id, seq, task_id, status, text, written_at, worklog)"
                         " VALUES (?,?,?,?,?,?,?)", entries)
        s.db.executemany("INSERT INTO metrics (run, task, host, name, value, unit, source, at) VALUES (?,?,?,?,?,?,?,?)",
                         metrics)
        s.db.executemany("INSERT INTO exchanges (run_id, step, provider, model, input_tokens, output_tokens, cost_usd,"
                         " created_at) VALUES (?,?,?,?,?,?,?,?)", exchanges)
        s.db.executemany("INSERT INTO ledger VALUES (?,?,?,?,?)", ledger)
    s.close()
