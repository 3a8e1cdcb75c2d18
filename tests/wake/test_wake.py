"""The wake cycle, driven through the real CLI against real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agentd.config import config
from agentd.worklog.parse import parse_bytes

from conftest import AGENTD, run_cli, still


def write(worklog: Path, text: str) -> None:
    worklog.write_text(text, encoding="utf-8")


def latest_status(worklog: Path, task: str) -> str | None:
    st = parse_bytes(worklog.read_bytes())
    return (st.latest.get(task) or {}).get("status")


def test_a_wake_runs_the_top_command_task_and_appends_started_and_finding_entries(worklog):
    write(worklog, "- [ ] say hi {id: hi, run: echo hello-from-task}\n- [ ] low {id: low, run: 'true', value: 1}\n")
    before = worklog.read_bytes()
    r = run_cli("wake", "--now")
    assert r.returncode == 0, r.stderr
    after = worklog.read_bytes()
    assert after.startswith(before)  # nothing a human wrote changed
    st = parse_bytes(after)
    assert st.latest["hi"]["status"] == "done"
    assert "low" not in st.latest
    text = after.decode()
    assert "> hello-from-task" in text
    assert text.count("=== agentd entry ") == 2  # started + finding
    runs = json.loads(run_cli("runs", "--json").stdout)
    assert runs[0]["task_id"] == "hi" and runs[0]["status"] == "done" and runs[0]["exit_code"] == 0
    for key in ("run_id", "task_id", "kind", "status", "started_at", "duration_s", "exit_code",
                "input_tokens", "output_tokens", "cost_usd", "provider"):
        assert key in runs[0]
    run_dir = Path(runs[0]["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["task"]["id"] == "hi" and manifest["host"] == "testhost" and manifest["config_sha256"]
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["status"] == "done" and "finished" in progress["phases_completed"]
    assert (run_dir / "stdout.txt").read_text() == "hello-from-task\n"


def test_a_failing_command_exits_1_and_is_retried_with_backoff(worklog):
    write(worklog, "- [ ] broken {id: broken, run: 'echo oops >&2; exit 3'}\n")
    r = run_cli("wake", "--now")
    assert r.returncode == 1
    assert latest_status(worklog, "broken") == "failed"
    assert "> oops" in worklog.read_text()
    q = json.loads(run_cli("queue", "--json").stdout)
    t = next(t for t in q["tasks"] if t["id"] == "broken")
    assert t["status"] == "failed" and t["attempts"] == 1 and not t["eligible"] and "backoff" in t["why"]
    r = run_cli("wake", "--now")
    assert r.returncode == 0 and "nothing to do" in r.stdout


def test_nothing_actionable_exits_0_with_one_line_and_writes_nothing(worklog):
    write(worklog, "DIRECTIVE: think about it\n")
    before = worklog.read_bytes()
    r = run_cli("wake", "--now", env={"AGENTD_PROVIDER": "none"})
    assert r.returncode == 0
    assert [line for line in r.stdout.splitlines() if line.startswith("nothing to do")]
    assert worklog.read_bytes() == before


def test_a_second_wake_while_one_holds_the_lock_exits_75(worklog):
    write(worklog, "- [ ] slow {id: slow, run: 'sleep 30'}\n")
    env = dict(os.environ)
    first = subprocess.Popen([*AGENTD, "wake", "--now"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while latest_status(worklog, "slow") != "running" and time.time() < deadline:
            time.sleep(0.1)
        r = run_cli("wake", "--now")
        assert r.returncode == 75
        assert len(r.stderr.strip().splitlines()) == 1 and "another wake is running" in r.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    assert latest_status(worklog, "slow") == "interrupted"


def test_a_command_past_its_timeout_has_its_whole_process_group_killed(worklog, tmp_path):
    marker = tmp_path / "child-alive"
    cmd = f"(sleep 5; touch {marker}) & sleep 60"
    write(worklog, f"- [ ] hang {{id: hang, run: \"{cmd}\"}}\n")
    r = run_cli("wake", "--now", env={"AGENTD_COMMAND_TIMEOUT": "1s"})
    assert r.returncode == 1
    assert "timed out" in worklog.read_text()
    time.sleep(5.5)
    assert not marker.exists()  # the background child died with the group


def test_the_idle_output_watchdog_kills_a_silent_command(worklog):
    write(worklog, "- [ ] quiet {id: quiet, run: 'echo start; sleep 60'}\n")
    r = run_cli("wake", "--now", env={"AGENTD_IDLE_OUTPUT_TIMEOUT": "1s"})
    assert r.returncode == 1
    assert "idle-output watchdog" in worklog.read_text()


def test_dry_run_says_what_would_run_and_why_and_writes_nothing(worklog, home):
    write(worklog, "- [ ] a {id: a, run: 'touch ran'}\n")
    before = worklog.read_bytes()
    r = run_cli("wake", "--dry-run", "--now")
    assert r.returncode == 0
    assert "would run: a" in r.stdout and "because:" in r.stdout
    assert worklog.read_bytes() == before
    assert not (home / ".local/state/agentd/agentd.sqlite3").exists()


def test_timer_wakes_respect_quiet_hours_but_now_does_not(worklog):
    write(worklog, "- [ ] a {id: a, run: 'true'}\n")
    r = run_cli("wake", env={"AGENTD_QUIET_HOURS": "00:00-23:59"})
    assert r.returncode == 0 and "quiet hours" in r.stdout
    assert latest_status(worklog, "a") is None
    r = run_cli("wake", "--now", env={"AGENTD_QUIET_HOURS": "00:00-23:59"})
    assert r.returncode == 0 and latest_status(worklog, "a") == "done"


def test_timer_wakes_skip_when_the_load_is_above_max_load_and_hold_gpu_tasks_while_the_owner_is_active():
    from agentd.wake import gating

    cfg = config.load()
    busy = gating.check(cfg, {"load_per_cpu": cfg["max_load"] + 0.5}, forced=False)
    assert busy.skip and "busy" in busy.skip
    assert gating.check(cfg, {"load_per_cpu": cfg["max_load"] + 0.5}, forced=True).skip is None
    quiet = gating.check(cfg, {"load_per_cpu": 0.1, "users": [{"name": "me"}], "idle_s": 30}, forced=False)
    assert quiet.skip is None and quiet.hold_gpu and "active" in quiet.hold_gpu
    away = gating.check(cfg, {"load_per_cpu": 0.1, "users": [{"name": "me"}], "idle_s": 3600}, forced=False)
    assert away.hold_gpu is None
    nobody = gating.check(cfg, {"load_per_cpu": 0.1, "users": [], "idle_s": None}, forced=False)
    assert nobody.hold_gpu is None


def test_entries_lost_to_an_editor_saving_an_old_buffer_are_restored(worklog):
    write(worklog, "- [ ] a {id: a, run: 'echo one'}\n- [ ] b {id: b, run: 'echo two', value: 1}\n")
    old_buffer = worklog.read_bytes()
    assert run_cli("wake", "--now").returncode == 0
    # the editor writes its stale buffer plus a new human line via rename-into-place
    tmp = worklog.with_suffix(".swp")
    tmp.write_bytes(old_buffer + b"- [ ] c {id: c, run: 'echo three', value: 0.5}\n")
    os.replace(tmp, worklog)
    assert latest_status(worklog, "a") is None
    # before the wake puts them back, queue, status and the dry run count agentd's copy
    before = worklog.read_bytes()
    q = json.loads(run_cli("queue", "--json").stdout)
    assert q["lost_entries"] == 2 and {t["id"]: t["status"] for t in q["tasks"]}["a"] == "done"
    assert "2 agentd entries are missing from" in run_cli("queue").stdout
    assert json.loads(run_cli("status", "--json").stdout)["lost_entries"] == 2
    dry = run_cli("wake", "--dry-run", "--now")
    assert "would run: b" in dry.stdout, dry.stdout
    assert worklog.read_bytes() == before  # none of them writes
    r = run_cli("wake", "--now")  # just saved: the editor may not be done, so nothing is appended yet
    assert r.returncode == 0 and "restored once it has been still for 5 s" in r.stdout, r.stdout
    assert "restored=1" not in worklog.read_text() and latest_status(worklog, "b") == "done"  # b ran all the same
    still(worklog)
    r = run_cli("wake", "--now")
    assert r.returncode == 0, r.stderr
    assert "restored 2 agentd entries" in r.stdout, r.stdout
    assert json.loads(run_cli("queue", "--json").stdout)["lost_entries"] == 0
    text = worklog.read_text()
    assert "restored=1" in text
    st = parse_bytes(worklog.read_bytes())
    assert st.latest["a"]["status"] == "done"  # restored, so `a` does not run again
    assert st.latest["b"]["status"] == "done"
    assert text.count("> one") == 1
    assert "- [ ] c {id: c" in text


def test_a_wake_killed_mid_command_is_recorded_and_the_next_wake_reruns_it_first(worklog, tmp_path):
    counter = tmp_path / "count"
    write(worklog, f"- [ ] job {{id: job, run: 'echo x >> {counter}; sleep 30'}}\n"
                   "- [ ] other {id: other, run: 'true', value: 9, certainty: 1}\n")
    # make `job` the top task for the first wake only
    p = subprocess.Popen([*AGENTD, "wake", "--now", "--task", "job"], env=dict(os.environ),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 30
    while not counter.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)  # the wake only: its command's process group lives on, orphaned
    p.wait()
    st = json.loads(run_cli("status", "--json").stdout)  # no wake holds the lock: not "running"
    assert st["last_run"]["status"] == "interrupted" and st["progress"]["status"] == "failed"
    assert run_cli("wake", "--now", env={"AGENTD_COMMAND_TIMEOUT": "1s"}).returncode == 1  # the rerun hits the 1 s limit
    assert "were still running" in worklog.read_text()  # the next wake stopped the orphan first
    st = parse_bytes(worklog.read_bytes())
    statuses = [e for e in worklog.read_text().splitlines() if e.startswith("=== agentd entry") and "task=job" in e]
    assert any("status=interrupted" in e for e in statuses)
    assert "other" not in st.latest  # the interrupted job went first, before the higher-scored task
    assert counter.read_text().count("x") == 2
    runs = json.loads(run_cli("runs", "--json").stdout)
    assert sorted(r["status"] for r in runs) == ["failed", "interrupted"]  # the rerun is a run of its own
    rerun = next(r for r in runs if r["status"] == "failed")
    assert (Path(rerun["run_dir"]) / "manifest.json").exists()
    assert run_cli("show", rerun["run_id"]).returncode == 0
    killed = next(r for r in runs if r["status"] == "interrupted")
    progress = json.loads((Path(killed["run_dir"]) / "progress.json").read_text())
    assert progress["status"] == "failed" and progress["current_phase"] == "interrupted"
    assert progress["notes"] == "the wake was killed during 'run command'"


@pytest.mark.slow
def test_kill_9_at_random_moments_never_damages_the_worklog(worklog, tmp_path):
    human = "".join(f"- [ ] t{i} {{id: t{i}, run: 'echo {i}; sleep 0.0{i}'}}\n" for i in range(8))
    write(worklog, human)
    import random

    rnd = random.Random(1)
    for _ in range(12):
        p = subprocess.Popen([*AGENTD, "wake", "--now"], env=dict(os.environ), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rnd.uniform(0.05, 0.9))
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        data = worklog.read_bytes()
        assert data.startswith(human.encode())
        st = parse_bytes(data)
        assert set(st.tasks) == {f"t{i}" for i in range(8)}
        assert st.error_count == 0
    # after the storm, wakes finish everything
    for _ in range(20):
        if run_cli("wake", "--now").stdout.startswith("nothing to do"):
            break
    # every task is done, except one killed on each of its max_attempts (3) tries: that one is blocked,
    # not run a fourth time (RETRY: reopens it)
    st = parse_bytes(worklog.read_bytes())
    queue = {t["id"]: t for t in json.loads(run_cli("queue", "--json").stdout)["tasks"]}
    for i in range(8):
        tid = f"t{i}"
        if st.latest[tid]["status"] != "done":
            assert len(st.failures.get(tid, [])) >= 3 and queue[tid]["status"] == "blocked", (tid, st.latest[tid])
        assert len(st.failures.get(tid, [])) <= 3, (tid, st.failures[tid])  # never a 4th attempt


def test_secrets_never_reach_the_worklog_the_run_directory_or_the_store(worklog, home):
    secret = "hf_" + "A1b2C3d4E5f6G7h8I9j0KlMnOp"
    write(worklog, "- [ ] leak {id: leak, run: 'echo token=$MY_SERVICE_TOKEN; echo key=${ANTHROPIC_API_KEY:-absent}'}\n")
    r = run_cli("wake", "--now", env={"MY_SERVICE_TOKEN": secret, "ANTHROPIC_API_KEY": "sk-ant-" + "x" * 30,
                                      "AGENTD_PROVIDER": "none"})
    assert r.returncode == 0, r.stderr
    text = worklog.read_text()
    assert "token=[REDACTED]" in text and secret not in text
    assert "key=absent" in text  # the command never got agentd's LLM key
    state = home / ".local/state/agentd"
    for path in state.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_failed_run_started_by_hand_notifies_once_and_under_systemd_leaves_it_to_on_failure(worklog, tmp_path):
    out = tmp_path / "notified"
    write(worklog, "- [ ] broken {id: broken, run: 'exit 4'}\n- [ ] broken2 {id: broken2, run: 'exit 5'}\n")
    env = {"AGENTD_NOTIFY": f"cat >> {out}"}
    assert run_cli("wake", "--now", "--task", "broken", env=env).returncode == 1
    assert out.read_text().count("\n") == 1 and "broken failed" in out.read_text()
    assert run_cli("wake", "--now", "--task", "broken2", env={**env, "INVOCATION_ID": "abc"}).returncode == 1
    assert out.read_text().count("\n") == 1  # systemd's OnFailure= unit sends this one


def test_only_this_worklogs_own_entries_are_restored_and_init_starts_a_new_history(worklog, tmp_path):
    write(worklog, "- [ ] a {id: a, run: 'echo one'}\n")
    assert run_cli("wake", "--now").returncode == 0
    other = tmp_path / "wl" / "other_worklog.txt"
    other.write_text("- [ ] b {id: b, run: 'echo two'}\n")
    assert run_cli("wake", "--now", env={"AGENTD_HOST": "other"}).returncode == 0
    assert "task=a " not in other.read_text()  # testhost's entries stay out of other's worklog
    assert "task=b " not in worklog.read_text()
    # start over: move the worklog away and let init make a new one
    worklog.rename(tmp_path / "archive.txt")
    assert run_cli("init").returncode == 0
    still(worklog)  # a still file: anything lost from it would be restored now
    r = run_cli("wake", "--now")
    assert r.returncode == 0 and "restored" not in r.stdout and "missing" not in r.stdout
    assert "=== agentd entry" not in worklog.read_text()


def test_a_bad_task_id_is_a_usage_error_before_anything_is_written(worklog):
    write(worklog, "- [ ] a {id: a, run: 'true'}\n")
    before = worklog.read_bytes()
    r = run_cli("wake", "--now", "--task", "nosuch")
    assert r.returncode == 2 and "no task 'nosuch'" in r.stderr and "Traceback" not in r.stderr
    assert worklog.read_bytes() == before


def test_while_a_wake_runs_its_task_shows_as_running_not_interrupted(worklog):
    write(worklog, "- [ ] slow {id: slow, run: 'sleep 20'}\n")
    p = subprocess.Popen([*AGENTD, "wake", "--now"], env=dict(os.environ), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while latest_status(worklog, "slow") != "running" and time.time() < deadline:
            time.sleep(0.1)
        q = json.loads(run_cli("queue", "--json").stdout)
        t = next(t for t in q["tasks"] if t["id"] == "slow")
        assert t["status"] == "running" and not t["eligible"] and "running now" in t["why"]
        assert "a wake is running now" in run_cli("wake", "--dry-run", "--now").stdout
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def test_a_finished_run_whose_row_was_not_updated_is_not_run_again(worklog, home, tmp_path):
    count = tmp_path / "count"
    write(worklog, f"- [ ] once {{id: once, run: 'echo ran >> {count}'}}\n")
    assert run_cli("wake", "--now").returncode == 0
    # the wake died after writing its finding but before updating its runs row
    import sqlite3

    db = sqlite3.connect(home / ".local/state/agentd/agentd.sqlite3")
    db.execute("UPDATE runs SET status='running'")
    db.commit()
    db.close()
    for _ in range(2):
        assert run_cli("wake", "--now").returncode == 0
    assert count.read_text() == "ran\n"
    assert latest_status(worklog, "once") == "done"
    assert json.loads(run_cli("runs", "--json").stdout)[0]["status"] == "done"


def test_a_task_interrupted_again_and_again_is_blocked_after_max_attempts(worklog):
    started = worklog.parent / "started"
    write(worklog, f"- [ ] hog {{id: hog, run: 'touch {started}; sleep 30'}}\n")
    for i in range(3):
        started.unlink(missing_ok=True)
        p = subprocess.Popen([*AGENTD, "wake", "--now"], env=dict(os.environ), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not started.exists() and time.time() < deadline:  # the command itself is running
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)  # systemd's TimeoutStartSec stop
        assert p.wait(timeout=30) == 0
        assert latest_status(worklog, "hog") == "interrupted"
    q = json.loads(run_cli("queue", "--json").stdout)
    hog = next(t for t in q["tasks"] if t["id"] == "hog")
    assert hog["status"] == "blocked" and hog["attempts"] == 3 and "RETRY: hog" in hog["why"]


def test_a_retry_followed_by_a_quick_success_runs_the_task_once(worklog, tmp_path):
    """The RETRY is first seen by the wake that then runs the task within the same second."""
    flag, count = tmp_path / "fixed", tmp_path / "count"
    write(worklog, f"- [ ] rt {{id: rt, run: 'echo x >> {count}; test -e {flag}'}}\n")
    for _ in range(3):  # fails until blocked
        run_cli("wake", "--now", env={"AGENTD_RETRY_BACKOFF": "0s"})
    assert latest_status(worklog, "rt") == "failed"
    flag.touch()
    with open(worklog, "a", encoding="utf-8") as f:
        f.write("RETRY: rt\n")
    assert run_cli("wake", "--now").returncode == 0
    assert latest_status(worklog, "rt") == "done"
    q = json.loads(run_cli("queue", "--json").stdout)
    assert next(t for t in q["tasks"] if t["id"] == "rt")["status"] == "done"
    r = run_cli("wake", "--now")
    assert r.returncode == 0 and "nothing to do" in r.stdout
    assert count.read_text().count("x") == 4


def test_a_retry_added_at_the_top_right_after_a_failure_is_honoured(worklog):
    """Newest-first worklogs: the RETRY sits above the failure; agentd first sees it within the same
    second as the failure's `at=`, and still knows it is the newer line."""
    write(worklog, "- [ ] once {id: once, run: 'exit 1'}\n")
    assert run_cli("wake", "--now", env={"AGENTD_MAX_ATTEMPTS": "1"}).returncode == 1
    worklog.write_text("RETRY: once\n" + worklog.read_text())
    q = json.loads(run_cli("queue", "--json", env={"AGENTD_MAX_ATTEMPTS": "1"}).stdout)
    assert next(t for t in q["tasks"] if t["id"] == "once")["status"] == "open"


def test_a_retry_at_the_top_clears_the_failures_before_it(worklog):
    write(worklog, "- [ ] flaky {id: flaky, run: 'exit 1'}\n")
    for _ in range(3):
        run_cli("wake", "--now", "--task", "flaky")
    flaky = lambda: next(t for t in json.loads(run_cli("queue", "--json").stdout)["tasks"] if t["id"] == "flaky")
    assert (flaky()["status"], flaky()["attempts"]) == ("blocked", 3)
    worklog.write_text("RETRY: flaky\n" + worklog.read_text())
    assert (flaky()["status"], flaky()["attempts"]) == ("open", 0)
    assert run_cli("wake", "--now").returncode == 1  # fails once more: one attempt since the RETRY
    assert (flaky()["status"], flaky()["attempts"]) == ("failed", 1)


def test_an_interrupted_task_is_shown_first_in_the_queue_and_the_dry_run(worklog):
    write(worklog, "- [ ] low {id: low, run: 'sleep 30', value: 1}\n- [ ] high {id: high, run: 'true', value: 9}\n")
    p = subprocess.Popen([*AGENTD, "wake", "--now", "--task", "low"], env=dict(os.environ),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 30
    while latest_status(worklog, "low") != "running" and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    q = json.loads(run_cli("queue", "--json").stdout)
    assert q["tasks"][0]["id"] == "low" and q["tasks"][0]["why"].startswith("goes first: interrupted")
    assert "would run: low" in run_cli("wake", "--dry-run", "--now").stdout


def test_twelve_wakes_at_once_run_exactly_one_and_the_rest_exit_75(worklog, tmp_path):
    human = "".join(f"- [ ] t{i} {{id: t{i}, run: 'echo {i} >> {tmp_path}/ran; sleep 3'}}\n" for i in range(4))
    write(worklog, human)
    procs = [subprocess.Popen([*AGENTD, "wake", "--now"], env=dict(os.environ), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(12)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [75] * 11, results
    assert all("another wake is running" in err for code, err in results if code == 75)
    assert len((tmp_path / "ran").read_text().split()) == 1
    data = worklog.read_bytes()
    assert data.startswith(human.encode())
    st = parse_bytes(data)
    assert st.torn == 0 and st.error_count == 0 and st.entry_count == 2


@pytest.mark.skipif(not os.path.exists("/usr/bin/vim"), reason="needs vim")
@pytest.mark.parametrize("backupcopy", ["yes", "no"])  # yes: vim writes in place; no: a new file renamed over
def test_vim_saving_the_worklog_while_a_wake_runs_loses_nothing(worklog, backupcopy):
    write(worklog, "- [ ] slow {id: slow, run: 'sleep 2; echo finished-slow'}\n")
    p = subprocess.Popen([*AGENTD, "wake", "--now"], env=dict(os.environ), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while latest_status(worklog, "slow") != "running" and time.time() < deadline:
        time.sleep(0.05)
    # a real editor: open, add a line at the end, write and quit
    subprocess.run(["vim", "-u", "NONE", "-i", "NONE", "-n", "-es", "-c", f"set backup backupcopy={backupcopy}",
                    "-c", "normal Go- [ ] typed in vim {id: vim}", "-c", "wq", str(worklog)],
                   check=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.wait(timeout=60) == 0
    text = worklog.read_text()
    assert "- [ ] typed in vim {id: vim}" in text
    assert "> finished-slow" in text
    st = parse_bytes(worklog.read_bytes())
    assert st.latest["slow"]["status"] == "done" and "vim" in st.tasks


def test_a_command_that_floods_its_output_is_killed_and_disk_stays_bounded(worklog):
    write(worklog, "- [ ] flood {id: flood, run: 'yes flood-line-with-some-length'}\n")
    r = run_cli("wake", "--now", env={"AGENTD_MAX_OUTPUT_MIB": "2"})
    assert r.returncode == 1
    assert "printed more than 2 MiB" in worklog.read_text()
    run = json.loads(run_cli("runs", "--json").stdout)[0]
    size = sum(p.stat().st_size for p in Path(run["run_dir"]).iterdir())
    assert size < 8 * 2**20  # the cap plus what one 0.2 s poll interval lets through


def test_a_command_that_closes_its_output_is_still_bound_by_the_watchdog(worklog):
    write(worklog, "- [ ] silent {id: silent, run: 'exec sleep 60 >/dev/null 2>&1'}\n")
    r = run_cli("wake", "--now", env={"AGENTD_IDLE_OUTPUT_TIMEOUT": "1s"})
    assert r.returncode == 1
    assert "idle-output watchdog" in worklog.read_text()


def test_an_experiment_past_its_time_limit_is_killed_and_recorded_failed(worklog):
    write(worklog, "EXPERIMENT: cuda-probe {id: big, size: 16384}\n")
    r = run_cli("wake", "--now", env={"AGENTD_COMMAND_TIMEOUT": "2s"})
    assert r.returncode == 1
    assert latest_status(worklog, "big") == "failed"
    assert "timed out after 2 s" in worklog.read_text()


def test_progress_json_lists_the_phases_in_the_order_they_finished(worklog):
    write(worklog, "EXPERIMENT: health {id: h}\n")
    assert run_cli("wake", "--now").returncode == 0
    run = json.loads(run_cli("runs", "--json").stdout)[0]
    p = json.loads((Path(run["run_dir"]) / "progress.json").read_text())
    assert p["status"] == "done" and p["current_phase"] == "finished"
    assert p["phases_completed"][0] == "start" and p["phases_completed"][-1] == "finished"
    assert "snapshot" in p["phases_completed"]
    assert set(p) >= {"current_phase", "phase_started", "last_update", "status", "notes", "phases_completed"}


def test_a_failure_says_what_to_change_next(worklog):
    write(worklog, "- [ ] loud {id: loud, run: 'echo broken >&2; exit 3'}\n")
    run_cli("wake", "--now")
    assert ("next: read the stderr tail above; RETRY: loud after fixing, or it retries by itself with backoff"
            in worklog.read_text())
    write(worklog, "- [ ] quiet {id: quiet, run: 'exit 4'}\n")
    run_cli("wake", "--now", env={"AGENTD_MAX_ATTEMPTS": "1"})
    text = worklog.read_text()
    assert "next: it printed nothing at all: try it by hand in" in text
    assert "that was attempt 1 of 1 (max_attempts), so it is blocked now: write RETRY: quiet after fixing" in text
    write(worklog, "- [ ] slow {id: slow, run: 'sleep 30'}\n")
    run_cli("wake", "--now", env={"AGENTD_COMMAND_TIMEOUT": "1s"})
    assert "next: raise command_timeout in the config (now 1s), or split the work" in worklog.read_text()


def test_wake_task_may_skip_a_backoff_but_not_a_block(worklog, tmp_path):
    count = tmp_path / "count"
    write(worklog, f"- [ ] flaky {{id: flaky, run: 'echo x >> {count}; exit 1'}}\n")
    assert run_cli("wake", "--now").returncode == 1
    assert "nothing to do" in run_cli("wake", "--now").stdout  # in backoff
    assert run_cli("wake", "--now", "--task", "flaky").returncode == 1  # a person asked: it runs again
    assert count.read_text().count("x") == 2
    run_cli("wake", "--now", "--task", "flaky")  # the third failure blocks it
    r = run_cli("wake", "--now", "--task", "flaky")
    assert r.returncode == 2 and "RETRY: flaky" in r.stderr and count.read_text().count("x") == 3
    # a task in backoff whose dependency is no longer done: the backoff may be skipped, the dependency not
    with open(worklog, "a", encoding="utf-8") as f:
        f.write(f"- [x] gate {{id: gate}}\n- [ ] later {{id: later, run: 'echo y >> {count}; exit 1', after: gate}}\n")
    assert run_cli("wake", "--now", "--task", "later").returncode == 1  # fails: now in backoff
    worklog.write_text(worklog.read_text().replace("- [x] gate", "- [ ] gate"))
    r = run_cli("wake", "--now", "--task", "later")
    assert r.returncode == 2 and "waits for gate" in r.stderr and count.read_text().count("y") == 1


def test_a_kill_on_the_last_allowed_attempt_blocks_the_task_instead_of_rerunning_it(worklog, tmp_path):
    counter = tmp_path / "count"
    write(worklog, f"- [ ] job {{id: job, run: 'echo x >> {counter}; sleep 30'}}\n"
                   "- [ ] other {id: other, run: 'true', value: 1}\n")
    env = {"AGENTD_MAX_ATTEMPTS": "1"}
    p = subprocess.Popen([*AGENTD, "wake", "--now", "--task", "job"], env={**os.environ, **env},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 30
    while not counter.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert run_cli("wake", "--now", env=env).returncode == 0
    st = parse_bytes(worklog.read_bytes())
    assert st.latest["job"]["status"] == "interrupted" and st.latest["other"]["status"] == "done"
    assert counter.read_text().count("x") == 1  # not run again
    q = json.loads(run_cli("queue", "--json", env=env).stdout)
    assert next(t for t in q["tasks"] if t["id"] == "job")["status"] == "blocked"


def test_retry_lines_of_two_hosts_sharing_a_state_dir_stay_apart(worklog):
    """Each host's worklog keeps its own memory of when its DONE/CANCEL/RETRY lines were seen."""
    other = worklog.parent / "otherhost_worklog.txt"
    env_b = {"AGENTD_HOST": "otherhost"}
    for path, env in ((worklog, {}), (other, env_b)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("- [ ] job {id: job, run: 'exit 1'}\n")
        assert run_cli("wake", "--now", env={**env, "AGENTD_MAX_ATTEMPTS": "1"}).returncode == 1
    worklog.write_text("RETRY: job\n" + worklog.read_text())  # host a's RETRY, first seen now
    q = json.loads(run_cli("queue", "--json", env={"AGENTD_MAX_ATTEMPTS": "1"}).stdout)
    assert next(t for t in q["tasks"] if t["id"] == "job")["status"] == "open"
    other.write_text("RETRY: job\n" + other.read_text())  # host b's own RETRY at the top counts too
    q = json.loads(run_cli("queue", "--json", env={**env_b, "AGENTD_MAX_ATTEMPTS": "1"}).stdout)
    assert next(t for t in q["tasks"] if t["id"] == "job")["status"] == "open"


def test_a_new_worklog_made_by_init_starts_its_retry_lines_afresh(worklog):
    worklog.parent.mkdir(parents=True, exist_ok=True)
    worklog.write_text("- [ ] job {id: job, run: 'exit 1'}\nRETRY: job\n")
    env = {"AGENTD_MAX_ATTEMPTS": "1"}
    run_cli("wake", "--now", env=env)
    worklog.rename(worklog.with_suffix(".old"))  # start over
    assert run_cli("init").returncode == 0
    with open(worklog, "a", encoding="utf-8") as f:
        f.write("- [ ] job {id: job, run: 'exit 1'}\n")
    assert run_cli("wake", "--now", env=env).returncode == 1
    worklog.write_text(worklog.read_text().replace("- [ ] job", "RETRY: job\n- [ ] job", 1))
    q = json.loads(run_cli("queue", "--json", env=env).stdout)
    assert next(t for t in q["tasks"] if t["id"] == "job")["status"] == "open"


def test_a_store_from_before_lines_carried_their_worklog_keeps_ordering_them(worklog):
    """An upgraded store: DONE/CANCEL/RETRY rows named the old way (cmd:retry:job:1, a time and no
    seq) and no row saying this worklog was read.  A RETRY added at the top now is still newer."""
    import sqlite3

    write(worklog, "- [ ] job {id: job, run: 'exit 1'}\n- [ ] other {id: other, run: 'true'}\nDONE: other\n")
    env = {"AGENTD_MAX_ATTEMPTS": "1"}
    assert run_cli("wake", "--now", env=env).returncode == 1
    db = sqlite3.connect(Path(os.environ["XDG_STATE_HOME"]) / "agentd" / "agentd.sqlite3")
    with db:  # what the old version kept: unscoped names, a time, no seq; no wl: row
        db.execute("DELETE FROM first_seen WHERE task_id LIKE 'wl:%'")
        db.execute("UPDATE first_seen SET task_id = 'cmd:' || substr(task_id, 16), seq = NULL "
                   "WHERE task_id LIKE 'cmd:%'")
        assert [r[0] for r in db.execute("SELECT task_id FROM first_seen WHERE task_id LIKE 'cmd:%'")] == \
            ["cmd:done:other:1"]
    db.close()
    worklog.write_text("RETRY: job\n" + worklog.read_text())
    q = {t["id"]: t for t in json.loads(run_cli("queue", "--json", env=env).stdout)["tasks"]}
    assert q["job"]["status"] == "open" and q["other"]["status"] == "done"


def test_an_old_time_only_retry_row_still_clears_the_failures_before_it(worklog):
    """The old version kept only when it first saw a RETRY; that time becomes the seq of the last
    entry written before it, so a later failure doesn't bring the earlier ones back."""
    import sqlite3
    from datetime import datetime

    write(worklog, "- [ ] job {id: job, run: 'exit 1'}\n")
    env = {"AGENTD_MAX_ATTEMPTS": "2"}
    assert run_cli("wake", "--now", env=env).returncode == 1  # failure 1
    worklog.write_text("RETRY: job\n" + worklog.read_text())
    assert run_cli("queue", env=env).returncode == 0  # the RETRY is seen
    db = sqlite3.connect(Path(os.environ["XDG_STATE_HOME"]) / "agentd" / "agentd.sqlite3")
    with db:
        last = db.execute("SELECT max(written_at) FROM entries").fetchone()[0]
        seen = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() + 2  # seen 2 s after it
        db.execute("DELETE FROM first_seen WHERE task_id LIKE 'wl:%'")
        db.execute("UPDATE first_seen SET task_id = 'cmd:' || substr(task_id, 16), seq = NULL, at = ? "
                   "WHERE task_id LIKE 'cmd:%'", (seen,))
    db.close()
    assert run_cli("wake", "--now", env=env).returncode == 1  # open after the RETRY: failure 2
    job = next(t for t in json.loads(run_cli("queue", "--json", env=env).stdout)["tasks"] if t["id"] == "job")
    assert (job["status"], job["attempts"]) == ("failed", 1)  # one attempt since the RETRY, not blocked


def test_a_wake_reads_the_worklog_once_while_it_restores_lost_entries_and_settles_a_killed_run(worklog,
                                                                                                monkeypatch):
    from agentd.wake import wake
    from agentd.worklog import worklog as worklog_module
    from agentd.wake.recording import append_entry
    from agentd.store.store import Store

    write(worklog, "- [ ] a {id: a, run: 'echo one'}\n- [ ] b {id: b, run: 'echo two', value: 1}\n")
    old_buffer = worklog.read_bytes()
    assert run_cli("wake", "--now").returncode == 0  # a ran
    cfg = config.load()
    store = Store(cfg.store_path)
    # a wake was killed while b ran: its runs row and "started" entry say running ...
    store.start_run(run_id="r-killed", task_id="b", kind="command", title="b", status="running", host=cfg.host,
                    started_at="2026-01-01T00:00:00Z", run_dir=str(cfg.runs_dir / "r-killed"))
    append_entry(cfg, store, "r-killed", "b", "running", "**started** · command `echo two`")
    # ... and then an editor saved its old buffer: a's entries and b's "started" entry are lost
    worklog.write_bytes(old_buffer)
    still(worklog)
    reads = []
    real_read = worklog_module.read
    monkeypatch.setattr(worklog_module, "read", lambda *a, **k: reads.append(a[0]) or real_read(*a, **k))
    assert wake.wake(config.load(), now=True) == 0
    assert reads == [cfg.worklog_path]
    text = worklog.read_text()
    assert text.startswith(old_buffer.decode())
    assert text.count(" restored=1 ") == 3  # a's started and done entries, b's started entry
    st = parse_bytes(worklog.read_bytes())
    assert st.latest["a"]["status"] == "done"
    assert st.failures["b"] and st.latest["b"]["status"] == "done"  # b was recorded interrupted, then run again
    runs = {r["run_id"]: r["status"] for r in store.runs()}
    assert runs["r-killed"] == "interrupted" and sorted(runs.values()) == ["done", "done", "interrupted"]


def test_a_command_that_no_person_wrote_never_runs(tmp_path):
    """Only the worklog's human lines and task files in tasks_dir make command tasks; anything else that
    reached a runner (say, a task file an agent wrote somewhere else) is refused."""
    from agentd import runners
    from agentd.tasks.task import Task

    cfg = config.load()
    marker = tmp_path / "ran"
    job_for = lambda source: runners.Job(  # noqa: E731
        cfg, None, "r1", Task(id="x", title="x", kind="command", attrs={"run": f"touch {marker}"}, source=source),
        {}, tmp_path / "rundir", lambda phase: None)
    (tmp_path / "rundir").mkdir()
    elsewhere = tmp_path / "workspace-tasks" / "evil.yaml"
    out = runners.run(job_for(str(elsewhere)))
    assert out.status == "blocked" and "not a person's line" in out.summary and not marker.exists()
    out = runners.run(job_for(str(cfg.tasks_dir / "mine.yaml")))
    assert out.status == "done" and marker.exists()


def _drop_agentd_entries(text: str, keep_started: bool) -> str:
    """The worklog as an editor's stale buffer has it: the person's lines byte for byte, and of
    agentd's entries only the "started" one (``keep_started``) or none."""
    out, lines, i = [], text.splitlines(keepends=True), 0
    while i < len(lines):
        if lines[i].startswith("=== agentd entry "):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("=== agentd end "):
                j += 1
            block = lines[i:j + 1]
            if keep_started and "status=running" in lines[i]:
                out += block
            i = j + 1
            continue
        out.append(lines[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize("keep_started", [False, True], ids=["no-entries", "only-started-entry"])
@pytest.mark.parametrize("cache", ["kept", "unwritable"])
def test_a_command_whose_finished_run_is_in_the_store_never_runs_again_when_an_editor_drops_its_entries(
        worklog, tmp_path, keep_started, cache):
    effects = tmp_path / "effects"
    human = f"# my notes\n- [ ] append {{id: append, run: 'echo ran >> {effects}'}}\nplain words\n"
    write(worklog, human)
    assert run_cli("wake", "--now").returncode == 0
    assert effects.read_text() == "ran\n"
    text = worklog.read_text()
    assert "status=done" in text
    if cache == "unwritable":  # the parse cache can't record a read (so it can't say what was lost)
        index = config.load().index_path
        for suffix in ("", "-wal", "-shm"):
            Path(str(index) + suffix).unlink(missing_ok=True)
        index.mkdir()
    saved = _drop_agentd_entries(text, keep_started)
    assert saved.startswith("# my notes\n") and "status=done" not in saved
    tmp = worklog.with_suffix(".swp")
    tmp.write_text(saved, encoding="utf-8")
    os.replace(tmp, worklog)  # the editor's save: rename into place
    q = json.loads(run_cli("queue", "--json").stdout)
    assert {t["id"]: t["status"] for t in q["tasks"]}["append"] == "done", q
    r = run_cli("wake", "--now")
    assert r.returncode == 0, r.stdout + r.stderr
    assert effects.read_text() == "ran\n", r.stdout  # the side effect happened once
    assert "nothing to do" in r.stdout, r.stdout
    assert worklog.read_text().startswith(saved)  # the person's lines byte for byte
    still(worklog)
    r = run_cli("wake", "--now")  # the worklog is still now: the entry is appended again, and nothing runs
    assert effects.read_text() == "ran\n", r.stdout
    assert "restored" in r.stdout and latest_status(worklog, "append") == "done", r.stdout
    assert worklog.read_text().startswith(saved)
    assert json.loads(run_cli("runs", "--json").stdout)[0]["status"] == "done"
    assert len(json.loads(run_cli("runs", "--json").stdout)) == 1


def test_run_ids_carry_64_random_bits_sort_by_time_and_never_reuse_an_id_the_store_has(worklog):
    import calendar
    import re

    from agentd.workspace.rundir import new_run_id
    from agentd.store.store import Store

    write(worklog, "- [ ] t {id: t, run: 'true'}\n")
    assert run_cli("wake", "--now").returncode == 0
    old = json.loads(run_cli("runs", "--json").stdout)[0]["run_id"]
    m = re.fullmatch(r"r(\d{8}-\d{6})-([0-9a-f]+)", old)
    assert m, old
    assert re.fullmatch(r"r\d{8}-\d{6}-[0-9a-f]{16}", new_run_id())
    assert new_run_id(now=1_000_000_000) < new_run_id(now=1_000_000_001)  # readable and sortable by time
    # the same second and the same random bits as a run the store has: another id, not a crash
    second = calendar.timegm(time.strptime(m.group(1), "%Y%m%d-%H%M%S"))
    tokens = iter([m.group(2), "0" * 16])
    store = Store(config.load().store_path)
    assert new_run_id(store, now=second, token=lambda: next(tokens)) == f"r{m.group(1)}-{'0' * 16}"


@pytest.mark.parametrize("protected", [True, pytest.param(False, marks=pytest.mark.xfail(
    strict=True, reason="PROTECTION OFF: each refused wake leaves a run that never started"))])
def test_a_wake_on_a_read_only_worklog_records_nothing_and_the_task_runs_once_when_it_is_writable(
        tmp_path, monkeypatch, protected):
    wl = tmp_path / "rodisk"
    wl.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(wl)], capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"a read-only file system needs mount (root): {p.stderr.strip()}")
    try:
        monkeypatch.setenv("AGENTD_WORKLOG_DIR", str(wl))
        worklog = wl / "testhost_worklog.txt"
        worklog.write_text("- [ ] count {id: a, run: 'echo ran >> %s'}\n" % (tmp_path / "count"))
        subprocess.run(["mount", "-o", "remount,ro", str(wl)], check=True)
        env = {}
        if not protected:  # PROTECTION OFF, ON PURPOSE: the wake does not check the worklog first
            site = tmp_path / "off"
            site.mkdir()
            (site / "sitecustomize.py").write_text("import agentd.worklog.worklog as w\nw.check_writable = lambda p: None\n")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        for _ in range(2):
            r = run_cli("wake", "--now", env=env)
            assert r.returncode != 0 and "cannot append to the worklog: Read-only file system" in r.stderr, r.stderr
            assert "Traceback" not in r.stderr
        assert not (tmp_path / "count").exists()
        assert json.loads(run_cli("runs", "--json").stdout) == []  # no run that never started
        subprocess.run(["mount", "-o", "remount,rw", str(wl)], check=True)
        r = run_cli("wake", "--now")
        assert "a: done" in r.stdout, r.stdout + r.stderr
        assert (tmp_path / "count").read_text() == "ran\n"
        assert "restored" not in worklog.read_text() and worklog.read_text().count("=== agentd entry") == 2
    finally:
        subprocess.run(["umount", "-l", str(wl)], capture_output=True)


def test_ids_and_output_that_hold_a_key_prefix_inside_a_word_reach_the_worklog_whole(worklog):
    """``sk-`` inside ``task-``, ``hf_`` inside ``shelf_``: not keys.  The entry names the id a person
    copies into RETRY: whole (it came out ``nightly-ta[REDACTED]``)."""
    from agentd.redact import redact

    worklog.write_text("- [ ] fails {id: nightly-task-benchmark-suite-run, run: 'echo flask-application-server-"
                       "restarted-ok; exit 2'}\n")
    r = run_cli("wake", "--now")
    text = worklog.read_text()
    assert "RETRY: nightly-task-benchmark-suite-run" in text and "[REDACTED]" not in text, text
    assert "flask-application-server-restarted-ok" in r.stdout + text
    # keys are still keys, wherever a word ends before them
    for key in ("sk-proj-" + "a1" * 12, "sk-ant-api03-" + "b2" * 10, "hf_" + "c3" * 12, "ghp_" + "d4" * 12):
        for around in ("KEY={}", '"{}"', "token: {}", "_{}", "({})"):
            assert key not in redact(around.format(key), {}), around.format(key)
