"""`agentd report` on a store an older agentd made (its migrations only up to 001, 002 or 004): no
``no such table: approvals`` or ``no such column: host``.  Where the state dir can be written the store is
opened as other commands open it (migrated); where it can't, it is read through a copy migrated in memory,
the file left as it is."""

from __future__ import annotations

import json

import pytest

from agentd.cli import report
from agentd.config import config
from agentd.store import migrations
from agentd.store.store import Store
from conftest import run_cli


def old_store(path, upto: str, monkeypatch) -> None:
    names = [name for name, _ in migrations.MIGRATIONS]
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:names.index(upto) + 1])
        s = Store(path)
        s.db.execute("INSERT INTO runs (run_id, task_id, kind, title, status, started_at, cost_usd, input_tokens)"
                     " VALUES ('r1', 'bench', 'command', 'old run', 'done', strftime('%Y-%m-%dT%H:%M:%SZ'), 0.5, 10)")
        s.close()


def applied(path) -> set:
    s = Store.read_only(path)
    try:
        return {r[0] for r in s.db.execute("SELECT name FROM migrations")}
    finally:
        s.close()


@pytest.mark.parametrize("upto", ["001_core", "002_scope", "004_seen_seq"])
def test_an_old_store_in_a_writable_state_dir_is_migrated_and_reported(home, monkeypatch, upto):
    cfg = config.load()
    cfg.ensure_state_dir()
    old_store(cfg.store_path, upto, monkeypatch)
    r = run_cli("report", "--json", "--since", "2d")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    d = json.loads(r.stdout)
    assert d["totals"]["runs"] == 1 and d["last_runs"][0]["run"] == "r1" and d["attention"]["approvals"] == []
    assert {name for name, _ in migrations.MIGRATIONS} <= applied(cfg.store_path)


def test_an_old_store_that_cannot_be_written_is_read_through_a_migrated_copy(home, monkeypatch):
    cfg = config.load()
    cfg.ensure_state_dir()
    old_store(cfg.store_path, "002_scope", monkeypatch)
    before = cfg.store_path.read_bytes()
    monkeypatch.setattr(report, "migrated", lambda path: None)  # (as a read-only state dir answers)
    d = report.gather(cfg, 2 * 86400)
    assert d["totals"]["runs"] == 1 and d["attention"]["approvals"] == [] and d["metrics"] == []
    assert applied(cfg.store_path) == {"001_core", "002_scope"} and cfg.store_path.read_bytes() == before
