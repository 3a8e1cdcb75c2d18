"""Approvals through the worklog, end to end: real CLI wakes, the real SDK, a loopback model, real bwrap."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from agentd.worklog.parse import parse_bytes

from conftest import AGENTD, _bwrap_usable, run_cli
from fake_llm import approval_id, ask, env_for, finish, reply, tool_results


pytestmark = pytest.mark.skipif(_bwrap_usable() is not None,
                                reason=f"needs a usable bwrap (.ci/run installs it): {_bwrap_usable()}")


def rep_runs_id(run_cli, env) -> str:
    return next(x["run_id"] for x in json.loads(run_cli("runs", "--json", env=env).stdout) if x["task_id"] == "rep")


def test_an_approved_write_resumes_the_run_from_its_checkpoint_with_the_path_writable(worklog, fake, tmp_path):
    outside = tmp_path / "reports"
    outside.mkdir()
    worklog.write_text("DIRECTIVE: put the report in the reports dir {id: rep}\n"
                       "- [ ] other work {id: other, run: 'echo other-ran', value: 1}\n")
    fake.script(reply(tools=[("shell", {"command": f"echo early > {outside}/r.txt; echo exit=$?"})]),
                ask("write", str(outside)),
                reply(tools=[("shell", {"command": f"echo report > {outside}/r.txt && echo wrote"})]),
                finish("done", "Wrote the report to the reports dir after approval."))
    env = env_for(fake)
    r = run_cli("wake", "--now", "--task", "rep", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rep: waiting" in r.stdout
    assert not (outside / "r.txt").exists()  # the sandbox refused the write before approval
    assert "cannot create" in tool_results(fake.requests[1])[0]  # not in the sandbox's view, or read-only
    st = parse_bytes(worklog.read_bytes())
    assert st.latest["rep"]["status"] == "waiting"
    aid = approval_id(worklog)
    assert f"DENY: {aid} <reason>" in worklog.read_text()
    q = json.loads(run_cli("queue", "--json", env=env).stdout)
    rep = next(t for t in q["tasks"] if t["id"] == "rep")
    assert rep["status"] == "waiting" and f"APPROVE: {aid}" in rep["why"] and not rep["eligible"]
    assert f"waiting:   rep: waiting for a person: {aid}" in run_cli("status", env=env).stdout

    # while it waits: other tasks run, and the waiting run makes no model call
    calls = len(fake.requests)
    r = run_cli("wake", "--now", env=env)
    assert r.returncode == 0 and "other: done" in r.stdout, r.stdout + r.stderr
    r = run_cli("wake", "--now", env=env)
    assert "nothing to do" in r.stdout, r.stdout
    assert len(fake.requests) == calls == 2

    # a person approves by editing the worklog; the next wake resumes the same run
    with open(worklog, "a", encoding="utf-8") as f:
        f.write(f"APPROVE: {aid}\n")
    r = run_cli("wake", "--now", env=env)
    assert r.returncode == 0 and "rep: done" in r.stdout, r.stdout + r.stderr
    assert (outside / "r.txt").read_text() == "report\n"
    assert len(fake.requests) == 4  # no model call repeated
    results = tool_results(fake.requests[2])
    assert results[-1].startswith("approved by a person") and f"{outside} is writable now" in results[-1]
    manifest = json.loads((tmp_path / "home/.local/state/agentd/runs" / rep_runs_id(run_cli, env) /
                           "manifest.json").read_text())
    assert str(outside) in manifest["sandbox"]["writable"] and manifest["approvals"][0]["answer"] == "approve"
    runs = json.loads(run_cli("runs", "--json", env=env).stdout)
    rep_runs = [x for x in runs if x["task_id"] == "rep"]
    assert len(rep_runs) == 1 and rep_runs[0]["status"] == "done"  # one run, resumed, not a new one
    text = worklog.read_text()
    assert "**resumed**" in text and text.count("=== agentd entry") == 6  # started, waiting; other: 2; resumed, done


def test_a_denied_request_reaches_the_model_with_the_reason_and_grants_nothing(worklog, fake):
    worklog.write_text("DIRECTIVE: check the internet {id: net}\n")
    port = int(fake.url.rsplit(":", 1)[1].strip("/"))  # a server that listens on this host's loopback
    fake.script(ask("network", "", why="to fetch a page"),
                reply(tools=[("shell", {"command": "python3 -c \"import socket; socket.create_connection(("
                                                   f"'127.0.0.1', {port}), 1); print('connected')\" 2>&1 | tail -1"})]),
                finish("blocked", "Network was denied; a person must fetch the page."))
    env = env_for(fake)
    assert run_cli("wake", "--now", env=env).returncode == 0
    aid = approval_id(worklog)
    r = run_cli("deny", aid, "not", "today", env=env)
    assert r.returncode == 0 and f"denied {aid}: network access" in r.stdout, r.stdout + r.stderr
    assert worklog.read_text().endswith(f"DENY: {aid} not today\n")
    line = worklog.read_text().count("\n")  # the DENY line is the last one
    r = run_cli("deny", aid, "again", env=env)
    assert r.returncode == 2 and f"already answered: DENY on line {line} " in r.stderr, r.stderr
    assert f"answered DENY on line {line} of the worklog" in run_cli("status", env=env).stdout
    # until a wake takes it in, a later line for the same id counts
    with open(worklog, "a", encoding="utf-8") as f:
        f.write(f"DENY: {aid} not this week\n")
    r = run_cli("wake", "--now", env=env)
    assert "net: blocked" in r.stdout, r.stdout + r.stderr
    told = tool_results(fake.requests[1])[-1]
    assert told.startswith("denied by a person") and told.endswith(": not this week"), told
    assert "Connection refused" in tool_results(fake.requests[2])[-1]  # no network: not even this host's loopback
    r = run_cli("approve", aid, env=env)
    assert r.returncode == 2 and "already answered" in r.stderr


def test_an_unanswered_request_expires_and_blocks_its_run(worklog, fake):
    worklog.write_text("DIRECTIVE: needs a person {id: ask}\n")
    fake.script(ask("command", "systemctl restart foo", why="the service is stuck"))
    env = env_for(fake, AGENTD_APPROVAL_EXPIRY="0s")
    assert run_cli("wake", "--now", env=env).returncode == 0
    aid = approval_id(worklog)
    r = run_cli("wake", "--now", env=env)
    assert r.returncode == 0, r.stderr
    st = parse_bytes(worklog.read_bytes())
    assert st.latest["ask"]["status"] == "blocked"
    assert f"approval request {aid} expired unanswered" in worklog.read_text()
    assert len(fake.requests) == 1


def test_an_approved_command_runs_once_outside_the_sandbox(worklog, fake, tmp_path):
    marker = tmp_path / "outside-marker"
    worklog.write_text("DIRECTIVE: restart the thing {id: cmd}\n")
    fake.script(ask("command", f"echo ran >> {marker}; echo restarted"),
                finish("done", "The person approved it; the command ran and said restarted."))
    env = env_for(fake)
    assert run_cli("wake", "--now", env=env).returncode == 0
    assert not marker.exists()
    r = run_cli("approve", approval_id(worklog), env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("wake", "--now", env=env)
    assert "cmd: done" in r.stdout, r.stdout + r.stderr
    assert marker.read_text() == "ran\n"
    assert "restarted" in tool_results(fake.requests[1])[-1]


def test_a_wake_killed_while_a_run_waits_leaves_the_request_to_be_answered(worklog, fake, tmp_path):
    started = tmp_path / "started"
    worklog.write_text("DIRECTIVE: ask first {id: ask, value: 9}\n"
                       f"- [ ] slow {{id: slow, run: 'touch {started}; sleep 60', value: 1}}\n")
    fake.script(ask("network", "", why="to fetch"), finish("done", "Fetched it once approved, all good."))
    env = env_for(fake)
    assert run_cli("wake", "--now", env=env).returncode == 0
    aid = approval_id(worklog)
    p = subprocess.Popen([*AGENTD, "wake", "--now"], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    with open(worklog, "a", encoding="utf-8") as f:
        f.write(f"APPROVE: {aid}\n")
    # the next wake first runs the interrupted command again (it goes first), killed by a short limit
    r = run_cli("wake", "--now", env={**env, "AGENTD_COMMAND_TIMEOUT": "1s"})
    assert "slow: failed" in r.stdout, r.stdout + r.stderr
    r = run_cli("wake", "--now", env=env)
    assert "ask: done" in r.stdout, r.stdout + r.stderr
    assert len(fake.requests) == 2


def test_a_task_a_person_closed_while_its_request_waited_stays_closed_when_the_request_expires(worklog, fake):
    worklog.write_text("DIRECTIVE: needs a person {id: ask}\n")
    fake.script(ask("network", "", why="to fetch"))
    env = env_for(fake, AGENTD_APPROVAL_EXPIRY="0s")
    assert run_cli("wake", "--now", env=env).returncode == 0
    with open(worklog, "a", encoding="utf-8") as f:
        f.write("CANCEL: ask\n")
    assert run_cli("wake", "--now", env=env).returncode == 0
    assert parse_bytes(worklog.read_bytes()).latest["ask"]["status"] == "waiting"  # no "blocked" entry after it
    q = {t["id"]: t for t in json.loads(run_cli("queue", "--json", env=env).stdout)["tasks"]}
    assert q["ask"]["status"] == "cancelled"
    run = json.loads(run_cli("runs", "--json", env=env).stdout)[0]
    assert run["status"] == "cancelled" and "cancelled while the run waited" in run["reason"]


def test_a_write_no_sandbox_could_allow_is_refused_at_once_and_nobody_is_asked(worklog, fake, home):
    worklog.write_text("DIRECTIVE: write everywhere {id: all}\n")
    fake.script(ask("write", "/"), ask("write", str(home / ".local/state/agentd")),
                finish("failed", "Could not get write access to what it wanted."))
    r = run_cli("wake", "--now", env=env_for(fake))
    assert "all: failed" in r.stdout, r.stdout + r.stderr
    assert "APPROVE:" not in worklog.read_text()
    told = [tool_results(fake.requests[i])[-1] for i in (1, 2)]
    assert "the writable path / is the root file system" in told[0]
    assert told[1].startswith("request_approval: refused, not asked:") and "holds" in told[1]


def test_a_deny_reason_longer_than_the_agent_reads_is_refused_before_anything_is_written(worklog):
    worklog.write_text("- [ ] t {id: t}\n")
    before = worklog.read_bytes()
    r = run_cli("deny", "ap-123456", "x" * 501)
    assert r.returncode == 2 and "501 characters" in r.stderr and "at most 500" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and worklog.read_bytes() == before


def test_an_answer_to_no_request_is_reported_by_line_and_ids_are_read_in_any_case(worklog):
    worklog.write_text("- [ ] t {id: t}\nAPPROVE: ap-000000\nDENY: AP-ABCDEF not this\n")
    q = json.loads(run_cli("queue", "--json").stdout)
    assert q["unknown_answers"] == [{"line": 2, "id": "ap-000000"}, {"line": 3, "id": "ap-abcdef"}]
    out = run_cli("queue").stdout
    assert "line 2: ap-000000 answers no approval request agentd has" in out, out
    assert parse_bytes(worklog.read_bytes()).answers["ap-abcdef"][0] == "deny"
