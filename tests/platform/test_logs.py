"""agentd.platform.logs: JSON lines, journald priority prefixes, the log file, `agentd logs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agentd.config import config
from agentd.platform import logs

FAKEBIN = Path(__file__).resolve().parents[1] / "fakebin"


def make_env(tmp_path: Path, **extra: str) -> dict:
    home = tmp_path / "home"
    env = {"HOME": str(home), "USER": "tester", "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_STATE_HOME": str(home / ".local" / "state"), "XDG_RUNTIME_DIR": str(tmp_path / "run"),
           "PATH": f"{FAKEBIN}:/usr/bin:/bin", "FAKE_JOURNALCTL_LOG": str(tmp_path / "journalctl.log")}
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def _reset_structlog():
    yield
    import structlog

    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    if logs._log_file is not None:
        logs._log_file.close()
        logs._log_file = None


def test_json_lines_to_a_pipe_and_the_log_file(tmp_path):
    cfg = config.load(make_env(tmp_path))
    out = tmp_path / "stdout"
    with open(out, "w") as stream:
        log = logs.setup("r-123", stream, cfg=cfg, env={})
        log.info("picked task", task="T7")
        log.debug("not shown at info")
        log.warning("slow", seconds=3)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["picked task", "slow"]
    assert lines[0]["run_id"] == "r-123" and lines[0]["task"] == "T7" and lines[0]["level"] == "info"
    assert lines[1]["level"] == "warning" and "timestamp" in lines[1]
    log_file = cfg.state_dir / "agentd.log"
    assert [json.loads(x) for x in log_file.read_text().splitlines()] == lines
    assert oct(log_file.stat().st_mode & 0o777) == "0o600"


def test_priority_prefix_when_stdout_is_the_journal(tmp_path):
    out = tmp_path / "stdout"
    with open(out, "w") as stream:
        st = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", "AGENTD_DEBUG": "1"}
        log = logs.setup(None, stream, log_file=tmp_path / "agentd.log", env=env)
        log.error("boom")
        log.warning("hmm")
        log.info("fine")
        log.debug("detail")
    lines = out.read_text().splitlines()
    assert [x[:3] for x in lines] == ["<3>", "<4>", "<6>", "<7>"]
    assert json.loads(lines[0][3:])["event"] == "boom"
    # the file has plain JSON, no prefixes
    assert all(x.startswith("{") for x in (tmp_path / "agentd.log").read_text().splitlines())


def test_no_prefix_when_journal_stream_names_another_file(tmp_path):
    out = tmp_path / "stdout"
    with open(out, "w") as stream:
        log = logs.setup(None, stream, log_file=tmp_path / "agentd.log", env={"JOURNAL_STREAM": "1:2"})
        log.info("fine")
    assert out.read_text().startswith("{")


def test_console_lines_on_a_terminal(tmp_path):
    master, slave = os.openpty()
    try:
        with open(slave, "w", closefd=True) as stream:
            log = logs.setup("r-9", stream, log_file=tmp_path / "agentd.log", env={"NO_COLOR": "1"})
            log.info("hello there", task="T1")
        text = os.read(master, 65536).decode()
    finally:
        os.close(master)
    assert "hello there" in text and "task=T1" in text and "run_id=r-9" in text
    assert not text.lstrip().startswith("{")
    assert json.loads((tmp_path / "agentd.log").read_text())["event"] == "hello there"


def test_setup_in_a_subprocess_writes_json_to_stderr_a_pipe(tmp_path):
    env = make_env(tmp_path)
    code = ("from agentd.platform import logs\n"
            "log = logs.setup('r-sub')\n"
            "logs.summary(log, task='T3', status='done', duration_s=125.4, tokens=12345, cost_usd=0.04)\n")
    p = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""  # stdout carries results only
    line = json.loads(p.stderr)
    assert line["event"] == "wake summary" and line["run_id"] == "r-sub"
    assert (line["task"], line["status"], line["tokens"], line["cost_usd"]) == ("T3", "done", 12345, 0.04)
    assert line["line"] == "task T3 done in 2m05s, 12,345 tokens, $0.0400"
    state = Path(env["XDG_STATE_HOME"]) / "agentd" / "agentd.log"
    assert json.loads(state.read_text()) == line


def test_format_summary():
    assert logs.format_summary(task="T1", status="failed", duration_s=4000) == "task T1 failed in 1h06m"
    assert logs.format_summary(status="idle") == "no task ran (idle)"


def test_log_file_rotates_past_the_limit(tmp_path, monkeypatch):
    path = tmp_path / "agentd.log"
    path.write_text("x" * 100)
    monkeypatch.setattr(logs, "MAX_LOG_BYTES", 50)
    logs.setup(None, open(os.devnull, "w"), log_file=path, env={}).info("new")
    assert (tmp_path / "agentd.log.1").read_text() == "x" * 100
    assert json.loads(path.read_text())["event"] == "new"


# -- agentd logs ----------------------------------------------------------------------------
def test_logs_uses_the_journal_when_it_has_entries(tmp_path, capfd):
    env = make_env(tmp_path, FAKE_JOURNAL='{"event": "from the journal"}')
    cfg = config.load(env)
    assert logs.follow_logs(cfg, follow=True) == 0
    assert "from the journal" in capfd.readouterr().out
    recorded = (tmp_path / "journalctl.log").read_text().splitlines()
    assert recorded[-1] == "--user -o cat -u agentd.service -u agentd-notify@* -f"


def test_logs_falls_back_to_the_file(tmp_path):
    env = make_env(tmp_path)  # the stand-in journal is empty
    cfg = config.load(env)
    out: list[str] = []
    assert logs.follow_logs(cfg, follow=False, out=out.append) == 1  # no file yet either
    logs.setup("r-1", open(os.devnull, "w"), cfg=cfg, env={}).info("in the file")
    assert logs.follow_logs(cfg, follow=False, out=out.append) == 0
    assert json.loads("".join(out))["event"] == "in the file"
    (tmp_path / "e").mkdir()  # no journalctl at all
    cfg = config.load({**env, "PATH": str(tmp_path / "e")})
    out.clear()
    assert logs.follow_logs(cfg, follow=False, out=out.append) == 0 and "in the file" in "".join(out)


def test_logs_follow_the_file(tmp_path):
    (tmp_path / "e").mkdir()
    cfg = config.load(make_env(tmp_path, PATH=str(tmp_path / "e")))
    path = cfg.state_dir / "agentd.log"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"old {i}\n" for i in range(30)))
    out: list[str] = []
    done = threading.Event()

    def writer():
        time.sleep(0.2)
        with open(path, "a") as f:
            f.write("new line\n")
        time.sleep(0.3)
        done.set()

    threading.Thread(target=writer).start()
    assert logs.follow_logs(cfg, follow=True, out=out.append, stop=done.is_set, poll=0.05) == 0
    text = "".join(out)
    assert "old 9\n" not in text and "old 10\n" in text and "old 29\n" in text  # the last 20 lines
    assert text.endswith("new line\n")


def test_cli_logs_reads_the_file(tmp_path, cli):
    (tmp_path / "e").mkdir()
    env = {"PATH": str(tmp_path / "e")}
    p = cli("logs", env=env)
    assert p.returncode == 1 and "no logs yet" in p.stderr
    state = Path(os.environ["XDG_STATE_HOME"]) / "agentd"
    state.mkdir(parents=True)
    (state / "agentd.log").write_text('{"event": "hello"}\n')
    p = cli("logs", env=env)
    assert p.returncode == 0 and p.stdout == '{"event": "hello"}\n'


def test_cli_logs_on_a_terminal_prints_readable_lines(tmp_path):
    state = tmp_path / "state"
    (state / "agentd").mkdir(parents=True)
    (state / "agentd" / "agentd.log").write_text(
        '{"task": "ok", "event": "run started", "run_id": "r1", "level": "info",'
        ' "timestamp": "2026-11-22T15:32:09.691812Z"}\n{"event": "odd \\u001b[2J", "level": "warning"}\nnot json\n')
    env = {**os.environ, "XDG_STATE_HOME": str(state), "PATH": str(tmp_path)}  # no journalctl
    master, slave = os.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "agentd", "logs"], stdout=slave, stderr=subprocess.PIPE,
                           env=env, timeout=60)
        os.close(slave)
        text = os.read(master, 65536).decode()
    finally:
        os.close(master)
    assert p.returncode == 0, p.stderr
    lines = text.replace("\r\n", "\n").splitlines()
    assert lines[0] == "2026-11-22T15:32:09Z info    run started  task=ok run_id=r1"
    assert lines[1] == "- warning odd \\x1b[2J" and lines[2] == "not json"
