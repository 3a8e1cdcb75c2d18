"""A report's data in the shape ``report/data.gather`` returns (version 1, docs/report.md): three weeks of
runs, spend against a budget, two providers, a metric with a gate, failed points and a change, a
recurring task, a queue, last runs with entries; and the same with nothing in it."""

from __future__ import annotations

import calendar
import time


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


UNTIL = calendar.timegm((2026, 12, 7, 5, 0, 0))
SINCE = UNTIL - 21 * 86400


def days() -> list[str]:
    first = SINCE - SINCE % 86400
    return [time.strftime("%Y-%m-%d", time.gmtime(first + i * 86400)) for i in range(22)]


def full(title: str = "tune the kernel") -> dict:
    ds = days()
    runs = [{"day": d, "done": (i * 7) % 5, "failed": 1 if i % 4 == 0 else 0, "blocked": 1 if i == 9 else 0,
             "other": 1 if i == 15 else 0} for i, d in enumerate(ds)]
    spend = [{"day": d, "usd": round(0.37 * ((i * 3) % 7), 4), "input_tokens": 1000 * ((i * 3) % 7),
              "output_tokens": 150 * ((i * 3) % 7)} for i, d in enumerate(ds)]
    pts = [{"at": iso(SINCE + 3600 + i * 86400), "value": 100.0 + (i % 5) * 3.5 - (20 if i == 12 else 0),
            "run": f"r{i:04d}", "failed": i == 12} for i in range(21)]
    done = sum(r["done"] for r in runs)
    ended = done + sum(r["failed"] + r["blocked"] for r in runs)
    last = [{"run": f"r{i:04d}", "task": "bench" if i % 2 else "tflops", "title": title if i == 0 else f"run {i}",
             "status": ["done", "failed", "blocked"][i % 3], "started_at": iso(UNTIL - 3600 * (i + 1)),
             "duration_s": 12.5 + i if i != 3 else None, "cost_usd": 0.0123 * i if i != 2 else None,
             "entry": f"=== agentd entry {i} ===\nMETRIC tflops={100 + i}\nit went fine\n"} for i in range(8)]
    return {
        "report": 1, "host": "demo", "generated_at": iso(UNTIL), "since": iso(SINCE), "until": iso(UNTIL),
        "days": ds,
        "attention": {
            "approvals": [{"id": "ap-0123456789abcdef", "task": "deploy", "what": "systemctl restart foo",
                           "asked_at": iso(UNTIL - 7200), "expires_at": iso(UNTIL + 6 * 86400)}],
            "blocked": [{"task": "flaky", "title": title, "reason": "failed 3 times: exit 3"}],
            "rules": [{"id": "no-push", "text": "never push to main", "critical": True}]},
        "runs_per_day": runs,
        "success": {"done": done, "ended": ended, "rate": done / ended},
        "spend_per_day": spend,
        "budget_usd_per_day": 2.0,
        "by_provider": [{"provider": "anthropic", "usd": 5.5, "input_tokens": 40000, "output_tokens": 6000},
                        {"provider": "openai", "usd": 1.25, "input_tokens": 12000, "output_tokens": 2100}],
        "metrics": [{"name": "tflops", "unit": "TFLOP/s", "task": "tflops", "points": pts,
                     "gates": [{"text": ">= 90", "op": ">=", "value": 90.0},
                               {"text": "> -10%", "op": ">", "value": None}],
                     "changes": [{"at": pts[12]["at"], "run": "r0012", "text": "tflops 80 is 20.2% below the baseline"}]},
                    {"name": "loss", "unit": None, "task": "train", "gates": [], "changes": [],
                     "points": [{"at": iso(UNTIL - 86400), "value": 0.125, "run": "r0100", "failed": False}]}],
        "reliability": [{"task": "tflops", "title": "measure tflops", "every": "1d", "runs": 21, "done": 20,
                         "pass_k": {"k": 3, "value": 0.857}, "median_s": 42.5},
                        {"task": "bench", "title": title, "every": "6h", "runs": 2, "done": 0,
                         "pass_k": {"k": 3, "value": None}, "median_s": None}],
        "queue": [{"id": "tflops", "title": "measure tflops", "kind": "command", "score": 3.25,
                   "why": "recurring every 1d; due now", "waits": False},
                  {"id": "bench", "title": title, "kind": "command", "score": None, "why": "blocked until 2026-12-08T00:00:00Z",
                   "waits": True}],
        "last_runs": last,
        "totals": {"runs": sum(r["done"] + r["failed"] + r["blocked"] + r["other"] for r in runs),
                   "usd": round(sum(s["usd"] for s in spend), 6),
                   "input_tokens": sum(s["input_tokens"] for s in spend),
                   "output_tokens": sum(s["output_tokens"] for s in spend)},
    }


def empty() -> dict:
    ds = days()
    return {"report": 1, "host": "demo", "generated_at": iso(UNTIL), "since": iso(SINCE), "until": iso(UNTIL),
            "days": ds, "attention": {"approvals": [], "blocked": [], "rules": []},
            "runs_per_day": [{"day": d, "done": 0, "failed": 0, "blocked": 0, "other": 0} for d in ds],
            "success": {"done": 0, "ended": 0, "rate": None},
            "spend_per_day": [{"day": d, "usd": 0.0, "input_tokens": 0, "output_tokens": 0} for d in ds],
            "budget_usd_per_day": None, "by_provider": [], "metrics": [], "reliability": [], "queue": [],
            "last_runs": [], "totals": {"runs": 0, "usd": 0.0, "input_tokens": 0, "output_tokens": 0}}
