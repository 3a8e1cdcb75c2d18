"""A task expected to run past the start of quiet hours waits for a longer window (issue 21, part 2): the
timer's wake passes it over for one that fits, says so, and takes it when the time left is long enough.
How long a task takes is its typed ``minutes``, else the median of its runs (or its kind's) on this host;
the learned case is tried once more with that history switched off."""

from __future__ import annotations

import os
import time

import pytest

from agentd.config import config
from agentd.queue import learned, queue
from agentd.store.store import Store
from agentd.wake import gating

from conftest import run_cli

QUIET = "09:00-18:00"  # the person works 9 to 6: free from 18:00 to 09:00, 15 hours


def at(hour: int, minute: int = 0) -> time.struct_time:
    return time.struct_time((2026, 12, 7, hour, minute, 0, 0, 341, 0))


def pick(worklog, text: str, local: time.struct_time, history=()):
    worklog.write_text(text)
    cfg = config.load(dict(os.environ, AGENTD_QUIET_HOURS=QUIET))
    store = Store(cfg.store_path)
    with store.tx():
        for n, (kind, duration) in enumerate(history):
            store.start_run(run_id=f"old{n}", task_id=f"old-{n}", kind=kind, title="earlier", status="done",
                            host=cfg.host, started_at="2026-12-01T00:00:00Z", duration_s=duration)
    view = queue.load(cfg, store, has_gpu=False)
    gate = gating.check(cfg, {}, forced=False, local_now=local)
    task = gating.choose(view.tasks, gate, None, view.history)
    return task, gate, view


LONG = "- [ ] long benchmark {id: long, run: 'true', value: 9, minutes: 60}\n"
SHORT = "- [ ] quick check {id: short, run: 'true', value: 2, minutes: 10}\n"


def test_a_task_that_would_run_into_quiet_hours_is_passed_over_for_one_that_fits(worklog):
    task, gate, _ = pick(worklog, LONG + SHORT, at(8, 30))
    assert task.id == "short"
    assert gate.passed == [("long", "expected 60 min (its minutes) would run past the start of quiet hours "
                                    "(09:00-18:00) in 30 min; waits for the next window")]


def test_with_time_enough_left_it_runs_and_alone_it_waits_saying_why(worklog):
    assert pick(worklog, LONG + SHORT, at(7, 0))[0].id == "long"  # two hours left
    task, gate, view = pick(worklog, LONG, at(8, 30))
    assert task is None
    assert gating.nothing_line(view.tasks, gate).startswith("long: expected 60 min (its minutes) would run past")


def test_a_task_longer_than_any_free_window_is_not_held_for_one(worklog):
    task, gate, _ = pick(worklog, "- [ ] soak {id: soak, run: 'true', minutes: 1200}\n", at(8, 30))
    assert task.id == "soak" and gate.passed == []  # 20 h never fits a 15 h window: waiting would be forever


def test_a_person_waking_by_hand_is_not_held(worklog):
    worklog.write_text(LONG)
    cfg = config.load(dict(os.environ, AGENTD_QUIET_HOURS=QUIET))
    assert gating.check(cfg, {}, forced=True).window is None


@pytest.mark.parametrize("off", [False, pytest.param(True, marks=pytest.mark.xfail(
    strict=True, reason="with the history switched off nothing says the task is long"))])
def test_how_long_an_untimed_task_takes_is_learned_from_its_kinds_runs(worklog, monkeypatch, off):
    if off:
        monkeypatch.setattr(learned, "evidence", lambda *a: None)
        monkeypatch.setattr(gating, "evidence", lambda *a: None)
    text = "- [ ] untimed {id: untimed, run: 'true', value: 9}\n" + SHORT
    task, gate, _ = pick(worklog, text, at(8, 30), history=[("command", 3600.0)] * 3)
    assert task.id == "short"
    assert gate.passed[0][1].startswith("expected 60 min (median of 3 command runs on this host) would run past")


def test_the_dry_run_says_what_it_passed_over(worklog, home):
    worklog.write_text(LONG + SHORT)
    # a quiet-hours range that starts 30 minutes from now, local time
    now = time.localtime()
    start = (now.tm_hour * 60 + now.tm_min + 31) % 1440
    end = (start + 60) % 1440
    quiet = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    r = run_cli("wake", "--dry-run", env={"AGENTD_QUIET_HOURS": quiet, "AGENTD_MAX_LOAD": "0"})
    assert r.returncode == 0, r.stderr
    assert "passed over: long: expected 60 min (its minutes) would run past the start of quiet hours" in r.stdout
    assert "would run: short" in r.stdout


def test_a_critical_directive_that_must_go_first_is_not_passed_over(worklog):
    from agentd.store.store import Store as S

    text = "**CRITICAL DIRECTIVE**: make CUDA work {id: cuda, minutes: 60}\n" + SHORT
    worklog.write_text(text)
    cfg = config.load(dict(os.environ, AGENTD_QUIET_HOURS=QUIET, ANTHROPIC_API_KEY="sk-test-not-used"))
    store = S(cfg.store_path)
    store.set_passovers({"cuda": 2})  # passed over critical_max_passovers wakes in a row: it goes first
    view = queue.load(cfg, store, has_gpu=False)
    gate = gating.check(cfg, {}, forced=False, local_now=at(8, 30))
    assert gating.choose(view.tasks, gate, None, view.history).id == "cuda" and gate.passed == []
