"""Shared directives claimed once (issue 23, part 3): ``fleet_worklog.txt`` in the fleet's repository, its
tasks in every host's queue, a CLAIM pushed before a host runs one (git's compare-and-swap on the branch is
the lock), the finding written back under it.  Real git, a bare repository, hosts with HOMEs of their own,
the real CLI where a person would see it."""

from __future__ import annotations

import multiprocessing
import re
import shutil
import subprocess
import time
from types import SimpleNamespace

import pytest

from hosts import Host, at_remote, bare, entries, git, start_fleet

from agentd.queue import queue, shared
from agentd.store.store import Store
from agentd.worklog.parse import parse_bytes

FAKETIME = shutil.which("faketime")
needs_faketime = pytest.mark.skipif(FAKETIME is None, reason="needs libfaketime (apt-get install faketime)")


def publish(tmp_path, remote, text: str, hosts=()) -> None:
    """A person writes fleet_worklog.txt on their laptop and pushes it; the hosts sync."""
    lap = tmp_path / "laptop"
    if not lap.exists():
        git("clone", "-q", str(remote), str(lap))
    git("pull", "-q", "--no-rebase", "origin", "main", cwd=lap)
    with open(lap / "fleet_worklog.txt", "a") as f:
        f.write(text)
    git("add", "fleet_worklog.txt", cwd=lap)
    git("commit", "-qm", "shared work", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    for h in hosts:
        h.ok("sync")


def queue_of(host, now=None):
    cfg = host.cfg()
    cfg.ensure_state_dir()
    store = Store(cfg.store_path)  # where this host keeps when it first saw each claim
    return queue.load(cfg, store, has_gpu=False, now=now)


def task_of(view, tid):
    return next((t for t in view.tasks if t.id == tid), None)


# -- exactly one host runs a shared task ---------------------------------------------------------------

def test_three_hosts_wake_at_once_and_exactly_one_runs_the_shared_task_and_writes_its_finding(tmp_path):
    remote, hosts = start_fleet(tmp_path)
    publish(tmp_path, remote, "- [ ] say hello once for the fleet {run: echo shared-ran, id: hello}\n"
                              "- [ ] and once more {run: echo other-ran, id: hello2, value: 1}\n", hosts)
    for h in hosts:
        assert task_of(queue_of(h), "hello").eligible  # every host's queue offers it, source "fleet"
    procs = [subprocess.Popen([*h_argv(h), "wake", "--now"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=h.env) for h in hosts]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ran = [h.name for h, (out, _) in zip(hosts, outs) if "hello: done" in out]
    ran2 = [h.name for h, (out, _) in zip(hosts, outs) if "hello2: done" in out]
    assert len(ran2) == 1 and ran2 != ran, outs  # a host that lost hello's claim chose again: hello2
    assert len(ran) == 1, "\n-----\n".join(o + e[-3000:] for o, e in outs)
    for h in hosts:
        h.ok("sync")
    there = at_remote(remote, "fleet_worklog.txt")
    assert len(re.findall(rf"^CLAIM: hello host={ran[0]} run=r\S+ until=\S+$", there, re.M)) == 1
    assert there.count("CLAIM: hello ") == 1 and there.count("CLAIM: hello2 ") == 1
    assert sorted(entries(there)) == [("hello", "done"), ("hello2", "done")]
    assert "task=hello status=done at=" in there and f"host={ran[0]}" in there  # the finding, naming the host
    assert ("hello", "done") in entries(at_remote(remote, f"{ran[0]}_worklog.txt"))
    for h in hosts:  # done for the whole fleet: no host runs it again
        assert task_of(queue_of(h), "hello").status == "done" and task_of(queue_of(h), "hello2").status == "done"
        assert "nothing to do" in h.ok("wake", "--now")


def h_argv(h):
    from conftest import AGENTD
    return AGENTD


def _racer(env, tids, barrier, results, off):
    """One host's process: for each task, wait for the others, then claim it (real fetch, commit, push)."""
    from agentd.config import config
    from agentd.fleet import claims as c
    from agentd.fleet.repo import Pushed

    if off:  # PROTECTION OFF, ON PURPOSE: a rejected push is taken as if it went through
        real = c._push
        c._push = lambda r, commit: Pushed("pushed") if real(r, commit).status == "rejected" else real(r, commit)
    cfg = config.load(env)
    for tid in tids:
        barrier.wait(timeout=60)
        got = c.claim(cfg, None, SimpleNamespace(id=tid, runner="command"), f"r20261207-000000-{cfg.host}{tid}")
        results.put((tid, cfg.host, got.won, got.why))


def race(tmp_path, n: int, off: bool = False):
    remote, hosts = start_fleet(tmp_path)
    tids = [f"t{i:03d}" for i in range(n)]
    publish(tmp_path, remote, "".join(f"- [ ] shared task {t} {{run: echo {t}, id: {t}}}\n" for t in tids), hosts)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(len(hosts)), ctx.Queue()
    ps = [ctx.Process(target=_racer, args=(h.env, tids, barrier, results, off)) for h in hosts]
    for p in ps:
        p.start()
    got = [results.get(timeout=300) for _ in range(n * len(hosts))]
    for p in ps:
        p.join(timeout=60)
    winners = {t: [h for (tid, h, won, _) in got if tid == t and won] for t in tids}
    return remote, winners, got


@pytest.mark.parametrize("off", [False, pytest.param(True, marks=pytest.mark.xfail(
    strict=True, reason="PROTECTION OFF: a claim whose push was rejected runs too: two hosts run one task"))])
def test_over_a_hundred_races_of_three_hosts_exactly_one_claims_each_shared_task(tmp_path, off):
    n = 20 if off else 100
    remote, winners, got = race(tmp_path, n, off)
    assert all(len(w) == 1 for w in winners.values()), {t: w for t, w in winners.items() if len(w) != 1}
    lost = [why for (_, _, won, why) in got if not won]
    assert all(why.startswith("claimed by ") for why in lost), {w for w in lost if not w.startswith("claimed by ")}
    there = at_remote(remote, "fleet_worklog.txt")
    claimed = re.findall(r"^CLAIM: (t\d+) host=(\w+) ", there, re.M)
    assert sorted(claimed) == sorted((t, w[0]) for t, w in winners.items())  # one line per task: the winner's


# -- who may take one ------------------------------------------------------------------------------------

def test_hosts_limits_which_hosts_queue_offers_the_task(tmp_path):
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha, beta = hosts
    publish(tmp_path, remote, "- [ ] only on beta {run: echo b, id: onlyb, hosts: [beta]}\n"
                              "- [ ] anyone {run: echo a, id: any1}\n", hosts)
    assert task_of(queue_of(alpha), "onlyb") is None and task_of(queue_of(alpha), "any1").eligible
    assert task_of(queue_of(beta), "onlyb").eligible
    assert task_of(queue_of(beta), "onlyb").source == "fleet"
    text = alpha.ok("queue")  # the text queue marks the shared tasks, and counts them
    assert "(1 task, 1 of them from fleet_worklog.txt, 0 agentd entries)" in text
    assert re.search(r"^▶ any1 +command +open +[\d.]+  \[fleet\] anyone$", text, re.M), text
    assert "only on beta" not in text
    r = alpha.run("wake", "--now", "--task", "onlyb")
    assert r.returncode == 2 and "no task 'onlyb'" in r.stderr  # a task only beta may take: none of alpha's
    out = alpha.ok("wake", "--now")
    assert "any1: done" in out
    assert "nothing to do" in alpha.ok("wake", "--now")  # onlyb is never alpha's
    assert "onlyb: done" in beta.ok("wake", "--now", "--task", "onlyb")  # a shared task named by hand


def test_a_hosts_typo_an_id_defined_twice_and_bad_claims_are_named_by_queue_and_check_alike(tmp_path):
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "- [ ] typo {run: echo t, id: th, hosts: [betta]}\n"
                              "- [ ] one {run: echo 1, id: one}\n- [ ] one again {run: echo 2, id: one}\n"
                              + claim_line("one", "nosuchhost", "r20261207-000000-aaaa", "2026-12-07T01:00:00Z")
                              + "CLAIM one\n", [alpha])
    text = alpha.ok("queue", "--all")
    assert "fleet: fleet_worklog.txt:1: hosts: 'betta' names no host with a worklog in the fleet (alpha, beta)" in text
    assert "fleet: fleet_worklog.txt:2: task one is defined again on line 3" in text
    assert "fleet: fleet_worklog.txt:4: CLAIM names host 'nosuchhost'" in text
    assert "fleet: fleet_worklog.txt:5: a CLAIM line is `CLAIM: ID" in text
    order = [text.index(f"fleet_worklog.txt:{n}: ") for n in (1, 2, 4, 5)]
    assert order == sorted(order)  # in line order, as the host's own worklog's
    p = alpha.run("check", str(alpha.wl / "fleet_worklog.txt"))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    said = p.stdout + p.stderr
    for line, what in ((1, "hosts: 'betta' names no host"), (2, "task one is defined again on line 3"),
                       (4, "CLAIM names host 'nosuchhost'"), (5, "a CLAIM line is `CLAIM: ID")):
        assert f"fleet_worklog.txt:{line}: {what}" in said, said


def test_a_shared_id_that_this_hosts_worklog_defines_too_is_this_hosts_and_the_queue_says_so(tmp_path):
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    alpha.append("- [ ] alpha's own {run: echo own, id: same}\n")
    alpha.ok("sync")
    publish(tmp_path, remote, "- [ ] the fleet's {run: echo fleet, id: same}\n", [alpha])
    view = queue_of(alpha)
    assert task_of(view, "same").source == "worklog"
    assert any("fleet_worklog.txt:1: id same is also a task of alpha_worklog.txt" in p for p in view.problems)


# -- claims that expire, forged claims, wrong clocks --------------------------------------------------------

def claim_line(tid, host, run, until):
    return f"CLAIM: {tid} host={host} run={run} until={until}\n"


def test_a_claim_past_its_lease_with_no_finding_opens_the_task_again(tmp_path):
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "- [ ] shared {run: echo s, id: s1}\n"
            + claim_line("s1", "beta", "r20261207-000000-aaaa", "2026-12-07T00:30:00Z"), [alpha])
    t0 = time.time()
    held = task_of(queue_of(alpha, t0), "s1")
    assert not held.eligible and held.why.startswith("claimed by beta (run r20261207-000000-aaaa")
    assert not task_of(queue_of(alpha, t0 + 29 * 60), "s1").eligible  # a 30-minute lease, from alpha's first sight
    assert task_of(queue_of(alpha, t0 + 31 * 60), "s1").eligible  # beta went silent: open again


@pytest.mark.parametrize("bounded", [True, pytest.param(False, marks=pytest.mark.xfail(
    strict=True, reason="PROTECTION OFF: a forged claim until 2099 holds the task for 73 years"))])
def test_forged_claims_claim_nothing_or_hold_at_most_twice_the_time_limit(tmp_path, monkeypatch, bounded):
    if not bounded:  # PROTECTION OFF, ON PURPOSE: a claim's lease is its until, unbounded
        monkeypatch.setattr(shared, "bound", lambda cfg: 100 * 365 * 86400.0)
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "- [ ] a {run: echo a, id: a1}\n- [ ] b {run: echo b, id: b1}\n"
            "- [ ] c {run: echo c, id: c1}\n"
            + claim_line("a1", "mallory", "r20261207-000000-aaaa", "2099-01-01T00:00:00Z")  # no host of the fleet
            + "CLAIM: b1 host=beta until=2099-01-01T00:00:00Z\n"  # malformed
            + claim_line("c1", "beta", "forged", "2099-01-01T00:00:00Z"), [alpha])  # beta's name, until 2099
    t0 = time.time()
    view = queue_of(alpha, t0)
    assert task_of(view, "a1").eligible and task_of(view, "b1").eligible
    assert any(":4: CLAIM names host 'mallory', which has no worklog in the fleet" in p for p in view.problems)
    assert any(":5: a CLAIM line is `CLAIM: ID host=HOST run=RUN until=" in p for p in view.problems)
    assert not task_of(view, "c1").eligible  # a claim in beta's name counts...
    limit = 2 * 60 * 60  # ...for at most twice the longer of command_timeout (60m) and run_timeout (30m)
    assert not task_of(queue_of(alpha, t0 + limit - 60), "c1").eligible
    assert task_of(queue_of(alpha, t0 + limit + 60), "c1").eligible


def test_hostile_fleet_worklog_lines_get_the_errors_the_same_lines_get_in_a_hosts_own(tmp_path):
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    hostile = ("- [ ] attrs not closed {run: echo x, id: x1\n"
               "- [ ] bad hosts {run: echo y, hosts: 3}\n"
               "- [ ] bad host name {run: echo z, hosts: [\"a b\"]}\n"
               "=== agentd entry seq=99999999999999999 run=rX task=x1 status=done at=2026 ===\n"
               "- [ ] " + "w" * 70_000 + "\n"
               "- [ ] fine {run: echo fine, id: fine}\n")
    publish(tmp_path, remote, hostile, [alpha])
    view = queue_of(alpha)
    local = parse_bytes(hostile.encode())
    assert local.errors
    for line, why in local.errors:
        assert f"fleet_worklog.txt:{line}: {why}" in view.problems
    assert task_of(view, "fine").eligible
    assert "fleet_worklog.txt:2: the line is not read: 'hosts': a list of host names" in alpha.ok("queue")
    checked = alpha.run("check", str(alpha.wl / "fleet_worklog.txt")).stdout
    assert ":2:" in checked and "'hosts': a list of host names" in checked


def test_a_host_named_fleet_is_refused_a_fleet(tmp_path):
    remote = bare(tmp_path)
    h = Host(tmp_path, "fleet")
    h.ok("init")
    p = h.run("fleet", "init", str(remote))
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "a host named 'fleet' can't be in a fleet" in p.stdout + p.stderr


@needs_faketime
@pytest.mark.parametrize("when", ["1970-01-02 00:00:00", "2099-01-01 00:00:00"])
def test_a_host_whose_clock_is_1970_or_2099_claims_and_the_others_respect_its_claim_for_its_lease(tmp_path, when):
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha, beta = hosts
    publish(tmp_path, remote, "- [ ] long shared job {run: sleep 0, id: job}\n", hosts)
    beta.ok("sync")
    p = subprocess.run([FAKETIME, when, *h_argv(beta), "wake", "--now"], capture_output=True, text=True,
                       env=beta.env, timeout=120)  # (monotonic faked too: libfaketime's sleep fails otherwise)
    assert p.returncode == 0 and "job: done" in p.stdout, (p.stdout, p.stderr)
    there = at_remote(remote, "fleet_worklog.txt")
    assert re.search(r"^CLAIM: job host=beta run=r(1970|2099)\S+ until=(1970|2099)", there, re.M), there
    alpha.ok("sync")
    assert task_of(queue_of(alpha), "job").status == "done"  # its finding arrived: done for the fleet
    # the same claim with no finding: alpha holds off for the claim's own length (2 h), by alpha's clock
    lap = tmp_path / "laptop"
    git("pull", "-q", "--no-rebase", "origin", "main", cwd=lap)
    text = (lap / "fleet_worklog.txt").read_text()
    claim = re.search(r"^CLAIM: job .*$", text, re.M).group(0)
    (lap / "fleet_worklog.txt").write_text("- [ ] another {run: echo x, id: job2}\n"
                                           + claim.replace("CLAIM: job ", "CLAIM: job2 ") + "\n")
    git("commit", "-qam", "job2", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    alpha.ok("sync")
    t0 = time.time()
    assert not task_of(queue_of(alpha, t0), "job2").eligible
    assert not task_of(queue_of(alpha, t0 + 100 * 60), "job2").eligible
    assert task_of(queue_of(alpha, t0 + 121 * 60), "job2").eligible


# -- a large fleet worklog, a remote that gives no answer, a claim that can't be merged -----------------------

PAD = "".join(f"a note of the person's, line {i}, kept whole by every claim\n" for i in range(300))  # ~17 KiB


def test_a_fleet_worklog_over_the_limit_is_never_claimed_and_never_cut_on_the_remote(tmp_path, monkeypatch):
    from agentd.fleet import claims

    monkeypatch.setattr(shared, "MAX_CLAIM_BYTES", 4096)
    monkeypatch.setattr(claims, "MAX_FLEET_BYTES", 4096, raising=False)  # (the limit's name before the fix)
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "- [ ] shared {run: echo s, id: s1}\n" + PAD, [alpha])
    before = at_remote(remote, "fleet_worklog.txt")
    got = claims.claim(alpha.cfg(), None, SimpleNamespace(id="s1", runner="command"), "r20261207-000000-aaaa")
    assert not got.won and "fleet_worklog.txt is 0.0 MiB, over the 0 MiB agentd reads claims from" in got.why
    assert at_remote(remote, "fleet_worklog.txt") == before  # whole: no cut copy was pushed


def test_a_claim_past_the_bytes_read_is_never_missed_no_task_of_a_file_that_large_is_taken(tmp_path, monkeypatch):
    monkeypatch.setattr(shared, "MAX_CLAIM_BYTES", 4096)
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "- [ ] shared {run: echo s, id: s1}\n" + PAD
            + claim_line("s1", "beta", "r20261207-000000-bbbb", "2026-12-07T01:00:00Z"), [alpha])
    view = queue_of(alpha)
    t = task_of(view, "s1")
    assert not t.eligible and "over the 0 MiB agentd reads claims from: no host takes a task of it" in t.why
    assert any(p.startswith("fleet_worklog.txt: fleet_worklog.txt is ") for p in view.problems)


def counting_ssh(tmp_path, host, remote, real: bool):
    """The person's ssh to the remote, counted: each fetch and push, a line in a file; ``real``: it reaches
    the bare repository (the command git asks ssh to run, run here); else: no answer (exit 255)."""
    log = tmp_path / f"ssh-{host.name}.log"
    ssh = tmp_path / f"ssh-{host.name}.sh"
    run = 'shift; exec sh -c "$*"' if real else "exit 255"
    ssh.write_text(f'#!/bin/sh\nfor a; do last="$a"; done\necho "$last" >> {log}\n{run}\n')
    ssh.chmod(0o755)
    host.gitconfig(f"[core]\n\tsshCommand = {ssh}\n")
    git("remote", "set-url", "origin", f"ssh://fleet.example{remote}", cwd=host.wl)
    return log


def test_a_remote_that_gave_the_wakes_sync_no_answer_is_not_asked_again_for_each_shared_task(tmp_path):
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "".join(f"- [ ] shared {i} {{run: echo s{i}, id: s{i}}}\n" for i in range(3)), [alpha])
    log = counting_ssh(tmp_path, alpha, remote, real=False)
    out = alpha.ok("wake", "--now")
    assert "nothing to do" in out and out.count("not claimed: the fleet's remote gave no answer") == 3, out
    fetches = [c for c in log.read_text().splitlines() if "upload-pack" in c]
    assert len(fetches) == 1, fetches  # the sync's one try: no fetch for each claim


def test_a_wake_that_claims_a_shared_task_fetches_no_more_than_its_syncs_do(tmp_path):
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "- [ ] shared {run: echo s, id: s1}\n", [alpha])
    log = counting_ssh(tmp_path, alpha, remote, real=True)
    out = alpha.ok("wake", "--now")
    assert "s1: done" in out, out
    calls = log.read_text().splitlines()
    assert sum("upload-pack" in c for c in calls) == 2, calls  # the sync before and the one after the run
    assert re.search(r"^CLAIM: s1 host=alpha ", at_remote(remote, "fleet_worklog.txt"), re.M)
    assert ("s1", "done") in entries(at_remote(remote, "fleet_worklog.txt"))


def test_a_claim_pushed_but_not_merged_here_runs_nothing(tmp_path):
    from agentd.fleet import claims

    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "- [ ] shared {run: echo s, id: s1}\n", [alpha])
    with open(alpha.wl / "fleet_worklog.txt", "a") as f:  # a person's edit on alpha, not committed
        f.write("- [ ] a line being written {run: echo x, id: x9}\n")
    got = claims.claim(alpha.cfg(), None, SimpleNamespace(id="s1", runner="command"), "r20261207-000000-aaaa")
    assert not got.won and "its claim was pushed but could not be merged here" in got.why
    assert "CLAIM: s1 host=alpha" in at_remote(remote, "fleet_worklog.txt")
    assert "id: x9" in (alpha.wl / "fleet_worklog.txt").read_text()  # the person's edit untouched


# -- a Slurm task's claim lasts while its job may --------------------------------------------------------------

def test_a_slurm_tasks_claim_holds_for_its_slurm_time_at_most_seven_days(tmp_path):
    from agentd.fleet import claims

    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "- [ ] train {run: echo t, id: tr, slurm: {time: \"3-00:00:00\"}}\n"
            "- [ ] short {run: echo t, id: sh, slurm: {time: \"30\"}}\n"
            + claim_line("tr", "beta", "r20261207-000000-bbbb", "2026-12-20T00:00:00Z")
            + claim_line("sh", "beta", "r20261207-000000-bbbb", "2026-12-20T00:00:00Z"), [alpha])
    cfg = alpha.cfg()
    cfg.ensure_state_dir()
    store = Store(cfg.store_path)
    t0 = time.time()
    assert set(shared.read(cfg, store, now=t0).live) == {"tr", "sh"}
    later = shared.read(cfg, store, now=t0 + 4 * 86400).live  # its job may still wait or run: held
    assert "tr" in later and "sh" not in later  # (30 minutes, twice, and a day's wait in Slurm's queue)
    assert "tr" not in shared.read(cfg, store, now=t0 + 7 * 86400 + 60).live  # never past seven days
    task = task_of(queue_of(alpha), "sh")
    assert claims.until(cfg, task, 0) == "1970-01-02T01:00:00Z"
    assert [shared.slurm_seconds(x) for x in ("30", "30:15", "2:00:00", "1-12", "1-12:30", "1-0:0:5", "x")] == [
        1800, 1815, 7200, 129600, 131400, 86405, None]


# -- a run taken up again by a later wake ------------------------------------------------------------------

def _short_limits(h) -> None:
    """Time limits of 10 s: a claim's lease is 20 s, so it can end within a test."""
    d = h.home / ".config" / "agentd"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text("command_timeout: 10s\nrun_timeout: 10s\n")


def _lines(p) -> int:
    return len(p.read_text().splitlines()) if p.exists() else 0


def _wake_killed_mid_run(h, count, env=None) -> None:
    """``h`` wakes and is killed (its whole process group) once its run has started the command."""
    import os
    import signal
    before = _lines(count)
    p = subprocess.Popen([*h_argv(h), "wake", "--now"], env={**h.env, **(env or {})}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while _lines(count) == before and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert _lines(count) == before + 1


def _no_renewal(tmp_path) -> dict:
    """PROTECTION OFF, ON PURPOSE: a run taken up again goes on without its claim renewed."""
    import os
    import textwrap
    d = tmp_path / "off"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(textwrap.dedent("""
        import agentd.wake.settle as s
        s.still_claimed = lambda cfg, store, log, pick, synced, state: pick
    """))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(d), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("renewed", [True, pytest.param(False, marks=pytest.mark.xfail(
    strict=True, reason="PROTECTION OFF: a killed run is run again while another host holds the task: it runs twice"))])
def test_a_run_a_later_wake_takes_up_goes_on_only_under_a_claim_renewed_for_it(tmp_path, renewed):
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha, beta = hosts
    for h in hosts:
        _short_limits(h)
    count = tmp_path / "count"
    publish(tmp_path, remote, f"- [ ] shared {{id: s1, run: 'echo x >> {count}; sleep 3'}}\n", hosts)
    off = {} if renewed else _no_renewal(tmp_path)
    t0 = time.time()
    _wake_killed_mid_run(alpha, count)  # alpha's claim was pushed, its run killed
    beta.ok("sync")
    assert "claimed by alpha" in task_of(queue_of(beta), "s1").why  # beta's first sight of alpha's claim
    time.sleep(max(0.0, t0 + 24 - time.time()))  # alpha's 20-second lease ends, by every host's clock
    _wake_killed_mid_run(beta, count)  # beta claims the task alpha went silent on: its run is killed too
    out = subprocess.run([*h_argv(alpha), "wake", "--now"], env={**alpha.env, **off}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out
    assert _lines(count) == 2, out.stdout  # alpha did not run it again: beta holds it now
    assert "s1: run r" in out.stdout and "not taken up: claimed by beta (run r" in out.stdout
    assert entries(alpha.worklog.read_text()) == [("s1", "running"), ("s1", "interrupted")]  # (the kill's)
    assert "s1: done" in beta.ok("wake", "--now")  # beta takes up its own run under its claim, renewed
    assert _lines(count) == 3
    alpha.ok("sync")
    there = at_remote(remote, "fleet_worklog.txt")
    claims = re.findall(r"^CLAIM: s1 host=(\w+) ", there, re.M)
    assert claims == ["alpha", "beta", "beta"], there  # alpha's, beta's, beta's renewal for its new run
    assert entries(there) == [("s1", "done")] and "host=beta" in there
    assert task_of(queue_of(alpha), "s1").status == "done"


def test_a_resumed_run_of_a_task_another_host_holds_now_ends_interrupted_and_one_this_host_holds_goes_on(tmp_path):
    """The run a later wake would resume from its checkpoint (or whose answer came), in the wake's own
    step (``settle.still_claimed``) against real git: held by another host, it is over here, saying why;
    held by this host, it goes on even while the remote gives no answer."""
    from agentd.fleet import claims as c
    from agentd.fleet.sync import Synced
    from agentd.platform import logs
    from agentd.wake import settle
    from agentd.workspace.rundir import RunDir

    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha, beta = hosts
    publish(tmp_path, remote, "- [ ] shared {id: s1, run: 'true'}\n- [ ] mine {id: s2, run: 'true'}\n", hosts)
    bcfg = beta.cfg()
    bcfg.ensure_state_dir()
    assert c.claim(bcfg, Store(bcfg.store_path), task_of(queue_of(beta), "s1"), "r20261207-000001-beta").won
    cfg = alpha.cfg()
    cfg.ensure_state_dir()
    store = Store(cfg.store_path)
    assert c.claim(cfg, store, task_of(queue_of(alpha), "s2"), "r20261207-000002-alpha").won
    alpha.ok("sync")
    view = queue_of(alpha)
    log = logs.setup(cfg=cfg)
    RunDir(cfg, "r20261207-000003-alpha").progress("agent turn 3")  # a killed run's progress.json
    for tid, run in (("s1", "r20261207-000003-alpha"), ("s2", "r20261207-000002-alpha")):
        store.start_run(run_id=run, task_id=tid, kind="directive", status="running", host="alpha",
                        started_at="2026-12-07T00:00:00Z")
    held = settle.still_claimed(cfg, store, log, settle.Resume(task_of(view, "s1"), "r20261207-000003-alpha", True),
                                None, view.read.state)
    assert held is None
    row = store.db.execute("SELECT status, reason FROM runs WHERE run_id='r20261207-000003-alpha'").fetchone()
    assert tuple(row) == ("interrupted", "not taken up: claimed by beta (run r20261207-000001-beta)")
    assert "**interrupted** · not taken up: claimed by beta" in alpha.worklog.read_text()
    mine = settle.Resume(task_of(view, "s2"), "r20261207-000002-alpha", True)
    gone = Synced(reached=False, warning="the remote hangs")
    assert settle.still_claimed(cfg, store, log, mine, gone, view.read.state) is mine  # its claim holds here
    assert "CLAIM: s2 host=alpha" in c.holds(cfg, store, mine.task) and c.holds(cfg, store, task_of(view, "s1")) == ""
    late = time.time() + 2 * 3600 - 30 * 60 + 60  # s2's 2-hour lease has less than a command's 60 minutes left
    assert c.holds(cfg, store, mine.task, now=late) == ""
    progress = RunDir(cfg, "r20261207-000003-alpha").read()  # said "running", at its step, before
    assert progress["status"] == "failed" and progress["current_phase"] == "interrupted"
    assert progress["notes"].startswith("not taken up: claimed by beta")


def test_this_hosts_own_earlier_claim_never_hides_another_hosts_live_one(tmp_path):
    """alpha's claim, live by alpha's count, then beta's (pushed when, by beta's count, alpha's had ended):
    beta's holds the task for alpha, and alpha claims nothing."""
    from agentd.fleet import claims as c

    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    publish(tmp_path, remote, "- [ ] shared {id: s1, run: 'true'}\n"
            + claim_line("s1", "alpha", "r20261207-000000-aaaa", "2026-12-07T01:00:00Z")
            + claim_line("s1", "beta", "r20261207-003000-bbbb", "2026-12-07T01:30:00Z"), [alpha])
    view = queue_of(alpha)
    assert not task_of(view, "s1").eligible and task_of(view, "s1").why.startswith("claimed by beta (run r20261207-003000")
    cfg = alpha.cfg()
    got = c.claim(cfg, Store(cfg.store_path), task_of(view, "s1"), "r20261207-004000-alpha")
    assert not got.won and got.why.startswith("claimed by beta") and got.elsewhere
    assert c.holds(cfg, Store(cfg.store_path), task_of(view, "s1")) == ""


def test_a_claim_first_seen_before_claims_were_keyed_by_until_keeps_that_sight_and_a_renewal_is_new(tmp_path):
    """A store from before this version kept first sights as claim:TASK:HOST:RUN: a claim seen 10 hours ago
    stays expired after the upgrade; a renewal of the same run (a later line, another until) is new."""
    remote, hosts = start_fleet(tmp_path, ("alpha", "beta"))
    alpha = hosts[0]
    cfg = alpha.cfg()
    cfg.ensure_state_dir()
    Store(cfg.store_path).record_seen([("claim:s1:beta:r20261207-000000-bbbb", time.time() - 10 * 3600, None)])
    publish(tmp_path, remote, "- [ ] shared {id: s1, run: 'true'}\n"
            + claim_line("s1", "beta", "r20261207-000000-bbbb", "2026-12-07T01:00:00Z"), [alpha])
    assert task_of(queue_of(alpha), "s1").eligible  # seen 10 h ago: its 1-hour lease ended long since
    publish(tmp_path, remote, claim_line("s1", "beta", "r20261207-000000-bbbb", "2026-12-07T02:00:00Z"), [alpha])
    assert task_of(queue_of(alpha), "s1").why.startswith("claimed by beta")  # the renewal: first seen now
