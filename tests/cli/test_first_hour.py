"""A newcomer's first hour (issue 19): what `status`, `queue`, `wake`, `doctor`, `notify` and `uninstall`
show a person, driven through the real CLI in subprocesses over real files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import AGENTD, run_cli


def started_whys(worklog) -> list[str]:
    """The `why this one:` line of each started entry in the worklog, in order."""
    return re.findall(r"^> why this one: (.*)$", worklog.read_text(), re.M)


# -- logs go to stderr, results to stdout -------------------------------------------------------
def test_a_wake_writes_its_result_to_stdout_and_its_log_lines_to_stderr(worklog):
    worklog.write_text('- [ ] say hi {id: hi, run: "echo hi"}\n')
    p = run_cli("wake", "--now")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "hi: done — `echo hi` exited 0 in " + p.stdout.split(" in ", 1)[1].split("\n")[0]
    assert not any(line.lstrip().startswith("{") for line in p.stdout.splitlines()), p.stdout
    events = [json.loads(line)["event"] for line in p.stderr.splitlines() if line.startswith("{")]
    assert events == ["run started", "wake summary"], p.stderr


# -- wake --task says it was run by hand -------------------------------------------------------------
def test_a_task_forced_with_task_says_it_was_run_by_hand_and_what_it_would_otherwise_wait_for(worklog):
    worklog.write_text('- [ ] mb {id: mb, run: "exit 1", value: 3}\n')
    assert run_cli("wake", "--now").returncode == 1
    held = json.loads(run_cli("queue", "--json").stdout)["tasks"][0]["why"]
    assert held.startswith("retry 2 waits until ") and held.endswith("(backoff)"), held
    p = run_cli("wake", "--now", "--task", "mb")
    assert p.returncode == 1, p.stderr
    why = started_whys(worklog)[-1]
    assert why == f"run by hand: agentd wake --task mb; it would otherwise wait: {held}"
    logged = next(json.loads(x) for x in p.stderr.splitlines() if '"run started"' in x)
    assert logged["why"] == why


def test_a_task_named_with_task_that_could_run_anyway_says_so(worklog):
    worklog.write_text('- [ ] first {id: first, run: "true", value: 9}\n- [ ] low {id: low, run: "true", value: 1}\n')
    assert run_cli("wake", "--now", "--task", "low").returncode == 0
    why = started_whys(worklog)[-1]
    assert why.startswith("run by hand: agentd wake --task low; its score: 1 value"), why


# -- after a kill, the resumed run's entry says the score the queue showed ---------------------------
def test_after_a_kill_the_rerun_entry_states_the_score_the_queue_showed(worklog, tmp_path):
    mark = tmp_path / "ran-once"
    worklog.write_text(f'- [ ] slow one {{id: slow, run: "test -f {mark} || {{ touch {mark}; sleep 60; }}", value: 9}}\n')
    wake = subprocess.Popen([*AGENTD, "wake", "--now"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while not mark.exists():  # the command runs: the started entry is in the worklog
            assert wake.poll() is None, "the wake ended before its command ran"
            time.sleep(0.05)
    finally:
        os.killpg(wake.pid, signal.SIGKILL)  # the wake and its command, as a power cut would
        wake.wait()
    shown = next(t for t in json.loads(run_cli("queue", "--json").stdout)["tasks"] if t["id"] == "slow")
    assert shown["status"] == "interrupted"
    p = run_cli("wake", "--now")
    assert p.returncode == 0, p.stdout + p.stderr
    why = started_whys(worklog)[-1]
    assert why.endswith(f"= {shown['score']:.2f}"), (why, shown)
    assert why == shown["why"]


# -- the queue never cuts an id, nor a reason mid-sentence -----------------------------------------
LONG = "nightly-inference-sweep-for-the-big-model"


def test_the_queue_shows_long_ids_whole(worklog):
    lines = [f'- [ ] run the nightly inference {{id: {LONG}, run: "true", value: 5}}',
             f'- [ ] waits {{id: {LONG}-after, run: "true", after: {LONG}}}']
    lines += [f'- [ ] filler {n} {{id: {LONG}-{n:03d}, run: "true"}}' for n in range(40)]  # the table's fast path
    worklog.write_text("\n".join(lines) + "\n")
    out = run_cli("queue").stdout
    for tid in [LONG, f"{LONG}-after", *(f"{LONG}-{n:03d}" for n in range(40))]:
        assert re.search(rf"^[▶·✗] {re.escape(tid)}$", out, re.M), (tid, out)
    assert "…" not in out
    # each task still reads: its id, then its kind, status, score and title, then why
    row = out.splitlines()[out.splitlines().index(f"▶ {LONG}") + 1]
    assert row.split() == ["command", "open", "4.50", "run", "the", "nightly", "inference"], row


def test_the_runs_list_shows_long_task_ids_whole(worklog):
    worklog.write_text(f'- [ ] a {{id: {LONG}, run: "true"}}\n')
    assert run_cli("wake", "--now").returncode == 0
    out = run_cli("runs").stdout
    assert LONG in out and "…" not in out, out


def test_a_long_reason_in_the_queue_is_wrapped_at_its_clauses_never_cut(worklog):
    keys = ["colour", "flavour", "wobble", "frobnicate", "zazzle", "xyzzy", "plugh", "quux", "garply", "waldo"]
    worklog.write_text("- [ ] b {id: bbb, " + ", ".join(f"{k}: 1" for k in keys) + "}\n")
    out = run_cli("queue").stdout
    assert "…" not in out, out
    text = out[out.index("  line 1: "):]
    for k in keys:
        assert f"'{k}': unknown key" in text, text
    for line in text.splitlines()[:3]:
        assert len(line) <= 110, line
        assert line.rstrip().endswith(";") or line.rstrip().endswith("key"), line  # a clause ends each line


# -- status ----------------------------------------------------------------------------------------
def test_status_names_the_environment_variable_that_turned_the_sandbox_off(worklog, tmp_path):
    worklog.write_text("- [ ] a {id: a, run: 'true'}\n")
    out = run_cli("status", env={"AGENTD_SANDBOX": "off"}).stdout
    line = next(x for x in out.splitlines() if x.startswith("sandbox:"))
    assert "AGENTD_SANDBOX=off in the environment" in line and "config" not in line, line
    cfg = tmp_path / "home" / ".config" / "agentd"
    cfg.mkdir(parents=True)
    (cfg / "config.yaml").write_text("sandbox: off\n")
    out = run_cli("status").stdout
    line = next(x for x in out.splitlines() if x.startswith("sandbox:"))
    assert f"`sandbox: off` in {cfg / 'config.yaml'}" in line, line


def test_an_agent_run_entry_names_where_sandbox_off_came_from(tmp_path):
    from agentd.config import config
    from agentd.wake.recording import sandbox_off_note

    env = {**os.environ, "AGENTD_SANDBOX": "off"}
    assert "AGENTD_SANDBOX=off in the environment" in sandbox_off_note(config.load(env))
    cfg_dir = tmp_path / "home" / ".config" / "agentd"
    cfg_dir.mkdir(parents=True)
    (cfg_dir / "env").write_text("AGENTD_SANDBOX=off\n")
    assert f"AGENTD_SANDBOX=off in {cfg_dir / 'env'}" in sandbox_off_note(config.load(dict(os.environ)))
    (cfg_dir / "env").unlink()
    (cfg_dir / "config.yaml").write_text("sandbox: off\n")
    assert f"`sandbox: off` in {cfg_dir / 'config.yaml'}" in sandbox_off_note(config.load(dict(os.environ)))
    assert sandbox_off_note(config.load({**os.environ, "AGENTD_SANDBOX": "bwrap"})) == ""


def _bwrap_problem() -> str | None:
    from agentd.sandbox import bwrap

    st = bwrap.status(dict(os.environ))
    return None if st.ok else st.message()


@pytest.mark.skipif(_bwrap_problem() is not None, reason=f"needs a usable bwrap: {_bwrap_problem()}")
def test_status_says_a_waiting_run_waits_and_for_what(worklog, fake):
    from fake_llm import reply

    worklog.write_text("DIRECTIVE: put the report in /srv/reports {id: rep}\n")
    fake.script(reply(tools=[("request_approval", {"kind": "write", "what": "/srv/reports", "why": "it goes there"})]))
    env = {"ANTHROPIC_API_KEY": "sk-ant-test-" + "k" * 24, "ANTHROPIC_BASE_URL": fake.url,
           "AGENTD_CALL_TIMEOUT": "20s"}
    r = run_cli("wake", "--now", "--task", "rep", env=env)
    assert "rep: waiting" in r.stdout, r.stdout + r.stderr
    out = run_cli("status", env=env).stdout
    line = next(x for x in out.splitlines() if x.startswith("progress:"))
    assert "blocked" not in line, line
    assert re.match(r"progress:  waiting for approval ap-[0-9a-f]{16}: write access to `/srv/reports` · since ",
                    line), line


# -- doctor's exit status survives a closed stdout ----------------------------------------------------
def test_doctor_exits_1_on_a_fail_even_when_its_reader_has_gone(tmp_path):
    cfg = tmp_path / "home" / ".config" / "agentd"
    cfg.mkdir(parents=True)
    (cfg / "config.yaml").write_text("max_load: lots\n")
    r, w = os.pipe()
    os.close(r)  # `agentd doctor | head -1`, with head long gone
    try:
        p = subprocess.run([*AGENTD, "doctor"], stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    p = run_cli("doctor")  # (the same checks, read whole)
    assert p.returncode == 1 and "FAIL config" in p.stdout


# -- notify by hand --------------------------------------------------------------------------------
def test_notify_by_hand_without_a_command_says_so_on_stderr_with_how_to_set_one():
    p = run_cli("notify")
    assert p.returncode == 0 and p.stdout == "", p.stdout
    assert "journal" not in p.stderr, p.stderr
    assert "agentd@testhost before any run was recorded" in p.stderr
    assert "no `notify` command is configured" in p.stderr and "notify:" in p.stderr, p.stderr


def test_notify_by_hand_says_where_the_message_went(tmp_path):
    p = run_cli("notify", env={"AGENTD_NOTIFY": f"cat > {tmp_path}/got.txt"})
    assert p.returncode == 0 and p.stdout == "", p.stdout + p.stderr
    assert (tmp_path / "got.txt").read_text().startswith("agentd@testhost")
    assert f"sent to the notify command (cat > {tmp_path}/got.txt)" in p.stderr, p.stderr
    p = run_cli("notify", env={"AGENTD_NOTIFY": "echo nope; exit 3"})
    assert p.returncode == 1 and p.stdout == "", p.stdout
    assert "the notify command failed" in p.stderr and "exit_code" in p.stderr, p.stderr


def test_notify_under_systemd_still_writes_to_the_journal(tmp_path):
    p = run_cli("notify", "--unit", "agentd.service", env={"INVOCATION_ID": "0123abcd"})
    assert p.returncode == 0
    assert p.stdout.strip() == "agentd@testhost: agentd.service failed before any run was recorded; see `agentd logs`"
    assert "the journal" in p.stderr
