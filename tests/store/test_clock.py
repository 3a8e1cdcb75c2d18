"""Time that survives clock jumps (clock.py): deadlines kept as a start plus a length.

The unit tests give the clocks as data (``clock.Now``) to a real store.  The end-to-end tests run the
real CLI under libfaketime (Debian's ``faketime``) at 1970 and at 2099, then at the real time, the way
a Jetson without a clock battery boots and NTP sets it right: the wall clock jumps, the boot clock
(``CLOCK_BOOTTIME``, left alone with ``FAKETIME_DONT_FAKE_MONOTONIC=1``) does not.  Each protection
also runs once switched off inside the agentd process (a ``sitecustomize``), to show the test can fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import time

import pytest

from agentd.store import clock
from agentd.store.store import Store
from agentd.times import iso, parse

from conftest import AGENTD, run_cli
from fake_llm import error, finish, reply

Y2026 = 1_796_000_000.0  # 2026-11-30
BOOT = "b-one"


def at(wall: float, boot: float, boot_id: str = BOOT) -> clock.Now:
    return clock.Now(wall, boot_id, boot)


def store(tmp_path) -> Store:
    return Store(tmp_path / "agentd.sqlite3")


def approval(s: Store, aid: str, asked: clock.Now, length: float) -> None:
    s.db.execute("INSERT INTO approvals (id, run_id, task_id, call_id, kind, what, why, asked_at, expires_at)"
                 " VALUES (?,?,?,?,?,?,?,?,?)", (aid, "r1", "t", "c", "command", "x", "y", iso(asked.wall),
                                                 iso(asked.wall + length)))
    clock.keep(s.db, "approval", aid, iso(asked.wall + length), asked)


def test_a_wall_jump_within_a_boot_moves_an_approval_by_the_jump_and_says_so(tmp_path):
    s = store(tmp_path)
    asked = at(86400.0, 100.0)  # 1970-01-02, 100 s after boot
    approval(s, "ap-1", asked, 7 * 86400)
    later = at(Y2026, 130.0)  # NTP set the clock: 30 s of this boot passed
    notes = clock.rebase(s.db, later)
    row = s.approval("ap-1")
    assert parse(row["expires_at"]) == pytest.approx(Y2026 + 7 * 86400 - 30, abs=1)
    assert not any("the clock jumped" in n for n in notes)  # no earlier wake was seen in this boot
    assert any(n.startswith("re-based: approval request ap-1 expires at") and "1970-01-09" in n for n in notes), notes
    # seen once: the next wake notes nothing more, and the jump itself is noticed from then on
    assert clock.rebase(s.db, at(Y2026 + 10, 140.0)) == []
    jumped = clock.rebase(s.db, at(Y2026 + 10 + 3 * 86400, 150.0))
    assert any("the clock jumped forward by 3.0 days" in n for n in jumped), jumped


def test_an_approval_counts_no_time_across_a_reboot_but_keeps_what_it_saw(tmp_path):
    s = store(tmp_path)
    approval(s, "ap-2", at(Y2026, 1000.0), 86400)
    clock.rebase(s.db, at(Y2026 + 3600, 4600.0))  # an hour seen in this boot
    clock.rebase(s.db, at(Y2026 + 30 * 86400, 5.0, "b-two"))  # off for a month, or the clock is wrong: who knows
    assert parse(s.approval("ap-2")["expires_at"]) == pytest.approx(Y2026 + 30 * 86400 + 86400 - 3600, abs=1)


def test_a_deferral_is_never_further_away_than_its_length(tmp_path):
    s = store(tmp_path)
    s.db.execute("INSERT INTO runs (kind, run_id, task_id, status, started_at, defer_until) VALUES ('command', 'r9', 't', 'waiting', ?, ?)",
                 (iso(4_070_995_200), iso(4_070_995_200 + 3600)))
    clock.keep(s.db, "run", "r9", iso(4_070_995_200 + 3600), at(4_070_995_200, 50.0))  # set in 2099
    clock.rebase(s.db, at(Y2026, 60.0))  # same boot, 10 s later, the clock set back to now
    assert parse(s.run("r9")["defer_until"]) == pytest.approx(Y2026 + 3590, abs=1)
    # across a reboot the wall clocks' difference counts, but never below 0 nor past the length
    s.db.execute("UPDATE runs SET defer_until=? WHERE run_id='r9'", (iso(Y2026 + 3590),))
    clock.rebase(s.db, at(Y2026 - 10 * 365 * 86400, 3.0, "b-two"))  # a reboot into a clock ten years back
    assert parse(s.run("r9")["defer_until"]) == pytest.approx(Y2026 - 10 * 365 * 86400 + 3590, abs=1)


def test_a_deadline_over_by_every_clock_is_dropped_without_a_note(tmp_path):
    s = store(tmp_path)
    s.db.execute("INSERT INTO runs (kind, run_id, task_id, status, started_at, defer_until) VALUES ('command', 'r1', 't', 'deferred', ?, ?)",
                 (iso(Y2026), iso(Y2026 + 60)))
    clock.keep(s.db, "run", "r1", iso(Y2026 + 60), at(Y2026, 10.0))
    assert clock.rebase(s.db, at(Y2026 + 7200, 7210.0)) == []
    assert s.run("r1")["defer_until"] == iso(Y2026 + 60)  # what happened stays written
    assert s.db.execute("SELECT COUNT(*) FROM deadlines").fetchone()[0] == 0


def test_a_failure_recorded_by_a_clock_in_2099_holds_its_retry_back_by_the_backoff_only(tmp_path):
    s = store(tmp_path)
    s.db.execute("INSERT INTO runs (kind, run_id, task_id, status, started_at) VALUES ('command', 'r5', 't', 'running', ?)",
                 (iso(4_070_995_200),))
    s.update_run("r5", status="failed")  # by this process's clocks: a start kept for its backoff
    times = clock.for_queue(s.db)
    assert clock.backoff_left(times, "r5", iso(4_070_995_200), time.time(), 1800) > 1700
    # with no start kept (an older store), a failure time from the future is suspect: no wait on it
    assert clock.backoff_left({}, "r0", iso(4_070_995_200), time.time(), 1800) == 0
    assert clock.defer_ends({}, "r0", "2100-01-01T00:00:00Z", time.time()) is None


def test_status_names_runs_the_clock_cannot_believe(tmp_path):
    s = store(tmp_path)
    s.db.execute("INSERT INTO runs (kind, run_id, task_id, status, started_at) VALUES ('command', 'r2099', 't', 'done', ?)",
                 ("2099-01-02T00:00:03Z",))
    lines = clock.status_lines(clock.seen(s.db))
    assert any("1 run(s) recorded as started more than a day ahead" in x and "2099-01-02T00:00:03Z" in x
               for x in lines), lines


# -- end to end: the real CLI under libfaketime -------------------------------------------------------

FAKETIME = shutil.which("faketime")
needs_faketime = pytest.mark.skipif(FAKETIME is None, reason="needs libfaketime (apt-get install faketime; .ci/run does)")


def _bwrap_problem() -> str | None:
    from agentd.sandbox import bwrap

    st = bwrap.status(dict(os.environ))
    return None if st.ok else st.message()


def run_at(when: str | None, *args: str, env: dict) -> subprocess.CompletedProcess:
    """The real CLI with its wall clock set to ``when`` (None: the real time); the boot clock left alone."""
    e = {**os.environ, **env}
    argv = [*AGENTD, *args]
    if when:
        argv = [FAKETIME, when, *argv]
        e["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    return subprocess.run(argv, capture_output=True, text=True, env=e, timeout=120)


def off(tmp_path) -> dict:
    """PROTECTION OFF, ON PURPOSE: agentd's process re-bases nothing and keeps no start for the queue."""
    d = tmp_path / "off"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(textwrap.dedent("""
        import agentd.store.clock as c
        c.rebase = lambda db, at=None: []
        c.for_queue = lambda db, at=None: {}
        c.AHEAD_S = c.MAX_WAIT_S = float("inf")
    """))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(d), os.environ.get("PYTHONPATH")]))}


def anthropic_env(fake) -> dict:
    return {"ANTHROPIC_API_KEY": "sk-ant-test-" + "k" * 24, "ANTHROPIC_BASE_URL": fake.url,
            "AGENTD_CALL_TIMEOUT": "20s"}


@needs_faketime
@pytest.mark.skipif(_bwrap_problem() is not None, reason=f"needs a usable bwrap: {_bwrap_problem()}")
@pytest.mark.parametrize("protected", [True, pytest.param(False, marks=pytest.mark.xfail(
    strict=True, reason="PROTECTION OFF: the approval asked in 1970 expires at the first wake after NTP"))])
def test_an_approval_asked_in_1970_does_not_expire_when_ntp_sets_the_clock(worklog, fake, tmp_path, protected):
    worklog.write_text("DIRECTIVE: restart the stuck service {id: ask}\n")
    fake.script(reply(tools=[("request_approval", {"kind": "command", "what": "systemctl restart foo",
                                                   "why": "it is stuck"})]),
                finish("done", "The person approved; restarted."))
    env = {**anthropic_env(fake), **({} if protected else off(tmp_path))}
    r = run_at("1970-01-02 00:00:00", "wake", "--now", env=env)
    assert r.returncode == 0 and "ask: waiting" in r.stdout, (r.stdout + r.stderr + run_at(
        "1970-01-02 00:00:00", "queue", env=env).stdout)  # (the queue says why, if the task was held)
    aid = re.findall(r"APPROVE: (ap-[0-9a-f]{16})\b", worklog.read_text())[-1]
    assert "expires at 1970-01-09" in worklog.read_text()
    # NTP sets the clock: the next wake must not call the request expired
    r = run_at(None, "wake", "--now", env=env)
    assert r.returncode == 0, r.stderr
    assert "expired unanswered" not in worklog.read_text()
    row = next(x for x in json.loads(run_at(None, "runs", "--json", env=env).stdout) if x["task_id"] == "ask")
    assert row["status"] == "waiting"
    st = run_at(None, "status", env=env).stdout
    assert f"re-based: approval request {aid} expires at" in st and "not 1970-01-09" in st, st
    expires = re.search(rf"re-based: approval request {aid} expires at (\S+),", st).group(1)
    assert time.time() + 6 * 86400 < parse(expires) <= time.time() + 7 * 86400
    # the person answers; the run goes on
    with open(worklog, "a", encoding="utf-8") as f:
        f.write(f"APPROVE: {aid}\n")
    r = run_at(None, "wake", "--now", env=env)
    assert "ask: done" in r.stdout, r.stdout + r.stderr


@needs_faketime
@pytest.mark.parametrize("protected", [True, pytest.param(False, marks=pytest.mark.xfail(
    strict=True, reason="PROTECTION OFF: the 2099 backoff and usage wait hold their tasks until 2099"))])
def test_waits_set_by_a_clock_in_2099_end_after_their_length_once_the_clock_is_right(worklog, fake, tmp_path,
                                                                                      protected):
    t2099 = 4_070_995_200  # 2099-01-02T00:00:00Z
    worklog.write_text("- [ ] flaky {id: flaky, run: 'exit 3'}\n"
                       "DIRECTIVE: count, then report {id: job}\n"
                       "- [ ] later {id: later, run: 'echo later-ran', value: 0.1}\n")
    fake.script(error(429, "You exceeded your current quota", code="insufficient_quota",
                      headers={"x-ratelimit-reset": str(t2099 + 20)}),
                finish("done", "Reported after the reset."))
    env = {"OPENAI_API_KEY": "sk-test-" + "o" * 24, "OPENAI_BASE_URL": fake.url + "/v1", "AGENTD_SANDBOX": "off",
           "AGENTD_CALL_TIMEOUT": "20s", "AGENTD_RETRY_BACKOFF": "1h", **({} if protected else off(tmp_path))}
    r = run_at("2099-01-02 00:00:00", "wake", "--now", "--task", "flaky", env=env)
    assert "flaky: failed" in r.stdout, r.stdout + r.stderr
    r = run_at("2099-01-02 00:00:01", "wake", "--now", "--task", "job", env=env)
    assert "job: waiting" in r.stdout and "2099-01-02T00:00:20Z" in worklog.read_text(), r.stdout + r.stderr
    # the clock is set right
    started = time.time()
    q = {t["id"]: t for t in json.loads(run_at(None, "queue", "--json", env=env).stdout)["tasks"]}
    backoff = re.search(r"waits until (\S+) \(backoff\)", q["flaky"]["why"])
    assert backoff and parse(backoff.group(1)) <= started + 3600 + 5, q["flaky"]["why"]
    st = run_at(None, "status", env=env).stdout
    m = re.search(r"re-based: run r\S+ waits until (\S+), not 2099-01-02T00:00:20Z", st)
    assert m and parse(m.group(1)) <= started + 20, st  # at most its 20 s of real time, not until 2099
    assert "recorded as started more than a day ahead of this clock" in st, st
    while time.time() < parse(m.group(1)) + 1:  # what is left of the usage wait passes
        time.sleep(0.2)
    r = run_at(None, "wake", "--now", env=env)
    assert "job: done" in r.stdout, r.stdout + r.stderr
    r = run_at(None, "wake", "--now", env=env)
    assert "later: done" in r.stdout, r.stdout + r.stderr
    st = run_at(None, "status", env=env).stdout
    assert re.search(r"last run:  r\S+ later done", st), st  # not the 2099 run, forever


def test_the_store_keeps_a_start_for_every_deadline_it_is_given(tmp_path):
    s = store(tmp_path)
    s.set_hold("openai", "deferred", "rate limited", until=iso(time.time() + 600))
    s.db.execute("INSERT INTO runs (kind, run_id, task_id, status, started_at) VALUES ('command', 'r3', 't', 'running', ?)",
                 (iso(time.time()),))
    s.update_run("r3", status="waiting", defer_until=iso(time.time() + 300))
    kinds = {(r[0], r[1]): r[2] for r in s.db.execute("SELECT kind, key, length FROM deadlines")}
    assert kinds[("hold", "openai")] == pytest.approx(600, abs=2) and kinds[("run", "r3")] == pytest.approx(300, abs=2)
    s.clear_hold("openai")
    s.update_run("r3", status="done", defer_until=None)
    assert s.db.execute("SELECT COUNT(*) FROM deadlines").fetchone()[0] == 0
    assert clock.seen(s.db)["runs_ahead"] == 0 and clock.status_lines(clock.seen(s.db)) == []


class _Read:
    answers: dict = {}


def _waiting_run(s: Store, started: float) -> None:
    s.db.execute("INSERT INTO runs (kind, run_id, task_id, status, started_at, host) VALUES "
                 "('directive', 'r1', 't', 'waiting', ?, 'testhost')", (iso(started),))


@pytest.mark.parametrize("newer_asked_ago,expect", [(60, "waits"), (2 * 86400, "expired")])
def test_the_newest_request_of_a_run_counts_whatever_the_clock_said_when_each_was_asked(tmp_path, newer_asked_ago,
                                                                                        expect):
    """Request A asked (and approved) while the clock said 2099, request B asked after NTP set it right:
    B, the newer, decides: the run keeps waiting for it, or ends blocked when it expired."""
    from agentd.config import config
    from agentd.wake import settle

    cfg = config.load()
    s = store(tmp_path)
    now = time.time()
    _waiting_run(s, 4_070_995_200)
    for aid, asked in (("ap-A", 4_070_995_200.0), ("ap-B", now - newer_asked_ago)):
        s.add_approval(id=aid, run_id="r1", task_id="t", call_id="c-" + aid, kind="command", what="x", why="y",
                       asked_at=iso(asked), expires_at=iso(asked + 86400))
    s.answer_approval("ap-A", "approve", None, None)
    left = settle.Leftovers()
    settle.waiting(cfg, s, _Read(), left, now)
    assert left.ready == []
    assert [x[2]["id"] for x in left.expired] == ([] if expect == "waits" else ["ap-B"])


def test_a_usage_reset_the_provider_gave_ten_days_ahead_is_waited_for(tmp_path):
    """agentd believes a provider's reset up to 31 days ahead (providers.base); settling must not call it
    suspect and resume the run at every wake."""
    from agentd.config import config
    from agentd.wake import settle
    from agentd.providers.base import _iso

    s = store(tmp_path)
    now = time.time()
    reset = _iso(now + 10 * 86400, now)
    assert reset is not None
    _waiting_run(s, now)
    s.update_run("r1", defer_until=reset)
    left = settle.Leftovers()
    settle.waiting(config.load(), s, _Read(), left, now)
    assert left.ready == []


def test_runs_of_a_store_made_while_the_clock_said_1970_are_named_and_so_is_a_clock_in_1970(tmp_path):
    s = store(tmp_path)
    s.db.execute("UPDATE migrations SET applied_at='1970-01-02T00:00:00Z'")  # the store's own birth is wrong too
    s.db.execute("INSERT INTO runs (kind, run_id, task_id, status, started_at) VALUES ('command', 'r70', 't', 'failed',"
                 " '1970-01-02T00:00:05Z')")
    lines = clock.status_lines(clock.seen(s.db))
    assert any("1 run(s) recorded as started before agentd's store (or agentd) existed (earliest "
               "1970-01-02T00:00:05Z)" in x for x in lines), lines
    lines = clock.status_lines(clock.seen(s.db, wall=86400.0 + 60))
    assert any("this host's clock says 1970-01-02T00:01:00Z, before agentd was written: it is wrong" in x
               for x in lines), lines
