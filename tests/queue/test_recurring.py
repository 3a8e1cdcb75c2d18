"""Recurring tasks, ``{every: 6h}``: a done task opens again once its interval has passed since it was
last done; CANCEL ends it; a person's DONE counts as a run; a failed round retries by the usual rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timezone

import pytest

from agentd.config import config
from agentd.queue import queue
from agentd.store.store import Store
from agentd.worklog.entries import Entry

from conftest import AGENTD, run_cli

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
HOUR = 3600.0
FAKETIME = shutil.which("faketime")
needs_faketime = pytest.mark.skipif(FAKETIME is None, reason="needs libfaketime (apt-get install faketime)")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(seq: int, task: str, status: str, at: float) -> str:
    return Entry(seq, f"r{seq}", task, status, iso(at), {}, body=f"{status} body").render()


def task_at(worklog, text: str, now: float, **env):
    worklog.write_text(text, encoding="utf-8")
    cfg = config.load(dict(os.environ, **env))
    store = Store(cfg.store_path)  # (it keeps when agentd first saw each line)
    try:
        view = queue.load(cfg, store, has_gpu=False, now=now)
    finally:
        store.close()
    return {t.id: t for t in view.tasks}["rec"]


def later(hours: float, *args: str) -> subprocess.CompletedProcess:
    """The real CLI with its clocks ``hours`` ahead (the boot clock too: libfaketime's sleeps fail with
    EINVAL when only the wall clock is moved)."""
    return subprocess.run([FAKETIME, "-f", f"+{hours}h", *AGENTD, *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def queued(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stderr
    return {t["id"]: t for t in json.loads(r.stdout)["tasks"]}


@needs_faketime
def test_a_recurring_command_task_runs_is_not_due_then_is_due_again_after_its_interval(worklog):
    worklog.write_text("- [ ] nightly bench {id: rec, run: 'echo METRIC x=1', every: 6h}\n", encoding="utf-8")
    t = queued(run_cli("queue", "--json"))["rec"]
    assert t["status"] == "open" and t["eligible"] and t["why"].startswith("recurs every 6h: first run · ")
    r = run_cli("wake", "--now")
    assert r.returncode == 0 and "rec: done" in r.stdout, r.stdout + r.stderr
    t = queued(run_cli("queue", "--json"))["rec"]
    ran = datetime.strptime(json.loads(run_cli("runs", "--json").stdout)[0]["started_at"][:19],
                            "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    assert t["status"] == "done" and not t["eligible"]
    due = datetime.strptime(t["next_due"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    assert ran + 6 * HOUR - 5 <= due <= ran + 6 * HOUR + 60
    assert t["why"] == f"recurs every 6h: next due {t['next_due']}"
    assert "next due" in run_cli("queue").stdout  # shown without --all: it is not done for good
    r = run_cli("wake", "--now")  # not due: nothing runs
    assert "rec: done" not in r.stdout
    assert len(json.loads(run_cli("runs", "--json").stdout)) == 1
    t = queued(later(7, "queue", "--json"))["rec"]
    assert t["status"] == "open" and t["eligible"]
    assert t["why"].startswith(f"recurs every 6h: due again since {t['next_due']} · ")
    r = later(7, "wake", "--now")
    assert r.returncode == 0 and "rec: done" in r.stdout, r.stdout + r.stderr
    assert len(json.loads(run_cli("runs", "--json").stdout)) == 2
    assert queued(later(7, "queue", "--json"))["rec"]["status"] == "done"  # next due 6 h after that run
    # CANCEL ends it for good
    with worklog.open("a") as f:
        f.write("CANCEL: rec\n")
    t = queued(later(30, "queue", "--json"))["rec"]
    assert t["status"] == "cancelled" and not t["eligible"] and t["next_due"] is None


def test_a_done_recurring_task_waits_its_interval_and_opens_when_it_has_passed(worklog):
    text = "- [ ] rec {id: rec, run: 'true', every: 6h}\n" + entry(1, "rec", "done", NOW)
    t = task_at(worklog, text, NOW + HOUR)
    assert (t.status, t.eligible, t.next_due) == ("done", False, iso(NOW + 6 * HOUR))
    assert t.why == f"recurs every 6h: next due {iso(NOW + 6 * HOUR)}"
    t = task_at(worklog, text, NOW + 6 * HOUR + 1)
    assert t.status == "open" and t.eligible and t.why.startswith("recurs every 6h: due again since ")
    assert t.score > 0
    # the same line without `every`: done for good
    plain = "- [ ] rec {id: rec, run: 'true'}\n" + entry(1, "rec", "done", NOW)
    assert task_at(worklog, plain, NOW + 100 * HOUR).status == "done"


def test_a_last_run_ahead_of_the_clock_makes_it_due_now(worklog):
    """The clock was set back (or the entry came from a host whose clock runs ahead): a due time more than
    one interval away is not waited for."""
    text = "- [ ] rec {id: rec, run: 'true', every: 6h}\n" + entry(1, "rec", "done", NOW + 48 * HOUR)
    t = task_at(worklog, text, NOW)
    assert t.status == "open" and t.eligible and "ahead of this clock" in t.why


def test_a_persons_done_counts_as_a_run_when_agentd_first_sees_it(worklog):
    line = "- [ ] rec {id: rec, run: 'true', every: 1h}\n"
    assert task_at(worklog, line, NOW).status == "open"  # agentd reads the worklog first
    t = task_at(worklog, line + "DONE: rec\n", NOW + 60)
    assert (t.status, t.next_due) == ("done", iso(NOW + 60 + HOUR))
    assert task_at(worklog, line + "DONE: rec\n", NOW + 2 * HOUR).status == "open"


def test_a_checked_box_ends_a_recurring_task(worklog):
    t = task_at(worklog, "- [x] rec {id: rec, run: 'true', every: 1h}\n" + entry(1, "rec", "done", NOW),
                NOW + 10 * HOUR)
    assert t.status == "done" and t.next_due is None


def test_failures_of_an_earlier_round_do_not_count_towards_max_attempts(worklog):
    """Round 1 failed twice and then passed; round 2 fails once: one failed attempt, not three (blocked)."""
    text = ("- [ ] rec {id: rec, run: 'true', every: 1h}\n" + entry(1, "rec", "failed", NOW - 9 * HOUR)
            + entry(2, "rec", "failed", NOW - 8 * HOUR) + entry(3, "rec", "done", NOW - 7 * HOUR)
            + entry(4, "rec", "failed", NOW - HOUR))
    t = task_at(worklog, text, NOW, AGENTD_MAX_ATTEMPTS="3")
    assert (t.status, t.attempts) == ("failed", 1)
    t = task_at(worklog, text + entry(5, "rec", "failed", NOW - 0.5 * HOUR) + entry(6, "rec", "failed", NOW - 60),
                NOW, AGENTD_MAX_ATTEMPTS="3")
    assert (t.status, t.attempts) == ("blocked", 3)  # within a round, the usual rule
