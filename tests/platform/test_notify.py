"""agentd.platform.notify: the notify command gets the summary on stdin and in $AGENTD_SUMMARY."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from agentd.config import config
from agentd.platform import logs, notify
from agentd.store.store import Store


def make_env(tmp_path: Path, **extra: str) -> dict:
    home = tmp_path / "home"
    env = {"HOME": str(home), "USER": "tester", "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_STATE_HOME": str(home / ".local" / "state"), "PATH": "/usr/bin:/bin", "AGENTD_HOST": "box"}
    env.update(extra)
    return env


@pytest.fixture
def captured_log(tmp_path):
    import structlog

    stream = io.StringIO()
    logs.setup(None, stream, log_file=tmp_path / "agentd.log", env={})
    yield stream
    structlog.reset_defaults()
    logs._log_file.close()
    logs._log_file = None


def recorder(tmp_path: Path) -> str:
    return (f"cat > {tmp_path}/stdin.txt; printf '%s' \"$AGENTD_SUMMARY\" > {tmp_path}/env.txt")


def test_notify_passes_the_line_on_stdin_and_in_the_environment(tmp_path):
    cfg = config.load(make_env(tmp_path, AGENTD_NOTIFY=recorder(tmp_path)))
    assert notify.notify(cfg, "task T1 failed\nin 3s") is True
    assert (tmp_path / "stdin.txt").read_text() == "task T1 failed in 3s\n"
    assert (tmp_path / "env.txt").read_text() == "task T1 failed in 3s"


def test_no_command_no_notification(tmp_path):
    cfg = config.load(make_env(tmp_path))
    assert notify.notify(cfg, "x") is False


def test_a_failing_command_is_logged_not_raised(tmp_path, captured_log):
    cfg = config.load(make_env(tmp_path, AGENTD_NOTIFY="echo nope >&2; exit 3"))
    assert notify.notify(cfg, "x") is False
    event = json.loads(captured_log.getvalue().splitlines()[-1])
    assert event["event"] == "notify command failed" and event["exit_code"] == 3 and event["output"] == "nope"


def test_a_hanging_command_is_killed_with_its_children(tmp_path, captured_log):
    pidfile = tmp_path / "child.pid"
    cfg = config.load(make_env(tmp_path, AGENTD_NOTIFY=f"sleep 60 & echo $! > {pidfile}; wait"))
    t = time.monotonic()
    assert notify.notify(cfg, "x", timeout=1) is False
    assert time.monotonic() - t < 40  # the command would run 60 s
    assert "notify command timed out" in captured_log.getvalue()
    pid = int(pidfile.read_text())
    for _ in range(50):
        try:  # gone, or a zombie waiting for a reaper
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                break
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the notify command's child survived")


def test_notify_from_unit_sends_the_last_run(tmp_path, capsys):
    cfg = config.load(make_env(tmp_path, AGENTD_NOTIFY=recorder(tmp_path), INVOCATION_ID="0123abcd"))  # under systemd
    store = Store(cfg.store_path)
    store.start_run(run_id="20260101-000000-aaaa", task_id="T1", kind="command", status="done",
                    started_at="2026-01-01T00:00:00Z", duration_s=5)
    store.start_run(run_id="20260102-000000-bbbb", task_id="T2", kind="agent", status="failed",
                    started_at="2026-01-02T00:00:00Z", duration_s=62, input_tokens=1000, output_tokens=234,
                    cost_usd=0.05, reason="tests still fail\nafter 3 attempts")
    store.close()
    assert notify.notify_from_unit(cfg, "agentd.service") == 0
    line = (tmp_path / "env.txt").read_text()
    assert line == ("agentd@box: agentd.service failed; last run 20260102-000000-bbbb (started 2026-01-02T00:00:00Z): "
                    "task T2 failed in 1m02s, 1,234 tokens, $0.0500 — tests still fail after 3 attempts")
    assert capsys.readouterr().out.strip() == line  # the journal gets it too


def test_notify_from_unit_without_runs_or_command(tmp_path, capsys):
    cfg = config.load(make_env(tmp_path, INVOCATION_ID="0123abcd"))  # under systemd
    assert notify.notify_from_unit(cfg, "agentd.service") == 0
    out = capsys.readouterr()
    assert out.out.strip() == "agentd@box: agentd.service failed before any run was recorded; see `agentd logs`"
    assert "no `notify` command" in out.err
    assert not cfg.store_path.exists()  # looking did not create a store


def test_notify_from_unit_returns_1_when_the_command_fails(tmp_path, captured_log):
    cfg = config.load(make_env(tmp_path, AGENTD_NOTIFY="exit 1"))
    assert notify.notify_from_unit(cfg, "agentd.service", out=lambda s: None) == 1


def test_cli_notify(tmp_path, cli):
    p = cli("notify", "--unit", "agentd.service", env={"AGENTD_NOTIFY": recorder(tmp_path), "INVOCATION_ID": "0123abcd"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == (tmp_path / "env.txt").read_text()
    assert "agentd.service failed before any run was recorded" in p.stdout
