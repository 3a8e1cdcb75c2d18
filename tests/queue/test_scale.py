"""The queue's fast paths (issue 12's scale targets) give exactly what the plain ones give."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pytest

from agentd.config import config
from agentd.queue import queue
from agentd.cli import views
from agentd.worklog import worklog as wl
from agentd.worklog.entries import Entry
from agentd.worklog.index import Index
from agentd.worklog.parse import parse_bytes
from agentd.tasks.task import Task

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()

MIXED = (
    "- [ ] plain {id: a, run: 'echo \"hi\"', value: 7, gpu: true}\n"
    "- [x] done by hand {id: b}\n"
    "DIRECTIVE: write up what you find {id: d}\n"
    "**CRITICAL DIRECTIVE**: fix it now {id: crit}\n"
    "- [ ] waits {id: w, after: [a, nope], minutes: 30, certainty: 0.25}\n"
    "- [ ] t\u00e9l\u00e9phone \x1b[31m {id: esc, priority: low}\n"
    "EXPERIMENT: cuda-probe {id: probe}\n"
    "BLOCKER: the disk is full {id: blk}\n"
    "- [ ] loop one {id: l1, after: l2}\n- [ ] loop two {id: l2, after: l1}\n"
    + Entry(3, "r3", "a", "failed", "2026-06-01T11:00:00Z", body="failed").render()
    + Entry(4, "r4", "d", "deferred", "2026-06-01T11:00:00Z", {"until": "2026-06-02T00:00:00Z"}, body="x").render()
    + "DONE: probe\nRETRY: blk\n"
    "- [ ] the last line, held back {id: last, run: 'true'}\n"
)


def view_of(worklog, text=MIXED, **env):
    worklog.write_text(text, encoding="utf-8")
    return queue.load(config.load(dict(os.environ, **env)), has_gpu=False, now=NOW)


def test_each_task_line_is_what_json_dumps_makes_of_to_json(worklog):
    tasks = view_of(worklog).tasks
    odd = Task("odd", "odd", "task", attrs={"run": ["a", "list"], "after": ("x",)}, score=float("nan"))
    odd2 = Task("odd2", "odd", "command", attrs={"run": "x"}, score=3, latest_run=7)
    assert list(views.task_lines(tasks.rows(), tasks)) == [json.dumps(t.to_json()) for t in tasks]
    tasks = list(tasks) + [odd, odd2]
    assert list(views.task_lines(tasks)) == [json.dumps(t.to_json()) for t in tasks]


def test_queue_json_text_is_queue_json(worklog):
    v = view_of(worklog)
    assert json.loads(views.queue_json_text(v)) == json.loads(json.dumps(views.queue_json(v), default=str))
    v.tasks = []
    assert json.loads(views.queue_json_text(v)) == json.loads(json.dumps(views.queue_json(v), default=str))


def test_the_built_tasks_have_every_field_of_a_task(worklog):
    v = view_of(worklog, ANTHROPIC_API_KEY="sk-test-not-used")
    for t in v.tasks:
        assert sorted(t.__dict__) == sorted(Task._fields)  # every field, none more
    assert {t.id for t in v.tasks} >= {"a", "b", "d", "crit", "w", "esc", "last"}


def _queue_ids(table) -> list:
    return [table.ids[i] for i in table.order]


def test_a_cached_read_with_an_unfinished_tail_is_a_fresh_parse(worklog, tmp_path, monkeypatch):
    from agentd.worklog.parse import State

    text = MIXED + "- [ ] no newline yet {id: tail"
    worklog.write_text(text, encoding="utf-8")
    fresh = parse_bytes(text.encode())
    first = wl.read(worklog, Index(tmp_path / "i.sqlite3"))
    with monkeypatch.context() as m:  # the tail's folded state is kept: an unchanged file is not parsed
        m.setattr(State, "feed", lambda *a, **k: pytest.fail("parsed again"))
        again = wl.read(worklog, Index(tmp_path / "i.sqlite3"))
    assert (first.mode, again.mode) == ("full", "cached")
    for r in (first, again):
        assert r.state.to_dict() == fresh.to_dict()
        assert _queue_ids(r.state.tasks) == _queue_ids(fresh.tasks)
    with open(worklog, "a") as f:
        f.write("}\n")
    grown = wl.read(worklog, Index(tmp_path / "i.sqlite3"))
    assert grown.mode == "incremental"
    assert grown.state.to_dict() == parse_bytes(worklog.read_bytes()).to_dict()
