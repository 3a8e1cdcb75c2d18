"""The fleet repository and its sync (issue 23, parts 1 and 2): real git, real `agentd` subprocesses, hosts
with HOMEs of their own on one machine, a bare repository in the test's tmp dir as the remote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hosts import Host, at_remote, bare, entries, git, start_fleet


@pytest.fixture
def fleet(tmp_path):
    """A bare remote, host alpha that started the fleet and host beta that joined it."""
    remote, (alpha, beta) = start_fleet(tmp_path, ("alpha", "beta"))
    return remote, alpha, beta


def laptop(tmp_path, remote):
    """A person's own clone of the fleet, on another machine."""
    d = tmp_path / "laptop"
    git("clone", "-q", str(remote), str(d))
    return d


def test_init_and_join_make_the_worklog_dirs_clones_with_the_union_merge_for_worklogs(fleet):
    remote, alpha, beta = fleet
    assert at_remote(remote, ".gitattributes") == "*_worklog.txt merge=union\n"
    assert "# alpha worklog" in at_remote(remote, "alpha_worklog.txt")
    assert "# beta worklog" in at_remote(remote, "beta_worklog.txt")  # beta's own worklog joined, kept
    assert (beta.wl / "alpha_worklog.txt").is_file() and (beta.wl / ".gitattributes").is_file()
    assert "fleet:" in beta.ok("status")
    assert json.loads(beta.ok("status", "--json"))["fleet"]["ok"] is True
    assert alpha.ok("sync").startswith("synced")


def test_a_persons_edit_on_another_machine_and_the_hosts_entries_and_lines_all_survive(fleet, tmp_path):
    remote, alpha, beta = fleet
    lap = laptop(tmp_path, remote)
    with open(lap / "alpha_worklog.txt", "a") as f:
        f.write("- [ ] written on the laptop {run: echo from-the-laptop, id: lap}\n")
    git("commit", "-qam", "a task for alpha, from the laptop", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    alpha.append("a note the person wrote on alpha, not committed\n")  # at the same time, on alpha itself

    out = alpha.ok("wake", "--now")  # pulls before reading: the laptop's task is the one it runs
    assert "lap: done" in out
    mine = alpha.worklog.read_text()
    assert "written on the laptop" in mine and "a note the person wrote on alpha" in mine
    assert ("lap", "done") in entries(mine)
    there = at_remote(remote, "alpha_worklog.txt")
    assert "written on the laptop" in there and "a note the person wrote on alpha" in there
    assert ("lap", "done") in entries(there)
    beta.ok("sync")
    assert ("lap", "done") in entries((beta.wl / "alpha_worklog.txt").read_text())
    log = git("log", "--format=%an|%s", "main", cwd=remote)
    assert "agentd on alpha|agentd alpha: alpha_worklog.txt after run r" in log  # names the host and the run
    assert "person|a task for alpha, from the laptop" in log  # the person's commit, kept as it was


def test_join_keeps_the_bytes_of_this_hosts_worklog_already_there(tmp_path):
    remote = bare(tmp_path)
    alpha, beta = Host(tmp_path, "alpha"), Host(tmp_path, "beta")
    alpha.ok("init")
    alpha.ok("fleet", "init", str(remote))
    lap = laptop(tmp_path, remote)
    (lap / "beta_worklog.txt").write_text("- [ ] a task the person left for beta {id: left}\n")
    git("add", "beta_worklog.txt", cwd=lap)
    git("commit", "-qm", "for beta", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    beta.wl.mkdir()
    before = "# beta's own notes\n- [ ] beta's own task {run: echo own, id: own}\nfinal line without a newline"
    beta.worklog.write_text(before)

    beta.ok("fleet", "join", str(remote))
    after = beta.worklog.read_text()
    assert before in after and "a task the person left for beta" in after
    assert before in at_remote(remote, "beta_worklog.txt")


def test_an_unreachable_remote_is_a_warning_the_wake_records_and_every_entry_arrives_when_it_is_back(fleet, tmp_path):
    remote, alpha, beta = fleet
    away = tmp_path / "away.git"
    remote.rename(away)  # the shared disk is gone
    alpha.append("- [ ] one {run: echo one, id: one}\n- [ ] two {run: echo two, id: two, value: 1}\n")
    p = alpha.run("wake", "--now")
    assert p.returncode == 0 and "one: done" in p.stdout and "Traceback" not in p.stderr
    assert "fleet sync" in p.stderr and "unreachable" in p.stderr  # the log
    assert p.stdout.count("fleet: cannot reach ") == 1 and "the wake goes on" in p.stdout  # and one line for a person
    st = json.loads(alpha.ok("status", "--json"))["fleet"]
    assert st["kind"] == "unreachable" and st["unpushed"] >= 1
    assert "warning:   fleet: cannot reach" in alpha.ok("status")
    assert alpha.run("sync").returncode == 1
    alpha.ok("wake", "--now")  # still unreachable: the second task runs and is recorded all the same
    assert [t for t, s in entries(alpha.worklog.read_text()) if s == "done"] == ["one", "two"]

    away.rename(remote)
    alpha.ok("wake", "--now")  # nothing left to run: the sync before it pushes what waited
    assert [t for t, s in entries(at_remote(remote, "alpha_worklog.txt")) if s == "done"] == ["one", "two"]
    assert json.loads(alpha.ok("status", "--json"))["fleet"] | {"at": 0, "last_ok": 0, "head": ""} == {
        "at": 0, "last_ok": 0, "head": "", "ok": True, "warning": "", "kind": "", "unpushed": 0,
        "remote": str(remote)}


def test_a_remote_that_hangs_is_cut_off_at_the_timeout_and_the_wake_still_records(fleet, tmp_path):
    remote, alpha, beta = fleet
    hang = tmp_path / "hang.sh"
    hang.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/hang.pid\nexec sleep 300\n")
    hang.chmod(0o755)
    alpha.gitconfig(f"[core]\n\tsshCommand = {hang}\n")  # the person's own config says how to reach the remote
    git("remote", "set-url", "origin", "ssh://fleet.example/srv/fleet.git", cwd=alpha.wl)
    alpha.env["AGENTD_FLEET"] = "{timeout: 2s}"
    alpha.append("- [ ] one {run: echo one, id: one}\n")
    p = alpha.run("wake", "--now")
    assert p.returncode == 0 and "one: done" in p.stdout, p.stderr
    assert "no answer within 2 s" in p.stderr
    assert ("one", "done") in entries(alpha.worklog.read_text())
    pid = int((tmp_path / "hang.pid").read_text())
    assert not (Path("/proc") / str(pid)).exists() or "Z" in (Path("/proc") / str(pid) / "stat").read_text().split()[2]


def test_a_push_the_remote_declines_is_a_warning_and_the_next_wake_pushes_it(fleet, tmp_path):
    remote, alpha, beta = fleet
    flag = tmp_path / "decline"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\nif [ -e {flag} ]; then echo 'not today' >&2; exit 1; fi\n")
    hook.chmod(0o755)
    flag.touch()
    alpha.append("- [ ] one {run: echo one, id: one}\n")
    p = alpha.run("wake", "--now")
    assert "one: done" in p.stdout and "declined" in p.stderr
    assert ("one", "done") not in entries(at_remote(remote, "alpha_worklog.txt"))
    assert json.loads(alpha.ok("status", "--json"))["fleet"]["kind"] == "declined"
    flag.unlink()
    alpha.ok("wake", "--now")
    assert ("one", "done") in entries(at_remote(remote, "alpha_worklog.txt"))


def test_a_push_that_lost_the_race_to_another_host_merges_and_pushes_again(fleet):
    remote, alpha, beta = fleet
    alpha.append("alpha's line\n")
    beta.append("beta's line\n")
    beta.ok("sync")
    assert alpha.ok("sync").startswith("synced: committed, merged, pushed")
    assert "beta's line" in at_remote(remote, "beta_worklog.txt")
    assert "alpha's line" in at_remote(remote, "alpha_worklog.txt")


def test_the_other_hosts_worklogs_are_listed_from_the_clone(fleet):
    from agentd.fleet import layout, repo

    remote, alpha, beta = fleet
    alpha.ok("sync")
    assert layout.other_worklogs(alpha.cfg()) == {"beta": alpha.wl / "beta_worklog.txt"}
    assert "# beta worklog" in repo.Repo(alpha.cfg()).show("HEAD", "beta_worklog.txt").decode()


def test_push_says_rejected_when_the_branch_moved_since_the_fetch(fleet):
    """The primitive the shared directives' claims build on: git's compare-and-swap on the branch."""
    from agentd.fleet import repo

    remote, alpha, beta = fleet
    beta.append("beta first\n")
    beta.ok("sync")
    r = repo.Repo(alpha.cfg())
    alpha.append("alpha's claim\n")
    assert r.commit_own("a claim")
    got = r.push()
    assert got.status == "rejected" and "fetch first" in got.detail
    assert "alpha's claim" not in at_remote(remote, "alpha_worklog.txt")


def test_a_conflict_in_a_file_that_is_not_a_worklog_is_a_warning_and_nothing_is_half_merged(fleet, tmp_path):
    remote, alpha, beta = fleet
    lap = laptop(tmp_path, remote)
    (lap / "notes.md").write_text("the laptop's notes\n")
    git("add", "notes.md", cwd=lap)
    git("commit", "-qm", "notes", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    (alpha.wl / "notes.md").write_text("alpha's own notes\n")
    git("add", "notes.md", cwd=alpha.wl)
    git("commit", "-qm", "notes on alpha", cwd=alpha.wl)
    alpha.append("- [ ] one {run: echo one, id: one}\n")
    p = alpha.run("wake", "--now")
    assert "one: done" in p.stdout and "conflicts in notes.md" in p.stderr
    assert (alpha.wl / "notes.md").read_text() == "alpha's own notes\n"
    assert git("status", "--porcelain", cwd=alpha.wl) == ""  # the merge was undone


def test_nothing_in_the_repository_runs_hooks_or_the_persons_filters_named_by_another_hosts_gitattributes(
        fleet, tmp_path):
    remote, alpha, beta = fleet
    ran = tmp_path / "ran"
    hook = alpha.wl / ".git" / "hooks" / "post-merge"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ntouch {ran}-hook\n")
    hook.chmod(0o755)
    alpha.gitconfig(f"[filter \"lfs\"]\n\tsmudge = touch {ran}-smudge\n\tclean = touch {ran}-clean\n"
                    f"[merge \"evil\"]\n\tdriver = touch {ran}-driver\n")
    lap = laptop(tmp_path, remote)
    (lap / ".gitattributes").write_text("* filter=lfs\n*_worklog.txt merge=evil\n")
    with open(lap / "alpha_worklog.txt", "a") as f:
        f.write("from the laptop\n")
    (lap / "data.bin").write_text("data\n")
    git("add", ".", cwd=lap)
    git("commit", "-qm", "hostile attributes", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    alpha.append("on alpha\n")
    assert alpha.ok("sync").startswith("synced")
    assert not list(tmp_path.glob("ran-*"))
    text = alpha.worklog.read_text()
    assert "from the laptop" in text and "on alpha" in text  # .git/info/attributes kept the union merge


def test_a_credential_helper_in_the_clones_own_config_is_refused(fleet):
    remote, alpha, beta = fleet
    git("config", "credential.helper", "!touch /tmp/never", cwd=alpha.wl)
    p = alpha.run("sync")
    assert p.returncode == 1 and "credential.helper" in p.stderr and "~/.gitconfig" in p.stderr


def test_fleet_init_on_a_remote_that_holds_a_fleet_says_join(fleet, tmp_path):
    remote, alpha, beta = fleet
    gamma = Host(tmp_path, "gamma")
    p = gamma.run("fleet", "init", str(remote))
    assert p.returncode == 1 and "agentd fleet join" in p.stderr and "Traceback" not in p.stderr
    p = gamma.run("fleet", "join", str(tmp_path / "missing.git"))
    assert p.returncode == 1 and "cannot reach" in p.stderr and not (gamma.wl / ".git").exists()



def test_hosts_with_nothing_new_fast_forward_and_push_no_merge_commits_back_and_forth(fleet):
    remote, alpha, beta = fleet
    alpha.append("alpha's line\n")
    alpha.ok("sync")
    beta.ok("sync")  # each host's first sync has its hosts/<host>.json, new (docs/fleet.md#fleet-status)
    alpha.ok("sync")
    before = git("rev-parse", "main", cwd=remote).strip()
    for _ in range(2):
        beta.ok("sync")
        alpha.ok("sync")
    assert git("rev-parse", "main", cwd=remote).strip() == before
    assert git("rev-parse", "HEAD", cwd=beta.wl).strip() == before


def test_a_persons_edit_of_fleet_worklog_on_a_host_is_committed_and_merged_not_stalling_its_syncs(fleet, tmp_path):
    remote, alpha, beta = fleet
    lap = laptop(tmp_path, remote)
    (lap / "fleet_worklog.txt").write_text("# fleet worklog\n")
    git("add", "fleet_worklog.txt", cwd=lap)
    git("commit", "-qm", "the fleet's worklog", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    alpha.ok("sync")
    beta.ok("sync")
    with open(beta.wl / "fleet_worklog.txt", "a") as f:
        f.write("- [ ] written on beta by a person {id: on-beta}\n")  # not committed
    with open(alpha.wl / "fleet_worklog.txt", "a") as f:
        f.write("- [ ] written on alpha by a person {id: on-alpha}\n")
    alpha.ok("sync")  # (committed and pushed by alpha's sync)
    with open(lap / "fleet_worklog.txt", "a") as f:
        f.write("- [ ] written on the laptop {id: on-lap}\n")
    git("commit", "-qam", "a shared task", cwd=lap)
    git("pull", "-q", "--no-rebase", "origin", "main", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    assert beta.ok("sync").startswith("synced")
    there = at_remote(remote, "fleet_worklog.txt")
    assert "on-beta" in there and "on-alpha" in there and "on-lap" in there


def test_git_errors_are_said_by_their_first_fatal_or_error_line_and_the_files_in_the_way(fleet, tmp_path):
    remote, alpha, beta = fleet
    lap = laptop(tmp_path, remote)
    (lap / "notes.md").write_text("the fleet's notes\n")
    git("add", "notes.md", cwd=lap)
    git("commit", "-qm", "notes", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)
    (alpha.wl / "notes.md").write_text("alpha's own, untracked\n")
    p = alpha.run("sync")
    assert p.returncode == 1 and "would be overwritten by merge" in p.stderr and "notes.md" in p.stderr, p.stderr
    remote.rename(tmp_path / "moved.git")
    p = alpha.run("sync")
    assert p.returncode == 1 and "does not appear to be a git repository" in p.stderr, p.stderr


def test_a_former_clone_joins_again_and_a_file_of_its_own_in_the_way_is_named(fleet, tmp_path):
    import shutil

    remote, alpha, beta = fleet
    beta.ok("sync")
    alpha.ok("sync")
    beta.ok("sync")
    shutil.rmtree(beta.wl / ".git")  # .gitattributes, hosts/*.json, the other worklogs stay
    (beta.wl / "hosts" / "beta.json").write_text("{}")  # its own file, whatever it holds
    (beta.wl / "notes.md").write_text("beta's own notes\n")
    beta.ok("fleet", "join", str(remote))
    assert beta.ok("sync").startswith("synced")
    assert (beta.wl / "notes.md").read_text() == "beta's own notes\n"
    shutil.rmtree(beta.wl / ".git")
    with open(beta.wl / "alpha_worklog.txt", "a") as f:
        f.write("changed since\n")
    p = beta.run("fleet", "join", str(remote))
    assert p.returncode != 0 and "alpha_worklog.txt" in p.stderr and not (beta.wl / ".git").exists(), p.stderr


def test_a_join_that_fails_leaves_no_worklog_dir_behind(tmp_path):
    h = Host(tmp_path, "delta")
    p = h.run("fleet", "join", str(tmp_path / "no-such.git"))
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert not h.wl.exists()


def test_a_join_or_init_naming_a_clone_with_a_work_tree_is_refused_before_anything_is_made(fleet, tmp_path):
    """git declines every push to a checked-out branch: no host's entries would ever arrive there."""
    remote, alpha, beta = fleet
    lap = tmp_path / "laptop"
    git("clone", "-q", str(remote), str(lap))
    for args in (("fleet", "join", str(lap)), ("fleet", "join", f"file://{lap}"), ("fleet", "init", str(lap))):
        h = Host(tmp_path, "delta")
        p = h.run(*args)
        assert p.returncode == 1 and "is a clone with a work tree" in p.stderr and "bare" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and not (h.wl / ".git").exists()


def test_a_host_named_fleet_in_any_case_is_refused(fleet):
    remote, alpha, beta = fleet
    h = Host(remote.parent, "Fleet")
    p = h.run("fleet", "join", str(remote))
    assert p.returncode != 0 and "a host named 'Fleet' can't be in a fleet" in p.stderr, p.stderr
