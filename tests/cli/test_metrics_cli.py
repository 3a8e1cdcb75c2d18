"""`agentd metrics`: the names a real store keeps, one metric's series as text, JSON and CSV (both read
back exactly), an unknown name, no store, and a store it may only read (never written, never migrated)."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from agentd.store import metrics as store_metrics
from agentd.store.store import Store
from conftest import can_mount, run_cli


def store_path(home: Path) -> Path:
    return home / ".local" / "state" / "agentd" / "agentd.sqlite3"


ODD = [0.1 + 0.2, 1e-300, -3.5, 123456789.123456789, 2.0 / 3.0]


def make_store(home: Path) -> Path:
    """A real store with two tasks' series, made the way a wake keeps them (store/metrics.add)."""
    path = store_path(home)
    s = Store(path)
    for i, v in enumerate(ODD):
        store_metrics.add(s, f"run-{i}", "bench, \"quoted\"", "gpu1", [("tflops", v, "TFLOP/s", "measured")],
                          at=f"2026-01-0{i + 1}T00:00:00Z")
    store_metrics.add(s, "run-x", "other", "gpu2", [("tflops", 7.0, "TFLOP/s", "measured"),
                                                    ("qc.yield", 0.75, "", "claimed")], at="2026-02-01T00:00:00Z")
    s.close()
    return path


def ok(*args) -> subprocess.CompletedProcess:
    r = run_cli("metrics", *args)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r


def test_with_no_name_it_lists_each_name_with_its_point_count_and_last_value(home):
    make_store(home)
    out = ok().stdout
    assert "qc.yield" in out and "tflops" in out
    line = next(x for x in out.splitlines() if x.startswith("tflops"))
    assert "6 points" in line and "last 7 TFLOP/s" in line, line
    names = json.loads(ok("--json").stdout)
    assert [(n["name"], n["points"], n["last_value"]) for n in names] == [("qc.yield", 1, 0.75), ("tflops", 6, 7.0)]
    assert [n["name"] for n in json.loads(ok("--json", "--task", "other").stdout)] == ["qc.yield", "tflops"]
    gpu1 = json.loads(ok("--json", "--host", "gpu1").stdout)
    assert [(n["name"], n["points"], n["last_value"]) for n in gpu1] == [("tflops", 5, ODD[-1])]
    assert len(json.loads(ok("--json", "--limit", "1").stdout)) == 1


def test_a_series_reads_back_exactly_from_json_and_from_csv_oldest_first(home):
    make_store(home)
    rows = json.loads(ok("tflops", "--json", "--task", 'bench, "quoted"').stdout)
    assert [r["value"] for r in rows] == ODD
    assert [r["run"] for r in rows] == [f"run-{i}" for i in range(5)]
    assert {(r["unit"], r["source"], r["task"], r["host"]) for r in rows} == {
        ("TFLOP/s", "measured", 'bench, "quoted"', "gpu1")}
    text = ok("tflops", "--csv").stdout
    back = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "name,value,unit,source,run,task,host,at,status"
    assert [float(r["value"]) for r in back] == ODD + [7.0]
    assert back[0]["task"] == 'bench, "quoted"' and back[-1]["task"] == "other"
    assert [r["value"] for r in json.loads(ok("tflops", "--json", "--limit", "2").stdout)] == [ODD[-1], 7.0]
    assert [r["value"] for r in json.loads(ok("tflops", "--json", "--host", "gpu2").stdout)] == [7.0]
    text = ok("tflops").stdout.splitlines()
    assert len(text) == 6 and "run run-0" in text[0] and "TFLOP/s" in text[0] and "on gpu1" in text[0]


def test_an_unknown_name_exits_1_with_a_did_you_mean(home):
    make_store(home)
    r = run_cli("metrics", "tflop")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "did you mean tflops?" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("metrics", "zzz_nothing_like", "--json")
    assert r.returncode == 1 and "no metric 'zzz_nothing_like'" in r.stderr and r.stdout == ""


def test_with_no_store_it_says_so_and_exits_0(home):
    assert "no metrics yet" in ok().stdout
    assert json.loads(ok("--json").stdout) == []
    assert json.loads(ok("tflops", "--json").stdout) == []
    assert ok("--csv").stdout == "name,points,last_value,unit,source,last_at\n"
    assert not store_path(home).exists()  # and it made none


def test_json_and_csv_together_is_a_usage_error(home):
    r = run_cli("metrics", "--json", "--csv")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def _drop_migration_009(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE metrics; DELETE FROM migrations WHERE name='009_metrics';")
    db.close()


def _has_009(path: Path) -> bool:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT 1 FROM migrations WHERE name='009_metrics'").fetchone() is not None
    finally:
        db.close()


def test_a_store_from_before_the_metrics_table_is_read_as_empty_and_never_migrated(home):
    path = make_store(home)
    _drop_migration_009(path)
    before = path.read_bytes()
    assert "no metrics yet" in ok().stdout
    assert json.loads(ok("tflops", "--json").stdout) == []
    assert path.read_bytes() == before and not _has_009(path)
    # the twin: `agentd runs` opens the store for writing, and so migrates it; the check above can fail
    assert run_cli("runs").returncode == 0
    assert _has_009(path)



def test_a_store_in_a_directory_it_cannot_write_is_read_and_nothing_is_written(home, tmp_path, monkeypatch):
    """As root (who ignores modes) the state dir is a tmpfs remounted read-only; otherwise 0555/0444."""
    state = tmp_path / "state"
    state.mkdir()
    mounted = can_mount()
    if mounted:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(state)], check=True)
    elif os.geteuid() == 0:
        pytest.skip("root that can't mount: modes don't stop root's writes")
    monkeypatch.setenv("AGENTD_STATE_DIR", str(state))
    try:
        path = state / "agentd.sqlite3"
        s = Store(path)
        store_metrics.add(s, "r1", "t", "h", [("tflops", 0.1 + 0.2, "TFLOP/s", "measured")])
        s.close()
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        else:
            path.chmod(0o444)
            state.chmod(0o555)
        listing, data = sorted(os.listdir(state)), path.read_bytes()
        assert [r["value"] for r in json.loads(ok("tflops", "--json").stdout)] == [0.1 + 0.2]
        assert "tflops" in ok().stdout
        assert sorted(os.listdir(state)) == listing and path.read_bytes() == data
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(state)])
        else:
            state.chmod(0o755)


def test_a_real_wake_of_a_command_printing_metric_lines_is_listed_and_read_back(home, worklog):
    worklog.write_text("- [ ] bench {id: bench, run: 'echo METRIC tflops=80.5 TFLOP/s; echo METRIC ttft_s=0.125'}\n",
                       encoding="utf-8")
    r = run_cli("wake", "--now")
    assert r.returncode == 0, r.stderr
    rows = json.loads(ok("tflops", "--json").stdout)
    assert [(p["value"], p["unit"], p["source"], p["task"]) for p in rows] == [(80.5, "TFLOP/s", "measured", "bench")]
    run = json.loads(run_cli("runs", "--json").stdout)[0]["run_id"]
    assert rows[0]["run"] == run and rows[0]["status"] == "done"
    names = {n["name"]: n for n in json.loads(ok("--json").stdout)}
    assert names["ttft_s"]["last_value"] == 0.125 and "run.duration_s" in names
