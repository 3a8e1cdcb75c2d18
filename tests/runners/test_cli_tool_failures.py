"""A CLI agent's run in which every tool call failed is not ``done`` (issue 18, part 2).

The CLIs run their own tool loop; agentd reads their tool calls from their output
(runners/cli_output.py): claude's ``stream-json`` ``tool_use`` / ``tool_result`` blocks (``is_error``),
codex's ``--json`` ``command_execution`` (and other tool) items with their ``status`` and ``exit_code``.
The captures are the real programs' (tests/captures/README.md); the stand-ins in tests/fakebin_agents
replay them through agentd's runner, in its sandbox.  The last tests run the older claude 2.1.197 itself
(not pinned: they skip, saying how to install it), whose Bash calls all failed with ``EROFS … mkdir
'~/.claude'`` on a fresh, read-only HOME.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

import real_cli as rc
from fake_llm import make_config, reply

HERE = Path(__file__).resolve().parents[1]
CAPTURES = HERE / "captures"
FAKEBIN = HERE / "fakebin_agents"
CLAUDE, OLD_CLAUDE, CODEX = (CAPTURES / "claude-2.1.332", CAPTURES / "claude-2.1.197", CAPTURES / "codex-0.171.0")
# a checkout under /tmp is hidden in the sandbox but for the PATH dirs: the captures ride on PATH too
FAKE_PATH = ":".join(map(str, [FAKEBIN, *sorted(CAPTURES.glob("*-*.*"))]))

OLD_CLAUDE_BIN = rc.old_claude_bin()  # read now: the tests' own environment drops AGENTD_* variables
needs_old_claude = pytest.mark.skipif(bool(rc.old_claude_missing()), reason=rc.old_claude_missing() or "")


def stdout(directory: Path, name: str) -> str:
    return (directory / f"{name}.stdout").read_text()


def replay(tmp_path, provider: str, capture: str, run_id: str = "r1"):
    """agentd's runner with the stand-in that replays ``capture`` (a name under the stand-in's own
    version dir, or ``../<cli>-<version>/<name>``)."""
    from agentd import runners
    from fake_llm import disk_task_job

    env = {"PATH": f"{FAKE_PATH}:{os.environ['PATH']}", "FAKE_AGENT_CAPTURE": capture, "TZ": "UTC",
           "ANTHROPIC_API_KEY": "sk-ant-api03-agent-test-key-000000000000"}
    cfg = make_config(tmp_path, {"provider": provider}, env)
    run_dir = cfg.state_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "manifest.json").write_text("{}")
    job, store = disk_task_job(cfg, run_id, run_dir, lambda line: None)
    return runners.run(job), store, run_dir


# -- the parsers over the real captures ----------------------------------------------------------

def test_claude_stream_json_names_every_tool_call_and_its_error():
    from agentd.runners.cli_output import parse_claude

    res = parse_claude(stdout(CLAUDE, "all_tools_failed"))
    assert res["tools"]["calls"] == 2 and res["tools"]["failed"] == 2
    assert res["tools"]["first_error"] == ("Bash `cat /nonexistent/report.txt`: Exit code 1 cat: "
                                           "/nonexistent/report.txt: No such file or directory")
    ok = parse_claude(stdout(CLAUDE, "stream_json_tool"))
    assert (ok["tools"]["calls"], ok["tools"]["failed"], ok["tools"]["first_error"]) == (1, 0, None)


def test_claude_json_output_has_no_tool_calls_so_agentd_asks_for_stream_json():
    from agentd.runners.cli_output import parse_claude

    # the same run in --output-format json: one result object, nothing about its tool calls
    res = parse_claude(stdout(CLAUDE, "all_tools_failed_json"))
    assert res["tools"]["calls"] == 0 and res["text"].endswith("STATUS: done") and res["turns"] == 3


def test_codex_json_names_every_command_and_its_exit_code():
    from agentd.runners.cli_output import parse_codex

    res = parse_codex(stdout(CODEX, "all_tools_failed"))
    assert res["tools"]["calls"] == 2 and res["tools"]["failed"] == 2
    assert res["tools"]["first_error"] == ("command `/bin/bash -lc 'cat /nonexistent/report.txt'`: exit 1: "
                                           "cat: /nonexistent/report.txt: No such file or directory")
    ok = parse_codex(stdout(CODEX, "tool"))
    assert (ok["tools"]["calls"], ok["tools"]["failed"]) == (1, 0)


def test_the_older_claudes_erofs_bash_calls_are_read_as_failed():
    from agentd.runners.cli_output import parse_claude

    res = parse_claude(stdout(OLD_CLAUDE, "ro_home_erofs"))
    assert (res["tools"]["calls"], res["tools"]["failed"]) == (2, 2)
    assert res["tools"]["first_error"] == "Bash `echo hello-from-tool`: EROFS: read-only file system, mkdir '$HOME/.claude'"
    ok = parse_claude(stdout(OLD_CLAUDE, "ro_home_config_dir_tool"))
    assert (ok["tools"]["calls"], ok["tools"]["failed"]) == (2, 0)


def test_a_tool_error_is_bounded_and_escaped():
    from agentd.runners.cli_output import parse_claude

    lines = [{"type": "assistant", "message": {"content": [
                 {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "x" * 500}}]}},
             {"type": "user", "message": {"content": [
                 {"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                  "content": [{"type": "text", "text": "\x1b[31mboom\x07 " + "y" * 2000}]}]}},
             {"type": "result", "subtype": "success", "is_error": False, "result": "ok\nSTATUS: done"}]
    res = parse_claude("\n".join(json.dumps(x) for x in lines))
    first = res["tools"]["first_error"]
    assert (res["tools"]["calls"], res["tools"]["failed"]) == (1, 1)
    assert len(first) <= 300 and "\x1b" not in first and "\x07" not in first and "boom" in first


# -- agentd's runner, replaying the captures through the stand-ins -------------------------------------

@pytest.mark.parametrize("provider,capture,first", [
    ("claude-cli", "all_tools_failed", "Bash `cat /nonexistent/report.txt`: Exit code 1 cat: /nonexistent/report.txt"),
    ("codex-cli", "all_tools_failed", "command `/bin/bash -lc 'cat /nonexistent/report.txt'`: exit 1: cat: "),
    ("claude-cli", "../claude-2.1.197/all_tools_failed", "Bash `cat /nonexistent/report.txt`: Exit code 1"),
    ("claude-cli", "../claude-2.1.197/ro_home_erofs",
     "Bash `echo hello-from-tool`: EROFS: read-only file system, mkdir '$HOME/.claude'"),
])
def test_a_cli_run_whose_every_tool_call_failed_ends_failed_not_done(tmp_path, provider, capture, first):
    out, store, run_dir = replay(tmp_path, provider, capture)
    assert out.status == "failed", (out.status, out.reason)
    assert out.reason.startswith(f"every tool call failed (2 of 2); the first: {first}"), out.reason
    assert out.summary == "Checked the workspace."  # the CLI's own summary is kept
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["tool_calls"] == {"calls": 2, "failed": 2}


@pytest.mark.parametrize("provider,capture,calls", [
    ("claude-cli", "stream_json_tool", 1), ("codex-cli", "tool", 1),
    ("claude-cli", "../claude-2.1.197/ro_home_config_dir_tool", 2),
    ("claude-cli", "done", 0),  # no tool call at all: done (flagged, as before)
])
def test_a_cli_run_with_a_tool_call_that_worked_stays_done(tmp_path, provider, capture, calls):
    out, _, run_dir = replay(tmp_path, provider, capture)
    assert out.status == "done", out.reason
    assert json.loads((run_dir / "manifest.json").read_text())["tool_calls"] == {"calls": calls, "failed": 0}


def test_agentd_asks_claude_for_stream_json_and_the_resumed_record_stays_failed(tmp_path):
    out, store, _ = replay(tmp_path, "claude-cli", "all_tools_failed")
    (x,) = store.exchanges("r1")
    argv = json.loads(x["request"])["argv"]
    assert argv[argv.index("--output-format") + 1] == "stream-json" and "--verbose" in argv
    assert json.loads(x["request"])["tool_calls"] == {"calls": 2, "failed": 2}
    # agentd died after the CLI ended, before the wake recorded it: the next wake takes the same outcome
    again, _, _ = replay(tmp_path, "claude-cli", "stream_json_tool")
    assert (again.status, again.reason) == (out.status, out.reason)


# -- the older claude itself (2.1.197), run by agentd as it runs claude ------------------------------------

def old_claude_run(tmp_path, fake, home: Path):
    import test_cli_contract as contract

    fake.script(reply(tools=[contract.bash("echo hello-from-tool > out.txt")]), reply(tools=[contract.bash("ls")]),
                reply("Checked the workspace.\nSTATUS: done"))
    env = rc.claude_env(fake.url, tmp_path / "clihome", bin_dir=OLD_CLAUDE_BIN, HOME=str(home))
    from agentd import runners
    from agentd.store.store import Store
    from agentd.tasks.task import Task

    cfg = make_config(tmp_path, {"provider": "claude-cli", "call_timeout": "60s"}, env)
    store = Store(cfg.store_path)
    store.start_run(run_id="r1", task_id="t1", kind="task", title="check the disk", status="running",
                    started_at="2025-01-01T00:00:00Z")
    task = Task(id="t1", title="check the disk", kind="task", priority="normal", status="open", attrs={}, line=3,
                source="worklog", text="- [ ] check the disk #t1")
    job = runners.Job(cfg, store, "r1", task, {"disk": "50% used"}, None, lambda line: None)
    results = lambda: [b for r in fake.requests for m in r["body"]["messages"] if isinstance(m["content"], list)  # noqa: E731
                       for b in m["content"] if b.get("type") == "tool_result"]
    return runners.run(job), results


@pytest.fixture
def ro_home():
    """A fresh, empty HOME outside the dirs the sandbox replaces (/tmp, /run): read-only inside it."""
    if not Path("/var/tmp").is_dir():
        pytest.skip("no /var/tmp for a HOME the sandbox shows read-only")
    d = Path(tempfile.mkdtemp(prefix="agentd-fresh-home-", dir="/var/tmp"))
    yield d
    import shutil

    shutil.rmtree(d, ignore_errors=True)


@needs_old_claude
def test_the_older_claudes_bash_calls_work_in_agentds_sandbox_with_its_per_run_login_dir(tmp_path, fake, ro_home):
    out, results = old_claude_run(tmp_path, fake, ro_home)
    assert out.status == "done", out.reason
    assert [r["is_error"] for r in results()][-2:] == [False, False]
    assert (tmp_path / "ws" / "t1" / "out.txt").read_text() == "hello-from-tool\n"
    assert not (ro_home / ".claude").exists()


@needs_old_claude
def test_without_the_per_run_login_dir_the_older_claudes_bash_calls_fail_with_erofs_and_the_run_is_failed(
        tmp_path, fake, ro_home, monkeypatch):
    from agentd.sandbox import clihome

    monkeypatch.setattr(clihome.RunHome, "config_env", lambda self: {})  # the protection off: no CLAUDE_CONFIG_DIR
    out, results = old_claude_run(tmp_path, fake, ro_home)
    assert all(r["is_error"] and "EROFS" in str(r["content"]) for r in results())
    assert out.status == "failed"
    assert out.reason.startswith("every tool call failed (2 of 2); the first: Bash `echo hello-from-tool > out.txt`: "
                                 f"EROFS: read-only file system, mkdir '{ro_home}/.claude'"), out.reason
