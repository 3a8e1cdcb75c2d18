"""The subscription window, spent as a person would (issue 21, part 5): what the real claude and codex CLIs
report of their usage windows, kept after each run, and the next CLI agent task held back while a window is
past agentd's share (config ``window: {max_percent, reserve_percent}``) until it resets; ``status`` says so.

The shapes are the real programs' (tests/captures/*/window_80.*, `capture.py`); the end-to-end tests run
the real binaries against the loopback fake, which sends the headers a subscriber's API sends.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import real_cli as rc
from agentd.agent import backends, window
from agentd.runners import cli_windows
from agentd.store import windows as stored
from agentd.store.store import Store
from conftest import run_cli
from fake_llm import reply

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
CLAUDE_RESET = 1796628057  # the five-hour reset claude was sent (two hours after the capture)
CODEX_RESET = 1796628059  # codex's
RESET = 1900000000  # 2030-03-17T17:46:40Z
BEFORE = RESET - 3 * 3600  # "now" for the made-up readings: three hours before their reset

needs_claude = pytest.mark.skipif(bool(rc.missing("claude")), reason=rc.missing("claude") or "")
needs_codex = pytest.mark.skipif(bool(rc.missing("codex")), reason=rc.missing("codex") or "")


# -- what the CLIs print, read ------------------------------------------------------------------

def test_claude_stream_json_reports_each_window_on_a_subscription_login():
    out = (CAPTURES / "claude-2.1.332" / "window_80.stdout").read_text()
    got = cli_windows.claude(out, now=CLAUDE_RESET - 7200)
    assert [(r.window, r.used_percent, r.resets_at, r.minutes) for r in got] == [
        ("five_hour", 80.0, CLAUDE_RESET, 300), ("seven_day", 30.0, CLAUDE_RESET + 3 * 86400, 10080)]
    assert cli_windows.claude(out, now=CLAUDE_RESET - 9 * 86400) == []  # a reset too far ahead of "now"


def test_claude_with_only_the_binding_window_reports_that_one():
    out = (CAPTURES / "claude-2.1.332" / "window_80_far_reset.stdout").read_text()
    assert [(r.window, r.used_percent, r.resets_at) for r in cli_windows.claude(out, now=BEFORE)] == [
        ("five_hour", 80.0, RESET)]


def test_claude_with_an_api_key_reports_no_window():
    assert cli_windows.claude((CAPTURES / "claude-2.1.332" / "window_80_api_key.stdout").read_text(), now=BEFORE) == []


def test_codex_session_file_reports_its_primary_and_secondary_windows(tmp_path):
    sessions = tmp_path / "sessions" / "2026" / "12" / "07"
    sessions.mkdir(parents=True)
    (sessions / "rollout-x.jsonl").write_text((CAPTURES / "codex-0.171.0" / "window_80.session").read_text())
    got = cli_windows.codex(tmp_path, now=CODEX_RESET - 7200)
    assert [(r.window, r.used_percent, r.resets_at, r.minutes) for r in got] == [
        ("primary", 80.0, CODEX_RESET, 300), ("secondary", 30.0, CODEX_RESET + 3 * 86400, 10080)]
    assert window.Window(name="primary", used=80, resets_at=RESET, seen_at=0, minutes=300).label() == "primary (5h)"


@pytest.mark.parametrize("bad", [
    {"used_percent": 1e9, "window_minutes": 300, "resets_at": RESET},  # not a percentage
    {"used_percent": float("nan"), "window_minutes": 300, "resets_at": RESET},
    {"used_percent": 50, "window_minutes": 300, "resets_at": BEFORE + 30 * 86400},  # a reset too far ahead
    {"used_percent": "50", "window_minutes": 300, "resets_at": "soon"},
])
def test_a_forged_or_broken_window_figure_is_not_believed(tmp_path, bad):
    """The session file lies where the sandboxed CLI (and so its model) can write: each figure is bounded."""
    (tmp_path / "sessions").mkdir()
    line = {"type": "event_msg", "payload": {"type": "token_count", "rate_limits": {"primary": bad}}}
    (tmp_path / "sessions" / "rollout-x.jsonl").write_text(json.dumps(line) + "\n{not json\n")
    assert cli_windows.codex(tmp_path, now=BEFORE) == []
    forged = json.dumps({"type": "rate_limit_event", "rate_limit_info": {"unifiedWindows": {
        "five\x1b[2J": {"utilization": 0.5, "resetsAt": RESET}}}})
    assert cli_windows.claude(forged, now=BEFORE) == []


# -- the share, worked out from the readings kept -------------------------------------------------

def _cfg(tmp_path, provider="claude-cli", **window_cfg):
    from fake_llm import make_config

    return make_config(tmp_path, {"provider": provider, **({"window": window_cfg} if window_cfg else {})})


def _keep(store, provider, *used, reset=RESET, name="five_hour"):
    for i, u in enumerate(used):
        stored.add(store, provider, f"r{i}", [cli_windows.Reading(window=name, used_percent=u, resets_at=reset,
                                                                  minutes=300)], BEFORE - 100 + i)


def test_a_window_at_80_percent_with_max_percent_75_waits_until_its_reset(tmp_path):
    cfg = _cfg(tmp_path, max_percent=75, reserve_percent=10)
    store = Store(cfg.store_path)
    _keep(store, "claude-cli", 80)
    why = window.wait(cfg, store, "claude-cli", BEFORE)[1]
    assert "five_hour window 80% used, past the 75% agentd may use (window: max_percent 75, reserve_percent 10)" in why
    assert "until it resets at 2030-03-17T17:46:40Z" in why
    assert window.wait(cfg, store, "claude-cli", RESET + 1) is None  # reset since: the budgets apply
    d = window.describe(cfg, store, "claude-cli", RESET + 1)
    assert d["windows"] == [] and d["note"].startswith("no figure since its windows reset at 2030-03-17T17:46:40Z")


def test_what_one_run_takes_is_learned_and_a_run_that_would_pass_the_share_waits(tmp_path):
    cfg = _cfg(tmp_path)  # the defaults: max_percent 75, reserve_percent 10
    store = Store(cfg.store_path)
    _keep(store, "claude-cli", 52, 60, 68)  # two runs of 8 % each: 68 + 8 > 75
    assert "68% used and a run takes about 8% (median of 2)" in window.wait(cfg, store, "claude-cli", BEFORE)[1]
    other = Store(tmp_path / "other.sqlite3")
    _keep(other, "claude-cli", 68)  # the same use with no runs to learn from: it may start
    assert window.wait(cfg, other, "claude-cli", BEFORE) is None


def test_the_reserve_binds_when_it_leaves_less_than_max_percent(tmp_path):
    cfg = _cfg(tmp_path, max_percent=95, reserve_percent=30)
    store = Store(cfg.store_path)
    _keep(store, "codex-cli", 72, name="primary")
    assert window.share(cfg) == 70
    assert "primary (5h) window 72% used, past the 70% agentd may use" in window.wait(cfg, store, "codex-cli", BEFORE)[1]


def test_an_api_backend_has_no_window_and_a_cli_without_a_figure_says_the_budgets_apply(tmp_path):
    cfg = _cfg(tmp_path)
    store = Store(cfg.store_path)
    _keep(store, "anthropic", 99)  # (an API never reports one; even so it is not read)
    assert window.wait(cfg, store, "anthropic", BEFORE) is None and window.describe(cfg, store, "anthropic", 0) is None
    d = window.describe(cfg, store, "codex-cli", BEFORE)
    assert d["note"] == ("no figure yet: codex-cli reports its windows on a subscription login, after a run; "
                         "the budgets apply")


# -- end to end: the real CLIs, agentd's wake, queue and status ---------------------------------

WORKLOG = ("DIRECTIVE: look at the disk {id: d1}\nDIRECTIVE: look at the disk again {id: d2}\n"
           "- [ ] say hello {id: hello, run: 'echo hello', value: 1}\n")


def _claude_env(fake, tmp_path) -> dict:
    env = rc.claude_env(fake.url, tmp_path / "clihome", oauth=True)
    env.pop("HOME")  # the test's own HOME (agentd's config and state)
    return {**env, "AGENTD_PROVIDER": "claude-cli", "AGENTD_CALL_TIMEOUT": "60s"}


def _queue(env) -> dict:
    r = run_cli("queue", "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return {t["id"]: t for t in json.loads(r.stdout)["tasks"]}


@needs_claude
@pytest.mark.parametrize("share", ["max_percent: 75, reserve_percent: 10", "max_percent: 100, reserve_percent: 0"])
def test_a_claude_run_reporting_80_percent_defers_the_next_cli_task_until_the_reset_and_status_shows_it(
        worklog, fake, tmp_path, home, share):
    """With the share at 100 % (the protection off) the same report holds nothing back."""
    on = share.startswith("max_percent: 75")
    (home / ".config" / "agentd").mkdir(parents=True)
    (home / ".config" / "agentd" / "config.yaml").write_text(f"window: {{{share}}}\n")
    worklog.write_text(WORKLOG)
    reset = int(time.time()) + 3 * 3600
    fake.script(reply("The disk is fine.\nSTATUS: done", headers=rc.claude_window_headers(reset)))
    env = _claude_env(fake, tmp_path)
    r = run_cli("wake", "--now", "--task", "d1", env=env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "task=d1 status=done" in worklog.read_text() and len(fake.requests) == 1

    d2 = _queue(env)["d2"]
    from agentd.times import iso
    if on:
        assert d2["eligible"] is False
        assert ("claude-cli's subscription five_hour window 80% used, past the 75% agentd may use (window: "
                f"max_percent 75, reserve_percent 10); CLI agent tasks wait until it resets at {iso(reset)}") in d2["why"]
    else:
        assert d2["eligible"] is True
    st = run_cli("status", "--json", env=env)
    w = json.loads(st.stdout)["window"]
    assert w["windows"][0]["window"] == "five_hour" and w["windows"][0]["used_percent"] == 80
    assert w["waits_until"] == (iso(reset) if on else None)
    text = run_cli("status", env=env).stdout
    assert f"           five_hour: 80% used, resets {iso(reset)}" in text
    manifest = json.loads((Path(json.loads(run_cli("runs", "--json", env=env).stdout)[0]["run_dir"])
                           / "manifest.json").read_text())
    assert manifest["window"][0] == {"window": "five_hour", "used_percent": 80.0, "resets_at": reset, "minutes": 300}

    fake.script(reply("Looked again.\nSTATUS: done", headers=rc.claude_window_headers(reset, five_hour=0.85)))
    r = run_cli("wake", "--now", env=env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    ran = json.loads(run_cli("runs", "--json", env=env).stdout)[0]["task_id"]
    assert ran == ("hello" if on else "d2")  # the window held the CLI task back; the command ran instead


@needs_codex
def test_a_codex_run_reporting_80_percent_is_kept_and_holds_the_next_cli_task(fake, tmp_path):
    from agentd import runners
    from fake_llm import disk_task_job, make_config

    reset = int(time.time()) + 3 * 3600
    fake.script(reply("The workspace uses 4.0K.\nSTATUS: done", headers=rc.codex_window_headers(reset)))
    cfg = make_config(tmp_path, {"provider": "codex-cli", "call_timeout": "60s"},
                      rc.codex_env(fake.url, tmp_path / "clihome"))
    cfg.env["AGENTD_RUN_ID"] = "r1"
    job, store = disk_task_job(cfg, "r1", cfg.state_dir / "runs" / "r1", lambda s: None)
    out = runners.run(job)
    assert out.status == "done", out
    assert stored.history(store, "codex-cli")["primary"][-1][:2] == (80.0, reset)
    backend, why = backends.agents_wait(cfg, store, time.time())
    assert backend is None and "codex-cli's subscription primary (5h) window 80% used, past the 75%" in why


def test_a_store_from_before_the_windows_table_gets_it_and_one_read_only_reads_none(tmp_path, monkeypatch):
    from agentd.store import migrations

    path = tmp_path / "agentd.sqlite3"
    names = [name for name, _ in migrations.MIGRATIONS]
    with monkeypatch.context() as m:
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:names.index("010_windows")])
        old = Store(path)
        assert stored.history(old, "claude-cli") == {}  # no table: no readings, no error
        old.close()
    assert stored.history(Store.read_only(path), "claude-cli") == {}
    s = Store(path)  # migrated on opening
    _keep(s, "claude-cli", 80)
    assert stored.history(s, "claude-cli")["five_hour"][0][:2] == (80.0, RESET)


def test_a_rise_past_half_the_share_is_not_taken_for_what_a_run_takes(tmp_path):
    """The person's own use between two runs (or a forged figure) would otherwise hold every later window
    to one run: 0.5 % used, 'a run takes 58 %'."""
    cfg = _cfg(tmp_path, max_percent=50)
    store = Store(cfg.store_path)
    _keep(store, "claude-cli", 2, 60, reset=BEFORE - 60)  # a rise of 58 in a window since reset
    _keep(store, "claude-cli", 0.5)
    assert window.wait(cfg, store, "claude-cli", BEFORE) is None
    assert window.describe(cfg, store, "claude-cli", BEFORE)["windows"][0]["per_run_percent"] is None


def test_a_share_of_100_percent_holds_nothing_back(tmp_path):
    cfg = _cfg(tmp_path, max_percent=100, reserve_percent=0)
    store = Store(cfg.store_path)
    _keep(store, "claude-cli", 80, 95)
    assert window.wait(cfg, store, "claude-cli", BEFORE) is None


def test_would_pass_is_said_of_a_window_under_the_share(tmp_path):
    cfg = _cfg(tmp_path)
    store = Store(cfg.store_path)
    _keep(store, "claude-cli", 52, 60, 68)
    assert "68% used and a run takes about 8% (median of 2), would pass the 75%" in \
        window.wait(cfg, store, "claude-cli", BEFORE)[1]


def test_a_session_file_that_is_a_fifo_or_nested_too_deep_is_skipped(tmp_path):
    """The CLI's model can write its session dir: a FIFO would hang the wake, deep JSON would raise."""
    from agentd.runners.cli_output import codex_session_model

    sessions = tmp_path / "sessions"
    sessions.mkdir()
    os.mkfifo(sessions / "rollout-a.jsonl")
    deep = '{"payload": {"rate_limits": ' + "[" * 5000 + "]" * 5000 + ', "model": ' + "[" * 5000 + "]" * 5000 + "}}"
    (sessions / "rollout-b.jsonl").write_text(deep + '\n{"turn_context": 1, "rate_limits": 1}\n')
    assert cli_windows.codex(tmp_path, now=BEFORE) == []  # (returns: the FIFO is not opened for reading)
    assert codex_session_model(tmp_path) is None
    assert cli_windows.claude('{"type": "rate_limit_event", "x": ' + "[" * 5000 + "]" * 5000 + "}") == []


def test_an_empty_window_key_is_its_defaults(tmp_path, home, worklog):
    (home / ".config" / "agentd").mkdir(parents=True)
    (home / ".config" / "agentd" / "config.yaml").write_text("window:\n  # max_percent: 50\nbudget:\n")
    worklog.write_text("DIRECTIVE: look {id: d1}\n")
    r = run_cli("status", "--json", env={"AGENTD_PROVIDER": "codex-cli"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["window"]["share_percent"] == 75


def test_a_read_only_store_keeps_no_figure_and_says_nothing_wrong(tmp_path):
    path = tmp_path / "agentd.sqlite3"
    Store(path).close()
    ro = Store.read_only(path)
    stored.add(ro, "claude-cli", "r1", [cli_windows.Reading(window="five_hour", used_percent=1, resets_at=RESET)], 0)
    assert stored.history(ro, "claude-cli") == {}
