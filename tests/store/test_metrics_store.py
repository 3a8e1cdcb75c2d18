"""The store's metrics table (migration 009): a run's metrics kept all or none, series, the values a
baseline is the median of (the last passing runs of a task on a host), the names; real SQLite files."""

from __future__ import annotations

import math
import sqlite3

import pytest

from agentd.metrics.metric import CLAIMED, MEASURED, Metric
from agentd.store import metrics as sm
from agentd.store import migrations
from agentd.store.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state" / "agentd.sqlite3")
    yield s
    s.close()


def run(store, run_id, task="bench", status="done", host="h1", at="2026-01-01T00:00:00Z", **metrics):
    store.start_run(run_id=run_id, task_id=task, kind="command", status=status, started_at=at, host=host)
    sm.add(store, run_id, task, host, [Metric(k, v, "tok/s", MEASURED) for k, v in metrics.items()], at=at)


def test_a_new_store_has_the_metrics_table_and_its_indexes(store):
    cols = [r[1] for r in store.db.execute("PRAGMA table_info(metrics)")]
    assert cols == ["run", "task", "host", "name", "value", "unit", "source", "at"]
    idx = {r[0]: r[1] for r in store.db.execute("SELECT name, sql FROM sqlite_master WHERE type='index'"
                                                 " AND tbl_name='metrics'")}
    assert "(task, name, at)" in idx["metrics_task"] and "(name, at)" in idx["metrics_name"]
    plan = " ".join(r[-1] for r in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT value FROM metrics WHERE task='t' AND name='n' ORDER BY at DESC"))
    assert "metrics_task" in plan


def test_a_store_from_before_the_metrics_migration_gets_the_table_and_keeps_its_runs(tmp_path, monkeypatch):
    path = tmp_path / "agentd.sqlite3"
    names = [name for name, _ in migrations.MIGRATIONS]
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:names.index("009_metrics")])
        old = Store(path)
        old.start_run(run_id="r1", task_id="bench", kind="command", status="done", started_at="2026-01-01T00:00:00Z")
        assert old.db.execute("SELECT 1 FROM sqlite_master WHERE name='metrics'").fetchone() is None
        old.close()
    s = Store(path)
    assert s.run("r1")["status"] == "done"
    assert "009_metrics" in {r[0] for r in s.db.execute("SELECT name FROM migrations")}
    sm.add(s, "r1", "bench", None, [Metric("tflops", 80.0)])
    assert [p["value"] for p in sm.series(s, "tflops")] == [80.0]
    s.close()


def test_a_runs_metrics_are_kept_all_or_none(store):
    with pytest.raises(ValueError, match="'bad': nan is not a finite number"):
        sm.add(store, "r1", "bench", "h1", [Metric("good", 1.0), Metric("bad", math.nan)])
    assert sm.of_run(store, "r1") == []
    assert sm.add(store, "r1", "bench", "h1", [Metric("good", 1.0, "s"), ("other", 2, "", CLAIMED)]) == 2
    assert [(r["name"], r["value"], r["unit"], r["source"]) for r in sm.of_run(store, "r1")] == [
        ("good", 1.0, "s", MEASURED), ("other", 2.0, "", CLAIMED)]


def test_a_write_that_fails_midway_leaves_nothing(store):
    store.db.execute("CREATE TRIGGER no_third BEFORE INSERT ON metrics WHEN NEW.name='c'"
                     " BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(sqlite3.IntegrityError):
        sm.add(store, "r1", "bench", "h1", [Metric("a", 1.0), Metric("b", 2.0), Metric("c", 3.0)])
    assert sm.of_run(store, "r1") == []


def test_the_same_run_name_and_source_again_replaces_the_row(store):
    sm.add(store, "r1", "bench", "h1", [Metric("t", 1.0)])
    sm.add(store, "r1", "bench", "h1", [Metric("t", 2.0), Metric("t", 5.0, source=CLAIMED)])
    assert sorted((r["value"], r["source"]) for r in sm.of_run(store, "r1")) == [(2.0, MEASURED), (5.0, CLAIMED)]


def test_a_series_is_oldest_first_with_each_points_run_time_and_status_and_filters(store):
    for i in range(12):
        run(store, f"r{i:02d}", status="failed" if i == 3 else "done", at=f"2026-01-{i + 1:02d}T00:00:00Z",
            tokens_per_s=40.0 + i)
    run(store, "other", task="else", at="2026-02-01T00:00:00Z", tokens_per_s=1.0)
    run(store, "elsewhere", host="h2", at="2026-02-02T00:00:00Z", tokens_per_s=2.0)
    points = sm.series(store, "tokens_per_s", task="bench", host="h1")
    assert [p["run"] for p in points] == [f"r{i:02d}" for i in range(12)]
    assert points[3]["status"] == "failed" and points[0]["at"] == "2026-01-01T00:00:00Z" and points[0]["unit"] == "tok/s"
    assert [p["value"] for p in sm.series(store, "tokens_per_s", task="bench", host="h1", limit=3)] == [49.0, 50.0, 51.0]
    assert [p["run"] for p in sm.series(store, "tokens_per_s")][-2:] == ["other", "elsewhere"]
    assert [p["run"] for p in sm.series(store, "tokens_per_s", host="h2")] == ["elsewhere"]
    assert sm.series(store, "nothing") == []


def test_points_in_the_same_second_keep_the_order_they_were_added(store):
    for i in range(5):
        run(store, f"r{i}", at="2026-01-01T00:00:00Z", t=float(i))
    assert [p["value"] for p in sm.series(store, "t")] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_baseline_values_are_the_last_passing_runs_of_the_task_on_the_host(store):
    for i in range(14):
        run(store, f"r{i:02d}", status="failed" if i in (11, 12) else "done", at=f"2026-01-{i + 1:02d}T00:00:00Z",
            t=float(i))
    run(store, "other-task", task="else", at="2026-02-01T00:00:00Z", t=100.0)
    run(store, "other-host", host="h2", at="2026-02-01T00:00:00Z", t=200.0)
    sm.add(store, "r13", "bench", "h1", [Metric("t", 300.0, source=CLAIMED)], at="2026-01-14T00:00:00Z")
    run(store, "now", status="running", at="2026-03-01T00:00:00Z", t=0.5)
    assert sm.baseline_values(store, "bench", "h1", "t", window=5) == [7.0, 8.0, 9.0, 10.0, 13.0]
    assert sm.baseline_values(store, "bench", "h1", "t") == [float(i) for i in range(2, 11)] + [13.0]  # 10 by default
    assert sm.baseline_values(store, "bench", "h1", "t", window=3, before_run="r13") == [8.0, 9.0, 10.0]
    assert sm.baseline_values(store, "bench", "h2", "t") == [200.0]
    assert sm.baseline_values(store, "bench", "h1", "t", source=CLAIMED) == [300.0]


def test_baseline_values_on_a_store_without_a_host(store):
    run(store, "r1", host=None, t=1.0)
    assert sm.baseline_values(store, "bench", None, "t") == [1.0]


def test_names_lists_each_metric_with_its_points_and_last_time(store):
    run(store, "r1", at="2026-01-01T00:00:00Z", a=1.0, b=2.0)
    run(store, "r2", task="else", at="2026-01-02T00:00:00Z", a=3.0)
    assert sm.names(store) == [{"name": "a", "points": 2, "last": "2026-01-02T00:00:00Z"},
                               {"name": "b", "points": 1, "last": "2026-01-01T00:00:00Z"}]
    assert [n["name"] for n in sm.names(store, task="else")] == ["a"]


def test_the_functions_take_a_bare_connection_too(store, tmp_path):
    store.close()
    db = sqlite3.connect(tmp_path / "state" / "agentd.sqlite3", isolation_level=None)
    sm.add(db, "r1", "bench", "h1", [Metric("t", 4.0)])
    assert [p["value"] for p in sm.series(db, "t")] == [4.0] and sm.names(db)[0]["name"] == "t"
    db.close()
