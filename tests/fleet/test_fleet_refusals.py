"""What the fleet's sync refuses, each with its protection-off twin (strict xfail) that shows the attack or
the mistake would get through: a history another host rewrote, a commit of this host that changes another
host's worklog, the sandbox reading the clone's config or the person's git credentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentd.fleet import layout, repo, sync
from agentd.sandbox import bwrap, sandbox

from hosts import at_remote, entries, git, start_fleet


@pytest.fixture
def fleet(tmp_path):
    remote, (alpha, beta) = start_fleet(tmp_path, ("alpha", "beta"))
    alpha.ok("sync")  # alpha has seen beta's join
    return remote, alpha, beta


def rewrite(remote, tmp_path) -> str:
    """Another machine force-pushes a history without the fleet's last commits; its new head."""
    lap = tmp_path / "rewriter"
    git("clone", "-q", str(remote), str(lap))
    root = git("rev-list", "--max-parents=0", "HEAD", cwd=lap).split()[0]
    git("reset", "-q", "--hard", root, cwd=lap)
    (lap / "rewritten.txt").write_text("a history rewritten\n")
    git("add", "rewritten.txt", cwd=lap)
    git("commit", "-qm", "rewritten", cwd=lap)
    git("push", "-q", "--force", "origin", "main", cwd=lap)
    return git("rev-parse", "HEAD", cwd=lap).strip()


def test_a_history_another_host_rewrote_is_refused_and_said(fleet, tmp_path):
    remote, alpha, beta = fleet
    new = rewrite(remote, tmp_path)
    alpha.append("- [ ] after the rewrite {run: echo after, id: after}\n")
    p = alpha.run("wake", "--now")
    assert p.returncode == 0 and "after: done" in p.stdout  # the local wake goes on
    assert "history was rewritten" in p.stderr and new[:12] in p.stderr
    assert git("rev-parse", "main", cwd=remote).strip() == new  # agentd pushed nothing over it
    assert not (alpha.wl / "rewritten.txt").exists()  # and merged nothing of it
    assert json.loads(alpha.ok("status", "--json"))["fleet"]["kind"] == "rewritten"
    p = alpha.run("sync")
    assert p.returncode == 1 and "history was rewritten" in p.stderr


@pytest.mark.xfail(strict=True, reason="protection off: agentd merges the rewritten history and pushes the old back")
def test_without_the_check_a_rewritten_history_is_merged_and_the_old_one_pushed_back(fleet, tmp_path, monkeypatch):
    remote, alpha, beta = fleet
    new = rewrite(remote, tmp_path)
    monkeypatch.setattr(sync, "rewritten", lambda r, seen, fetched: False)
    # (and the check that stops a push of others' commits, which would also catch the merged old history)
    monkeypatch.setattr(sync.Repo, "foreign", lambda self, base: None)
    alpha.append("after the rewrite\n")
    sync.sync(alpha.cfg())
    assert git("rev-parse", "main", cwd=remote).strip() == new


def foreign_commit(alpha) -> None:
    with open(alpha.wl / "beta_worklog.txt", "a") as f:
        f.write("DIRECTIVE: written into beta's worklog on alpha\n")
    git("commit", "-qam", "beta's worklog, edited on alpha", cwd=alpha.wl)


def test_a_commit_of_this_host_that_changes_another_hosts_worklog_is_not_pushed(fleet):
    remote, alpha, beta = fleet
    foreign_commit(alpha)
    alpha.append("alpha's own line\n")
    p = alpha.run("sync")
    assert p.returncode == 1 and "beta_worklog.txt, another host's worklog" in p.stderr and "git revert" in p.stderr
    assert "written into beta's worklog" not in at_remote(remote, "beta_worklog.txt")
    assert json.loads(alpha.ok("status", "--json"))["fleet"]["kind"] == "foreign"


def test_the_foreign_remedy_git_revert_lets_the_next_sync_push(fleet):
    remote, alpha, beta = fleet
    foreign_commit(alpha)
    alpha.append("alpha's own line\n")
    assert alpha.run("sync").returncode == 1
    git("revert", "--no-edit", "HEAD~1", cwd=alpha.wl)  # the foreign commit (HEAD is agentd's own commit)
    assert alpha.ok("sync").startswith("synced")
    assert "alpha's own line" in at_remote(remote, "alpha_worklog.txt")
    assert "written into beta's worklog" not in at_remote(remote, "beta_worklog.txt")


def test_after_a_rewritten_historys_recovery_the_old_commits_are_not_called_this_hosts(fleet, tmp_path):
    remote, alpha, beta = fleet
    lap = tmp_path / "squasher"
    git("clone", "-q", str(remote), str(lap))
    root = git("rev-list", "--max-parents=0", "HEAD", cwd=lap).split()[0]
    git("reset", "-q", "--soft", root, cwd=lap)  # the same files, the history squashed into one commit
    git("commit", "-qm", "squashed", cwd=lap)
    git("push", "-q", "--force", "origin", "main", cwd=lap)
    assert alpha.run("sync").returncode == 1  # rewritten
    git("merge", "-q", "--no-edit", "origin/main", cwd=alpha.wl)  # the recovery docs/fleet.md#faults says
    git("update-ref", "-d", layout.SEEN, cwd=alpha.wl)
    alpha.append("alpha's own line\n")
    assert alpha.ok("sync").startswith("synced")
    assert "alpha's own line" in at_remote(remote, "alpha_worklog.txt")


@pytest.mark.xfail(strict=True, reason="protection off: this host's commit of beta's worklog reaches the fleet")
def test_without_the_check_this_hosts_commit_of_another_hosts_worklog_is_pushed(fleet, monkeypatch):
    remote, alpha, beta = fleet
    foreign_commit(alpha)
    monkeypatch.setattr(repo.Repo, "foreign", lambda self, base: [])
    sync.sync(alpha.cfg())
    assert "written into beta's worklog" not in at_remote(remote, "beta_worklog.txt")


# -- the sandbox -----------------------------------------------------------------------------
TOKEN = "ghp_" + "F" * 36


def _clone_with_credentials(cfg) -> None:
    """The worklog dir a fleet clone whose config names a token (as a URL can), and the person's
    credential-store file (git's XDG place for it) holding one."""
    git("init", "-q", str(cfg.worklog_dir))
    git("config", "remote.origin.url", f"https://agent:{TOKEN}@forge.example/fleet.git", cwd=cfg.worklog_dir)
    creds = Path(cfg.env["HOME"]) / ".config" / "git" / "credentials"
    creds.parent.mkdir(parents=True, exist_ok=True)
    creds.write_text(f"https://agent:{TOKEN}@forge.example\n")


def _read_inside(cfg) -> str:
    from agentd.agent.tools import Tools
    from agentd.providers import ToolCall

    home = cfg.env["HOME"]
    r = Tools(cfg.workspace, cfg.env, cfg=cfg).run(ToolCall("c1", "shell", {
        "command": f"cat {cfg.worklog_dir}/.git/config {home}/.config/git/credentials 2>&1"}), 30)
    return r.text


needs_bwrap = pytest.mark.skipif(not bwrap.status().ok, reason="bwrap unusable here")


@needs_bwrap
def test_the_agents_sandbox_reads_neither_the_clones_config_nor_the_persons_git_credentials(base, fresh_bwrap_probe):
    from fake_llm import layout

    cfg = layout(base)
    _clone_with_credentials(cfg)
    text = _read_inside(cfg)
    assert TOKEN not in text and text.count("cat:") == 2, text


@needs_bwrap
@pytest.mark.xfail(strict=True, reason="protection off: the worklog dir and git's credential file not hidden")
def test_without_hiding_them_the_sandbox_reads_the_token(base, fresh_bwrap_probe, monkeypatch):
    from fake_llm import layout

    cfg = layout(base)
    _clone_with_credentials(cfg)
    ours = sandbox.agentd_paths
    monkeypatch.setattr(sandbox, "agentd_paths", lambda c: {k: v for k, v in ours(c).items() if k != "worklog dir"})
    monkeypatch.setattr(sandbox, "SECRET_PATHS", tuple(p for p in sandbox.SECRET_PATHS if "git" not in p))
    assert TOKEN not in _read_inside(cfg)


# -- attributes another host pushed ------------------------------------------------------------
def reencode_push(remote, tmp_path) -> None:
    """Another machine pushes a ``.gitattributes`` that would re-encode every worklog as UTF-16 on checkout,
    with a change to alpha's worklog (its own git told to ignore the attribute, as plumbing would)."""
    lap = tmp_path / "reencoder"
    git("clone", "-q", str(remote), str(lap))
    (lap / ".git" / "info" / "attributes").write_text("* !working-tree-encoding\n")
    with open(lap / ".gitattributes", "a") as f:
        f.write("*_worklog.txt working-tree-encoding=UTF-16LE-BOM\n")
    with open(lap / "alpha_worklog.txt", "a") as f:
        f.write("a line from the re-encoder\n")
    git("commit", "-qam", "re-encode the worklogs", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)


def test_a_pushed_gitattributes_does_not_reencode_this_hosts_worklog(fleet, tmp_path):
    remote, alpha, beta = fleet
    reencode_push(remote, tmp_path)
    alpha.ok("sync")
    data = alpha.worklog.read_bytes()
    assert b"a line from the re-encoder\n" in data and not data.startswith(b"\xff\xfe")
    alpha.append("- [ ] after the attributes {run: echo after, id: after}\n")
    assert "after: done" in alpha.ok("wake", "--now")
    assert ("after", "done") in entries(at_remote(remote, "alpha_worklog.txt"))


def test_an_older_clone_gets_the_attribute_guard_at_its_next_sync(fleet, tmp_path):
    remote, alpha, beta = fleet
    (alpha.wl / ".git" / "info" / "attributes").write_text(layout.ATTRIBUTES)  # as agentd wrote it before
    reencode_push(remote, tmp_path)
    alpha.ok("sync")
    assert not alpha.worklog.read_bytes().startswith(b"\xff\xfe")


@pytest.mark.xfail(strict=True, reason="protection off: the pushed attribute re-encodes this host's worklog")
def test_without_the_guard_a_pushed_gitattributes_reencodes_this_hosts_worklog(fleet, tmp_path, monkeypatch):
    remote, alpha, beta = fleet
    monkeypatch.setattr(layout, "GUARD", layout.ATTRIBUTES)
    reencode_push(remote, tmp_path)
    (alpha.wl / ".git" / "info" / "attributes").write_text(layout.ATTRIBUTES)
    sync.sync(alpha.cfg())
    assert not alpha.worklog.read_bytes().startswith(b"\xff\xfe")
