"""The queue built from the task table's kept order (plain tasks merged with the ones worked out one
by one) is the queue built one task at a time, in every field, in order, and as `agentd queue`
renders it in text and JSON."""

from __future__ import annotations

import json
import marshal
import os
from array import array
from datetime import datetime, timezone
from types import SimpleNamespace

from hypothesis import HealthCheck, example, given, settings, strategies as st

from agentd.config import config
from agentd.queue import queue
from agentd.worklog import tasktable
from agentd.cli import views
from agentd.worklog.entries import Entry
from agentd.worklog.parse import parse_bytes
from agentd.queue.tasklist import Run

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
IDS = [f"t{i}" for i in range(12)] + ["a-task-id-longer-than-14"]


def _task_line(draw) -> str:
    tid = draw(st.sampled_from(IDS))
    attrs = [f"id: {tid}"]
    for key, values, hi in (("value", [0, -0.0, 0.0, 1, 5, 7.5, 10], 10), ("certainty", [0.1, 0.5, 1, -0.0], 1),
                            ("minutes", [0, 30, 240], 10**9), ("priority", ["low", "high", "critical"], None)):
        if draw(st.booleans()):
            if hi is not None and draw(st.booleans()):  # any number (each task may score differently)
                attrs.append(f"{key}: {draw(st.floats(0, hi)):.6f}")
            else:
                attrs.append(f"{key}: {draw(st.sampled_from(values))}")
    if draw(st.integers(0, 5)) == 0:
        attrs.append(f"after: [{draw(st.sampled_from(IDS + ['nope']))}]")
    if draw(st.integers(0, 6)) == 0:
        attrs.append("gpu: true")
    shape = draw(st.sampled_from(["task", "command", "command", "directive", "critical", "blocker", "experiment",
                                  "bogus experiment"]))
    a = "{" + ", ".join(attrs) + "}"
    if shape in ("task", "command"):
        box = draw(st.sampled_from([" ", " ", "x"]))
        run = f", run: '{draw(st.sampled_from(['true', 'make test']))}'" if shape == "command" else ""
        title = draw(st.sampled_from(['a task', 'b task', 'zz', 'ünïcode', 'a title ' + 'x' * 70, '100% done']))
        return f"- [{box}] {title} {a[:-1]}{run}}}"
    word = {"directive": "DIRECTIVE", "critical": "**CRITICAL DIRECTIVE**", "blocker": "BLOCKER",
            "experiment": "EXPERIMENT", "bogus experiment": "EXPERIMENT"}[shape]
    title = {"experiment": "cuda-probe",
             "bogus experiment": draw(st.sampled_from(["warp-drive", "time-travel", "100%"]))}.get(shape, "do the thing")
    return f"{word}: {title} {a}"


@st.composite
def worklogs(draw) -> str:
    out = []
    seq = 0
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.integers(0, 9))
        if kind < 6:
            out.append(_task_line(draw) + "\n")
        elif kind < 8:
            seq += 1
            status = draw(st.sampled_from(["done", "failed", "deferred", "interrupted", "running", "waiting"]))
            extra = {"until": "2026-06-02T00:00:00Z"} if status == "deferred" else {}
            at = draw(st.sampled_from(["2026-06-01T11:00:00Z", "2026-05-01T11:00:00Z"]))
            out.append(Entry(seq, f"r{seq}", draw(st.sampled_from(IDS)), status, at, extra, body="x").render())
        else:
            out.append(f"{draw(st.sampled_from(['DONE', 'CANCEL', 'RETRY']))}: {draw(st.sampled_from(IDS))}\n")
    return "".join(out)


def _view(text: str, backend: str | None, gpu: bool, one_by_one: bool, monkeypatch):
    if one_by_one:  # no task is plain: every one is worked out one by one, as before the table kept an order
        monkeypatch.setattr(tasktable, "PLAIN_KINDS", frozenset())
    try:
        state = parse_bytes(text.encode())
    finally:
        monkeypatch.undo()
    cfg = config.load(dict(os.environ))
    tasks = queue.build(cfg, state, [], queue.Facts(now=NOW, has_gpu=gpu, agent_backend=backend, agent_reason="no key",
                                                    passovers={"t1": 5}, first_seen={"t2": NOW - 3 * 86400}))
    read = SimpleNamespace(path=cfg.worklog_path, exists=True, state=state)
    return queue.View(read, tasks, [], backend, gpu, 0, "" if backend else "no key")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=worklogs(), backend=st.sampled_from([None, "anthropic"]), gpu=st.booleans())
# rows of one score, a task worked out one by one (another kind, the same score) between them
@example(text="- [ ] a {id: a, run: 'true', value: 5}\n- [ ] b {id: b, value: 5, certainty: 0.9}\n"
              "- [ ] c {id: c, run: 'true', value: 5}\nRETRY: b\n", backend="anthropic", gpu=False)
def test_the_kept_order_gives_the_queue_one_by_one_gives(text, backend, gpu, monkeypatch):
    kept = _view(text, backend, gpu, False, monkeypatch)
    ref = _view(text, backend, gpu, True, monkeypatch)
    assert not ref.read.state.tasks.order  # the reference really works every task out one by one
    assert [t.to_json() for t in kept.tasks] == [t.to_json() for t in ref.tasks]
    assert [t.__dict__ for t in kept.tasks] == [t.__dict__ for t in ref.tasks]
    assert len(kept.tasks) == len(ref.tasks) == len(list(ref.tasks))
    assert views.queue_text(kept, show_all=True) == views.queue_text(ref, show_all=True)
    assert views.queue_text(kept) == views.queue_text(ref)
    assert json.loads(views.queue_json_text(kept)) == json.loads(views.queue_json_text(ref))
    assert kept.tasks.counts() == ref.tasks.counts() and kept.tasks.eligible_count() == ref.tasks.eligible_count()
    for t in ref.tasks:
        assert kept.tasks.get(t.id).__dict__ == t.__dict__


@settings(max_examples=200, deadline=None)
@given(text=worklogs(), more=worklogs())
def test_the_order_kept_as_lines_come_is_the_order_sorted_afresh(text, more):
    state = parse_bytes(text.encode())
    assert state.tasks.order is not None  # worked out now, then kept up to date as the read goes on
    state.feed(more.encode())
    kept = list(state.tasks.order)
    state.tasks._order = None
    assert kept == list(state.tasks.order)
    assert state.tasks == parse_bytes((text + more).encode()).tasks
    # as the index keeps it: its rows in the queue's order, the same tasks in the same order (its list
    # columns in pieces of CHUNK_ROWS rows: a few, to have several)
    chunk, tasktable.CHUNK_ROWS = tasktable.CHUNK_ROWS, 3
    try:
        again = tasktable.TaskTable.from_parts(marshal.loads(marshal.dumps(p)) for p in state.tasks.parts())
    finally:
        tasktable.CHUNK_ROWS = chunk
    assert again == state.tasks and again._in_order()
    assert [again.ids[i] for i in again.order] == [state.tasks.ids[i] for i in kept]
    assert {again.ids[i] for i in again.special} == {state.tasks.ids[i] for i in state.tasks.special}
    assert all(again.score(i) == state.tasks.score(state.tasks.find(again.ids[i])) for i in again.order)
    assert list(again.parts()) == list(tasktable.TaskTable.from_parts(again.parts()).parts())


def test_a_task_named_by_an_entry_leaves_the_plain_rows_and_comes_back_worked_out(monkeypatch):
    text = "- [ ] a {id: a, run: 'true', value: 9}\n- [ ] b {id: b, run: 'true', value: 1}\n"
    text += Entry(1, "r1", "a", "failed", "2026-06-01T11:59:00Z", body="x").render()
    v = _view(text, "anthropic", False, False, monkeypatch)
    assert [(t.id, t.status, t.eligible) for t in v.tasks] == [("b", "open", True), ("a", "failed", False)]
    assert [t.id for t in v.tasks.dynamic] == ["a"] and len(v.tasks) == 2


def test_values_that_are_equal_but_written_differently_keep_their_own_explanation(monkeypatch):
    text = ("- [ ] a {id: a, value: 0}\n- [ ] b {id: b, value: -0.0}\n- [ ] a {id: a, value: 5}\n"
            "DIRECTIVE: c {id: c, value: 0}\nDIRECTIVE: d {id: d, value: -0.0}\n")
    for one_by_one in (False, True):
        v = _view(text, "anthropic", False, one_by_one, monkeypatch)
        parts = {t.id: t.parts[0] for t in v.tasks}
        assert parts["b"] == ("value", "-0") and parts["a"] == ("value", "5"), parts
        assert parts["c"] == ("value", "0") and parts["d"] == ("value", "-0"), parts


def _tasks_rows(index_path) -> list:
    import sqlite3

    from agentd.worklog.index import TASKS

    with sqlite3.connect(index_path) as db:
        return db.execute(f"SELECT part, token FROM {TASKS} ORDER BY part").fetchall()


@settings(max_examples=60, deadline=None)
@given(text=worklogs(), more=st.lists(worklogs(), min_size=1, max_size=3))
def test_a_table_kept_as_its_changes_reads_back_as_parsing_it_all(text, more):
    """The index keeps a grown worklog's table as the whole table it kept before and the definitions
    changed since (``Index.put``): each read of it gives what parsing the whole file gives."""
    import tempfile
    from pathlib import Path

    from agentd.worklog import worklog
    from agentd.worklog.index import Index

    with tempfile.TemporaryDirectory() as d:
        path, index = Path(d) / "w_worklog.txt", Path(d) / "index.sqlite3"
        path.write_text("- [ ] zero {id: zero}\n" + text + "- [ ] first {id: first, run: 'true'}\n")
        worklog.read(path, Index(index))
        deltas = 0
        for chunk in more:
            with open(path, "a") as f:
                f.write(chunk + "- [ ] and one more {id: more, run: 'true'}\n")
            grown = worklog.read(path, Index(index))
            again = worklog.read(path, Index(index))  # read back from the index
            fresh = parse_bytes(path.read_bytes())
            for r in (grown, again):
                assert r.state.to_dict() == fresh.to_dict()
                assert [r.state.tasks.ids[i] for i in r.state.tasks.order] == \
                    [fresh.tasks.ids[i] for i in fresh.tasks.order]
                assert {r.state.tasks.ids[i] for i in r.state.tasks.special} == \
                    {fresh.tasks.ids[i] for i in fresh.tasks.special}
            assert again.mode == "cached"
            deltas += any(part == -1 for part, _ in _tasks_rows(index))
        assert deltas  # (the changes were kept as changes)


def test_a_table_changed_past_max_delta_is_written_whole(tmp_path, monkeypatch):
    from agentd.worklog import index as index_mod, worklog
    from agentd.worklog.index import Index

    path, idx = tmp_path / "w_worklog.txt", tmp_path / "index.sqlite3"
    path.write_text("".join(f"- [ ] t {{id: t{i}, run: 'true'}}\n" for i in range(20)))
    worklog.read(path, Index(idx))
    with open(path, "a") as f:
        f.write("- [ ] u {id: u1, run: 'true'}\n- [ ] u {id: u2, run: 'true'}\nDONE: t1\n")
    worklog.read(path, Index(idx))
    rows = _tasks_rows(idx)
    assert rows[0][0] == -1 and len({tok for _, tok in rows}) == 2  # the changes, and the table they change
    monkeypatch.setattr(index_mod, "MAX_DELTA", 3)
    with open(path, "a") as f:
        f.write("- [ ] u {id: u3, run: 'true'}\n- [ ] u {id: u4, run: 'true'}\nDONE: t2\n")
    r = worklog.read(path, Index(idx))
    rows = _tasks_rows(idx)
    assert rows[0][0] == 0 and len({tok for _, tok in rows}) == 1  # 4 changes > 3: written whole again
    assert r.state.to_dict() == parse_bytes(path.read_bytes()).to_dict()
    assert worklog.read(path, Index(idx)).state.to_dict() == r.state.to_dict()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), backend=st.sampled_from([None, "anthropic"]))
def test_long_runs_read_back_from_the_index_render_as_one_by_one(seed, backend, monkeypatch, tmp_path_factory):
    """Hundreds of plain rows, read back from the index (where the table is kept in the queue's
    order, so a run's rows are next to each other and its columns are sliced) render as working
    every task out one by one does."""
    import random

    from agentd.worklog import worklog
    from agentd.worklog.index import Index

    rng = random.Random(seed)
    lines = []
    for i in range(rng.randint(200, 400)):
        attrs = [f"id: p{i}"] + [f"{k}: {v}" for k, v in (("value", f"{rng.random() * 10:.{rng.randint(0, 6)}f}"),
                                                          ("certainty", rng.choice(["0.5", "1", "-0.0"])),
                                                          ("minutes", rng.choice(["0", "30", "12345.5"])),
                                                          ("priority", rng.choice(["low", "high"])))
                                 if rng.random() < 0.4]
        run = ", run: 'true'" if rng.random() < 0.7 else ""
        lines.append(f"- [{rng.choice('    x')}] task {i} {{{', '.join(attrs)}{run}}}\n")
        if rng.random() < 0.02:
            lines.append(f"DONE: p{rng.randint(0, i)}\n")
        if rng.random() < 0.01:
            lines.append("DIRECTIVE: think {id: d%d}\n" % i)
        if rng.random() < 0.05:  # held back, each for its own reason
            lines.append(f"EXPERIMENT: warp-{rng.randint(0, 3)} {{id: x{i}, value: {rng.randint(0, 9)}}}\n")
    text = "".join(lines)
    d = tmp_path_factory.mktemp("w")
    path = d / "w_worklog.txt"
    path.write_text(text)
    worklog.read(path, Index(d / "i.sqlite3"))
    state = worklog.read(path, Index(d / "i.sqlite3")).state
    cfg = config.load(dict(os.environ))
    views_ = []
    for st_, one_by_one in ((state, False), (None, True)):
        if one_by_one:
            monkeypatch.setattr(tasktable, "PLAIN_KINDS", frozenset())
            st_ = parse_bytes(text.encode())
            monkeypatch.undo()
        tasks = queue.build(cfg, st_, [], queue.Facts(now=NOW, has_gpu=False, agent_backend=backend,
                                                      agent_reason="no key"))
        views_.append(queue.View(SimpleNamespace(path=path, exists=True, state=st_), tasks, [], backend, False, 0,
                                 "" if backend else "no key"))
    kept, ref = views_
    contiguous = [len(r.rows) for r in kept.tasks.runs() if type(r) is Run and len(r.rows) > 16
                  and r.rows == array("L", range(r.rows[0], r.rows[-1] + 1))]
    # (read back, the table is kept in the queue's order: the long runs are slices of it, unless agent
    # tasks wait and are held back from between them)
    assert contiguous or backend is None
    assert views.queue_text(kept, show_all=True) == views.queue_text(ref, show_all=True)
    assert views.queue_json_text(kept) == views.queue_json_text(ref)


def test_a_damaged_task_table_in_the_index_is_read_again_from_the_worklog(tmp_path):
    """Each task table document carries a checksum: a flipped byte (a bad disk, a crash) makes the
    worklog be read again, never a crash (``marshal`` may crash on damaged bytes) or wrong scores."""
    import sqlite3

    from agentd.worklog import worklog
    from agentd.worklog.index import TASKS, Index

    path, idx = tmp_path / "w_worklog.txt", tmp_path / "index.sqlite3"
    path.write_text("".join(f"- [ ] t {{id: t{i}, run: 'true', value: {i % 10}.5}}\n" for i in range(40))
                    + "DONE: t3\n")
    want = parse_bytes(path.read_bytes()).to_dict()
    first = worklog.read(path, Index(idx))
    assert first.state.to_dict() == want
    with sqlite3.connect(idx) as db:
        parts = db.execute(f"SELECT part, length(doc) FROM {TASKS} ORDER BY part").fetchall()
    for part, size in parts:
        for at in (0, size // 2, size - 1):
            with sqlite3.connect(idx) as db:
                (doc,) = db.execute(f"SELECT doc FROM {TASKS} WHERE part=?", (part,)).fetchone()
                bad = doc[:at] + bytes([doc[at] ^ 0x55]) + doc[at + 1:]
                db.execute(f"UPDATE {TASKS} SET doc=? WHERE part=?", (bad, part))
            r = worklog.read(path, Index(idx))
            assert r.state.to_dict() == want and r.mode == "full", (part, at)
            assert worklog.read(path, Index(idx)).mode == "cached"  # (written again, whole)
    from agentd.worklog.index import FILES

    damaged = 0
    for column in ("state", "rest", "whole"):  # the row that names the table: its documents too
        with sqlite3.connect(idx) as db:
            (doc,) = db.execute(f"SELECT {column} FROM {FILES}").fetchone()
        for at in range(0, len(doc or b""), max(1, len(doc or b"") // 7)):
            with sqlite3.connect(idx) as db:
                db.execute(f"UPDATE {FILES} SET {column}=?", (doc[:at] + bytes([doc[at] ^ 0x55]) + doc[at + 1:],))
            r = worklog.read(path, Index(idx))
            assert r.state.to_dict() == want and r.mode == "full", (column, at)
            damaged += 1
    assert damaged >= 7
