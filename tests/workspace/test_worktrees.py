"""Where agent work lands: a workspace per task, and `{repo: PATH}` tasks in git worktrees (real git,
real bwrap, the real agent loop against the loopback fake model)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from agentd.workspace import git, worktrees
from agentd import runners
from agentd.errors import WorkspaceError
from agentd.store.store import Store
from agentd.tasks.task import Task
from conftest import run_cli
from fake_llm import finish, make_config, reply

ANT_KEY = "sk-ant-test-0123456789abcdef"


def sh(*args, cwd=None) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path) -> Path:
    """A person's repository: one commit on main, a hooks dir, a dirty index and worktree of their own."""
    path.mkdir(parents=True)
    sh("git", "init", "-q", "-b", "main", str(path))
    sh("git", "-C", str(path), "config", "user.name", "Person")
    sh("git", "-C", str(path), "config", "user.email", "person@example.org")
    (path / "bench.py").write_text("print('bench')\n")
    sh("git", "-C", str(path), "add", "bench.py")
    sh("git", "-C", str(path), "commit", "-q", "-m", "the person's work")
    (path / "wip.txt").write_text("half done\n")  # the person's uncommitted work
    (path / "bench.py").write_text("print('bench, edited')\n")
    sh("git", "-C", str(path), "add", "bench.py")  # staged: the index is the person's too
    return path


def snapshot(repo: Path) -> dict:
    """What of the person's checkout must never change: HEAD, its branch, index, hooks, files."""
    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "-"

    hooks = repo / ".git" / "hooks"
    return {"HEAD": (repo / ".git" / "HEAD").read_text(), "main": sh("git", "-C", str(repo), "rev-parse", "main"),
            "index": digest(repo / ".git" / "index"), "config": digest(repo / ".git" / "config"),
            "hooks": sorted((p.name, digest(p)) for p in hooks.iterdir()) if hooks.is_dir() else [],
            "files": sorted((p.name, digest(p)) for p in repo.iterdir() if p.is_file())}


def cfg_for(tmp_path, fake, **values):
    return make_config(tmp_path, {"provider": "anthropic", **values},
                       {"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_BASE_URL": fake.url})


def run_task(cfg, task, run_id="r1"):
    store = Store(cfg.store_path)
    if not store.run(run_id):
        store.start_run(run_id=run_id, task_id=task.id, kind=task.kind, title=task.title, status="running",
                        started_at="2025-01-01T00:00:00Z")
    job = runners.Job(cfg, store, run_id, task, {}, cfg.state_dir / "runs" / run_id, lambda line: None)
    out = runners.run(job)
    store.update_run(run_id, status=out.status)
    return out, job


def shell(cmd):
    return ("shell", {"command": cmd})


# -- a workspace per task -----------------------------------------------------------------------

def test_each_agent_task_works_in_a_workspace_of_its_own_and_its_runs_reuse_it(tmp_path, fake):
    cfg = cfg_for(tmp_path, fake)
    a = Task(id="alpha", title="a", kind="task")
    b = Task(id="beta", title="b", kind="task")
    fake.script(reply(tools=[shell("echo a >> mine.txt; ls ..")]), finish("done", "wrote mine.txt for alpha"),
                reply(tools=[shell("echo b >> mine.txt")]), finish("done", "wrote mine.txt for beta"),
                reply(tools=[shell("echo again >> mine.txt")]), finish("done", "alpha's second run"))
    run_task(cfg, a, "r1")
    run_task(cfg, b, "r2")
    run_task(cfg, a, "r3")
    assert (cfg.workspace / "alpha" / "mine.txt").read_text() == "a\nagain\n"
    assert (cfg.workspace / "beta" / "mine.txt").read_text() == "b\n"
    assert not (cfg.workspace / "mine.txt").exists()
    system = fake.requests[0]["body"]["system"][0]["text"]
    assert str(cfg.workspace / "alpha") in system
    # the shell sees only its own: `ls ..` lists nothing of beta's (run later) nor the parent's files
    assert "beta" not in json.dumps(fake.requests[1]["body"]["messages"][-1])


@pytest.mark.parametrize("task_id, name", [
    ("plain-id_1.x", "plain-id_1.x"),
    ("a:b", None), ("a..b", None), ("x.lock", None), (".hidden", None), ("-dash", None), ("a/../../etc", None),
])
def test_a_task_id_becomes_one_safe_path_and_branch_component(task_id, name):
    got = worktrees.safe_name(task_id)
    if name:
        assert got == name
    assert "/" not in got and ".." not in got and not got.startswith((".", "-")) and not got.endswith(".lock")
    assert got not in (".", "..", "") and got != task_id or task_id == "plain-id_1.x"
    subprocess.run(["git", "check-ref-format", f"refs/heads/agentd/{got}-r1"], check=True)


def test_ids_that_differ_only_in_unsafe_characters_get_different_workspaces():
    assert worktrees.safe_name("a:b") != worktrees.safe_name("a_b")
    assert worktrees.safe_name("a:b") != worktrees.safe_name("a;b")


def test_a_link_where_the_tasks_workspace_would_be_is_refused_not_followed(tmp_path, fake):
    cfg = cfg_for(tmp_path, fake)
    secret = tmp_path / "secret"
    secret.mkdir()
    cfg.workspace.mkdir(parents=True)
    (cfg.workspace / "t1").symlink_to(secret)
    out, _ = run_task(cfg, Task(id="t1", title="t", kind="task"))
    assert out.status == "blocked" and "symlink" in out.summary
    assert fake.requests == [] and list(secret.iterdir()) == []


# -- {repo: PATH}: a worktree on a branch of its own ----------------------------------------------

def test_a_repo_task_leaves_a_branch_with_its_commits_and_the_persons_checkout_is_untouched(
        tmp_path, fake, worklog):
    repo = make_repo(tmp_path / "proj")
    before = snapshot(repo)
    worklog.write_text(f"DIRECTIVE: speed up the bench {{id: speed, repo: {repo}}}\n")
    fake.script(reply(tools=[shell("echo fast > fast.py && git add fast.py && git commit -qm mine; "
                                   "echo commit-exit=$?; cat bench.py")]),
                finish("done", "Added fast.py with the faster bench."))
    r = run_cli("wake", "--now", env={"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_BASE_URL": fake.url})
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = json.loads(run_cli("runs", "--json").stdout)[0]["run_id"]
    branch = f"agentd/speed-{run_id}"
    # inside, the repository's .git is read-only: the agent's own commit failed; it saw the committed file
    tool_out = json.dumps(fake.requests[1]["body"]["messages"][-1])
    assert "commit-exit=0" not in tool_out and "print('bench')" in tool_out
    log = sh("git", "-C", str(repo), "log", "--format=%s", f"main..{branch}").splitlines()
    assert log == [f"agentd: speed done (run {run_id})"]
    assert sh("git", "-C", str(repo), "show", f"{branch}:fast.py") == "fast\n"
    assert sh("git", "-C", str(repo), "merge-base", "main", branch).strip() == before["main"].strip()
    assert snapshot(repo) == before  # HEAD, main, index, config, hooks and files: the person's, as they were
    text = worklog.read_text()
    sha = sh("git", "-C", str(repo), "rev-parse", "--short", branch).strip()
    assert f"branch {branch} in {repo}" in text and f"{sha} agentd: speed done" in text
    assert "1 file changed, 1 insertion(+)" in text and "fast.py" in text
    manifest = json.loads((Path(json.loads(run_cli("runs", "--json").stdout)[0]["run_dir"]) / "manifest.json")
                          .read_text())
    assert manifest["workspace"].endswith(f"speed@{run_id}") and manifest["worktree"]["branch"] == branch

    listed = json.loads(run_cli("worktrees", "--json").stdout)
    assert [(w["task"], w["run"], w["branch"], w["ahead"], w["state"]) for w in listed] == [
        ("speed", run_id, branch, 1, "ended (done)")]
    assert Path(listed[0]["path"]).is_dir()
    text_out = run_cli("worktrees").stdout
    assert branch in text_out and "ended (done)" in text_out
    pruned = run_cli("worktrees", "--prune")
    assert pruned.returncode == 0 and "kept" in pruned.stdout, pruned.stdout + pruned.stderr
    assert not Path(listed[0]["path"]).exists()
    assert sh("git", "-C", str(repo), "rev-parse", "--verify", branch)  # the branch stays
    assert "speed@" not in sh("git", "-C", str(repo), "worktree", "list")
    assert json.loads(run_cli("worktrees", "--json").stdout)[0]["state"] == "removed"
    assert snapshot(repo) == before


def plant(repo: Path, marker: Path) -> None:
    """Code in the repository's config and hooks that would leave ``marker`` if any git call ran it."""
    script = repo.parent / "planted.sh"
    script.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {marker}\nexit 0\n")
    script.chmod(0o755)
    sh("git", "-C", str(repo), "config", "core.fsmonitor", str(script))
    sh("git", "-C", str(repo), "config", "core.pager", str(script))
    sh("git", "-C", str(repo), "config", "filter.planted.clean", str(script))
    sh("git", "-C", str(repo), "config", "filter.planted.smudge", str(script))
    sh("git", "-C", str(repo), "config", "diff.planted.textconv", str(script))
    (repo / ".gitattributes").write_text("*.py filter=planted diff=planted\n")
    for hook in ("post-checkout", "pre-commit", "commit-msg", "post-commit", "post-index-change",
                 "reference-transaction"):
        (repo / ".git" / "hooks" / hook).write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        (repo / ".git" / "hooks" / hook).chmod(0o755)


def unharden(monkeypatch) -> None:
    """git.py's hardening switched off: git as agentd would run it plainly."""
    monkeypatch.setattr(git, "prepared", lambda where, cwd, env: env)
    monkeypatch.setattr(git, "hardened_env", lambda env: dict(os.environ if env is None else env))


@pytest.mark.parametrize("hardened", [True, False], ids=["hardened", "hardening-off"])
def test_planted_fsmonitor_hooks_and_filters_never_run_during_agentds_own_git_calls(
        tmp_path, fake, monkeypatch, hardened):
    repo = make_repo(tmp_path / "proj")
    marker, inner = tmp_path / "ran-from-repo.txt", tmp_path / "ran-from-worktree.txt"
    plant(repo, marker)
    before = snapshot(repo)
    if not hardened:
        unharden(monkeypatch)
    cfg = cfg_for(tmp_path, fake)
    # from inside: a gitdir of the agent's own with an fsmonitor, and the worktree's .git pointed at it
    evil = (f"git init -q --bare evil.git && printf '#!/bin/sh\\necho wt >> {inner}\\n' > evil.sh && "
            f"chmod +x evil.sh && git --git-dir=evil.git config core.fsmonitor $PWD/evil.sh && "
            f"git --git-dir=evil.git config core.worktree $PWD && echo \"gitdir: $PWD/evil.git\" > .git && "
            "echo new > new.py && echo done-planting")
    fake.script(reply(tools=[shell(evil)]), finish("done", "Planted what I could and wrote new.py."))
    task = Task(id="t1", title="work on it", kind="task", attrs={"repo": str(repo)})
    out, job = run_task(cfg, task)
    assert out.status == "done", out
    if not hardened:
        assert marker.exists()  # plain git runs what the repository plants: this test can fail
        return
    assert not marker.exists(), marker.read_text()
    assert not inner.exists(), inner.read_text()
    branch = "agentd/t1-r1"
    assert sh("git", "-C", str(repo), "show", f"{branch}:new.py") == "new\n"  # committed, not filtered
    assert (job.workspace / ".git").read_text().startswith("gitdir: " + str(repo / ".git" / "worktrees"))
    assert any(line.startswith(f"branch {branch}") for line in out.lines)
    assert snapshot(repo) == before
    worktrees.prune(cfg, Store(cfg.store_path))
    assert not marker.exists() and not inner.exists()


def test_a_repo_inside_the_agents_workspace_is_refused(tmp_path, fake):
    cfg = cfg_for(tmp_path, fake)
    repo = make_repo(cfg.workspace / "other" / "proj")
    out, _ = run_task(cfg, Task(id="t1", title="t", kind="task", attrs={"repo": str(repo)}))
    assert out.status == "blocked" and "inside the agents' workspace" in out.summary
    assert fake.requests == []


def test_a_repo_that_is_not_a_git_repository_blocks_the_task_saying_so(tmp_path, fake):
    cfg = cfg_for(tmp_path, fake)
    (tmp_path / "plain").mkdir()
    out, _ = run_task(cfg, Task(id="t1", title="t", kind="task", attrs={"repo": str(tmp_path / "plain")}))
    assert out.status == "blocked" and "git rev-parse failed" in out.summary and "not a git repository" in out.summary


def test_repo_on_a_command_task_is_refused_not_ignored(tmp_path, fake):
    cfg = cfg_for(tmp_path, fake)
    repo = make_repo(tmp_path / "proj")
    task = Task(id="c1", title="c", kind="command", attrs={"run": "touch ran", "repo": str(repo)})
    out, _ = run_task(cfg, task)
    assert out.status == "blocked" and "`repo:` is for agent tasks" in out.summary
    assert not (repo / "ran").exists()


def test_a_resumed_repo_run_takes_up_its_own_worktree_again(tmp_path, fake):
    repo = make_repo(tmp_path / "proj")
    cfg = cfg_for(tmp_path, fake)
    task = Task(id="t1", title="t", kind="task", attrs={"repo": str(repo)})
    fake.script(reply(tools=[shell("echo one > one.txt")]), finish("done", "Wrote one.txt in the worktree."))
    out1, job1 = run_task(cfg, task, "r1")
    fake.script(reply(tools=[shell("ls")]), finish("done", "Listed the worktree again."))
    job = runners.Job(cfg, Store(cfg.store_path), "r1", task, {}, cfg.state_dir / "runs" / "r1", lambda s: None,
                      resume=True)
    assert worktrees.prepare(job) == job1.workspace
    assert len(worktrees.records(cfg)) == 1


def test_what_a_repo_run_left_is_committed_even_when_agentd_itself_fails_mid_run(tmp_path, fake, monkeypatch):
    from agentd.runners import agent as api_runner

    repo = make_repo(tmp_path / "proj")
    cfg = cfg_for(tmp_path, fake)

    def crash(job):
        (job.workspace / "half.txt").write_text("half a result\n")
        raise RuntimeError("agentd's own bug")

    monkeypatch.setattr(api_runner, "run", crash)
    with pytest.raises(RuntimeError):
        run_task(cfg, Task(id="t1", title="t", kind="task", attrs={"repo": str(repo)}))
    assert sh("git", "-C", str(repo), "show", "agentd/t1-r1:half.txt") == "half a result\n"
    assert sh("git", "-C", str(repo), "log", "-1", "--format=%s", "agentd/t1-r1") == "agentd: t1 interrupted (run r1)\n"


# -- a repository config an agent could write (issue 17: a write approval covering the repo's .git) ----------

KEY = "sk-ant-api03-AGENTD-REAL-KEY-in-agentds-env"


def worktree_of(repo: Path, ws: Path) -> dict:
    """A worktree as ``worktrees.prepare`` makes it, and its record."""
    path = ws / "t@r1"
    ws.mkdir(parents=True, exist_ok=True)
    common = Path(git.git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=repo).strip())
    base = git.git("rev-parse", "--verify", "HEAD^{commit}", cwd=repo).strip()
    git.git("worktree", "add", "--quiet", "-b", "agentd/t-r1", str(path), base, cwd=repo)
    return {"task": "t", "run": "r1", "repo": str(repo), "common_dir": str(common), "branch": "agentd/t-r1",
            "admin_dir": str(worktrees._admin_dir(path, common)), "base": base, "path": str(path)}


def agentd_commits(rec: dict) -> str:
    """agentd's own post-run git calls (commit, then the finding's summary); what it said."""
    from types import SimpleNamespace

    try:
        if why := worktrees.commit(SimpleNamespace(env=dict(os.environ), host="h"), rec, "done", "summary"):
            return f"refused: {why}"
        return "\n".join(worktrees.summary_lines(rec))
    except WorkspaceError as e:
        return f"refused: {e}"


def switch_off(monkeypatch, off: tuple) -> None:
    """git.py's protections named in ``off`` switched off (the test's own doing, never the product's)."""
    if "allow_protocol_env" in off:
        monkeypatch.delitem(git.ENV, "GIT_ALLOW_PROTOCOL")
    if "no_lazy_fetch_env" in off:
        monkeypatch.delitem(git.ENV, "GIT_NO_LAZY_FETCH")
    if "overrides" in off:
        monkeypatch.setattr(git, "NEUTRALISE", {})  # and the fixed per-protocol keys: protocol.allow only
        monkeypatch.setattr(git, "HARDENING", tuple(p for p in git.HARDENING if not p[0].endswith(".allow")
                                                    or p[0] == "protocol.allow"))
    if "refusal" in off:
        monkeypatch.setattr(git, "refuse_unneutralised", lambda found, pairs: None)
    if "scrub" in off:
        monkeypatch.setattr(git, "scrubbed", lambda env: env)


TRANSPORT = ("allow_protocol_env", "no_lazy_fetch_env", "overrides", "refusal")


@pytest.mark.parametrize("off", [(), TRANSPORT[:1], TRANSPORT[1:2], TRANSPORT[:2], TRANSPORT[:3], TRANSPORT,
                                 (*TRANSPORT, "scrub")],
                         ids=["hardened", "no-allow-protocol-env", "no-lazy-fetch-env", "both-envs-off",
                              "only-refusal-left", "transport-open", "transport-open-and-keys-in"])
def test_a_repo_config_turning_on_the_ext_transport_never_runs_its_command_in_agentds_git(
        tmp_path, monkeypatch, off):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)  # as the systemd unit gives agentd
    repo = make_repo(tmp_path / "proj")
    rec = worktree_of(repo, tmp_path / "ws")
    (Path(rec["path"]) / "new.txt").write_text("agent work\n")
    marker = tmp_path / "ran-outside.txt"
    # the agent, granted write to the repository, turns on `ext::` for itself (protocol.ext.allow beats
    # protocol.allow), makes the repository a partial clone of an ext:: remote and drops one object
    with open(Path(rec["common_dir"]) / "config", "a") as f:
        f.write(f'[core]\n\trepositoryformatversion = 1\n[extensions]\n\tpartialClone = origin\n'
                f'[remote "origin"]\n\turl = ext::sh -c env>{marker}\n\tpromisor = true\n'
                '[protocol "ext"]\n\tallow = always\n')
    tree = sh("git", "-C", str(repo), "rev-parse", f"{rec['base']}^{{tree}}").strip()
    os.unlink(Path(rec["common_dir"]) / "objects" / tree[:2] / tree[2:])
    switch_off(monkeypatch, off)
    said = agentd_commits(rec)
    if off == TRANSPORT[:3]:
        assert "refused: " in said and "protocol.ext.allow" in said and not marker.exists()
        return
    if set(TRANSPORT) <= set(off):  # the attack works: this test can fail
        assert marker.exists()
        assert (KEY in marker.read_text()) == ("scrub" in off)  # and without the scrub it had the key
        return
    assert not marker.exists(), marker.read_text()


@pytest.mark.parametrize("off", [(), ("overrides",), ("refusal",), ("overrides", "refusal")],
                         ids=["hardened", "no-overrides", "no-refusal", "both-off"])
def test_a_filter_named_with_an_equals_sign_is_emptied_or_refused_never_run(tmp_path, monkeypatch, off):
    repo = make_repo(tmp_path / "proj")
    rec = worktree_of(repo, tmp_path / "ws")
    marker = tmp_path / "filter-ran.txt"
    # `-c filter.a=b.clean=` is split at the first `=`: it sets `filter.a`, and `filter.a=b.clean` stays
    sh("git", "-C", str(repo), "config", "filter.a=b.clean", f"touch {marker}; cat")
    (Path(rec["path"]) / ".gitattributes").write_text("* filter=a=b\n")
    (Path(rec["path"]) / "new.txt").write_text("agent work\n")
    switch_off(monkeypatch, off)
    said = agentd_commits(rec)
    if off == ("overrides", "refusal"):  # the attack works: this test can fail
        assert marker.exists()
        return
    assert not marker.exists()
    if off == ("overrides",):
        assert "refused: " in said and "filter.a=b.clean" in said, said
    else:
        assert sh("git", "-C", str(repo), "show", "agentd/t-r1:new.txt") == "agent work\n", said


def test_agentds_git_children_get_no_key_of_agentds_environment_or_env_file(tmp_path, monkeypatch):
    conf = tmp_path / "xdg"
    (conf / "agentd").mkdir(parents=True)
    (conf / "agentd" / "env").write_text("PLAIN_NAME=plain-value-from-the-env-file\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(conf))
    monkeypatch.setenv("PLAIN_NAME", "plain-value-from-the-env-file")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("COPIED", KEY)
    env = git.hardened_env(None)
    assert "PLAIN_NAME" not in env and "ANTHROPIC_API_KEY" not in env and "COPIED" not in env
    assert env["GIT_ALLOW_PROTOCOL"] == "" and env["PATH"] == os.environ["PATH"]


def approve_write(store, path, ap="ap-1") -> None:
    store.add_approval(id=ap, run_id="r-other", task_id="helper", call_id="c1", kind="write", what=str(path),
                       why="to save results", asked_at="2025-01-01T00:00:00Z", expires_at="2099-01-01T00:00:00Z",
                       answer="approve", answered_at="2025-01-01T00:01:00Z")


@pytest.mark.parametrize("granted", ["repo", "parent", "dot-git", "inside"])
@pytest.mark.parametrize("checked", [True, False], ids=["checked", "check-off"])
def test_a_repo_in_or_around_a_path_approved_for_an_agent_to_write_is_refused(tmp_path, fake, monkeypatch,
                                                                               granted, checked):
    repo = make_repo(tmp_path / "home" / "proj")
    cfg = cfg_for(tmp_path, fake)
    path = {"repo": repo, "parent": repo.parent, "dot-git": repo / ".git", "inside": repo / ".git" / "hooks"}[granted]
    approve_write(Store(cfg.store_path), path)
    if not checked:
        monkeypatch.setattr(worktrees, "agent_could_write", lambda cfg, store, repo: None)
    fake.script(finish("done", "Nothing to do."))
    out, _ = run_task(cfg, Task(id="t1", title="t", kind="task", attrs={"repo": str(repo)}))
    if not checked:  # without the check agentd makes the worktree and runs its git there: this test can fail
        assert out.status == "done"
        return
    assert out.status == "blocked" and "approved for an agent to write" in out.summary, out
    assert fake.requests == [] and sh("git", "-C", str(repo), "branch", "--list", "agentd/*") == ""


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "check-off"])
def test_a_write_approval_of_the_repo_granted_during_the_run_leaves_the_work_uncommitted(
        tmp_path, fake, monkeypatch, checked):
    repo = make_repo(tmp_path / "proj")
    cfg = cfg_for(tmp_path, fake)
    marker = tmp_path / "filter-ran.txt"
    if not checked:
        monkeypatch.setattr(worktrees, "agent_could_write", lambda cfg, store, repo: None)
        monkeypatch.setattr(git, "refuse_unneutralised", lambda found, pairs: None)
        monkeypatch.setattr(git, "NEUTRALISE", {})

    def granted_then_planted(job):  # mid-run, a person grants write to the repository; the agent plants a filter
        approve_write(job.store, repo / ".git")
        sh("git", "-C", str(repo), "config", "filter.x.clean", f"touch {marker}; cat")
        (job.workspace / ".gitattributes").write_text("* filter=x\n")
        (job.workspace / "new.txt").write_text("work\n")
        return runners.Outcome("done", "wrote new.txt")

    from agentd.runners import agent as api_runner

    monkeypatch.setattr(api_runner, "run", granted_then_planted)
    out, job = run_task(cfg, Task(id="t1", title="t", kind="task", attrs={"repo": str(repo)}))
    if not checked:
        assert marker.exists()  # agentd's own `git add --all` ran the planted filter: this test can fail
        return
    assert not marker.exists()
    assert any("left what the run wrote uncommitted" in line for line in out.lines), out.lines
    assert (job.workspace / "new.txt").exists()
    assert sh("git", "-C", str(repo), "rev-list", "--count", "main..agentd/t1-r1").strip() == "0"


def test_a_write_approval_covering_a_repo_tasks_repository_is_refused(tmp_path, fake):
    from agentd.agent import approvals

    repo = make_repo(tmp_path / "proj")
    cfg = cfg_for(tmp_path, fake)
    store = Store(cfg.store_path)
    worktrees.write_record(cfg, {"task": "t1", "run": "r1", "repo": str(repo), "common_dir": str(repo / ".git"),
                                 "admin_dir": str(repo / ".git" / "worktrees" / "x"), "branch": "agentd/t1-r1",
                                 "base": "0" * 40, "path": str(cfg.workspace / "t1@r1"), "removed_at": None})
    for what in (repo, repo / ".git", repo / ".git" / "hooks", tmp_path):
        real, why = approvals.bound_path(cfg, store, cfg.workspace, str(what))
        assert real is None and "the repository task t1 works on" in why, (what, why)
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert approvals.bound_path(cfg, store, cfg.workspace, str(other)) == (str(other), None)


# -- what agentd's own `git add` would read in a worktree (issue 17: a nested repository, a FIFO) ---------------

def nested_repo_with_filter(where: Path, marker: Path) -> None:
    """What an agent can leave in its worktree: a repository of its own whose config names a clean filter for
    one of its files (agentd's overrides empty only the filters the outer repository's config names)."""
    where.mkdir(parents=True)
    sh("git", "init", "-q", str(where))
    (where / "f").write_text("x\n")
    (where / ".gitattributes").write_text("f filter=pwn\n")
    sh("git", "-C", str(where), "add", "f", ".gitattributes")
    sh("git", "-C", str(where), "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "mine")
    with open(where / ".git" / "config", "a") as f:
        f.write(f'[filter "pwn"]\n\tclean = id > {marker}; cat\n')


@pytest.mark.parametrize("walked", [True, False], ids=["walked", "walk-off"])
def test_a_nested_repository_in_the_worktree_leaves_the_work_uncommitted_and_its_filter_never_runs(
        tmp_path, monkeypatch, walked):
    repo = make_repo(tmp_path / "proj")
    rec = worktree_of(repo, tmp_path / "ws")
    wt, marker = Path(rec["path"]), tmp_path / "filter-ran.txt"
    if not walked:
        monkeypatch.setattr(worktrees, "uncommittable", lambda path: None)
    nested_repo_with_filter(wt / "vendor", marker)
    (wt / "new.txt").write_text("work\n")
    first = agentd_commits(rec)  # when the run waits: `vendor` would be recorded as a gitlink
    assert not marker.exists()
    (wt / "vendor" / "f").write_text("x\n")  # the resumed run touches the nested file: same bytes, new mtime
    os.utime(wt / "vendor" / "f", (1_000_000_000, 1_000_000_000))
    second = agentd_commits(rec)  # at the end of the resumed run
    if not walked:  # agentd's `git add --all` ran git status in the nested repo, and its filter: this test can fail
        assert marker.exists()
        return
    assert not marker.exists(), marker.read_text()
    for said in (first, second):
        assert said.startswith("refused: ") and "nested repository" in said and "vendor/.git" in said, said
    assert sh("git", "-C", str(repo), "rev-list", "--count", "main..agentd/t-r1").strip() == "0"
    assert (wt / "new.txt").read_text() == "work\n"


def test_a_submodule_the_agent_checked_out_leaves_the_work_uncommitted(tmp_path):
    lib = make_repo(tmp_path / "lib")
    repo = make_repo(tmp_path / "proj")
    sh("git", "-C", str(repo), "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    sh("git", "-C", str(repo), "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "a submodule")
    rec = worktree_of(repo, tmp_path / "ws")
    wt = Path(rec["path"])
    assert list((wt / "lib").iterdir()) == []  # git leaves the submodule's directory empty in a new worktree
    (wt / "lib" / ".git").write_text(f"gitdir: {repo / '.git' / 'modules' / 'lib'}\n")  # the agent's checkout
    said = agentd_commits(rec)
    assert said.startswith("refused: ") and "lib/.git" in said, said


@pytest.mark.parametrize("name", [".gitattributes", "sub/.gitignore"])
@pytest.mark.parametrize("walked", [True, False], ids=["walked", "walk-off"])
def test_a_fifo_named_like_a_file_git_reads_leaves_the_work_uncommitted_without_a_git_add(
        tmp_path, fake, monkeypatch, name, walked):
    from agentd.runners import agent as api_runner

    repo = make_repo(tmp_path / "proj")
    cfg = cfg_for(tmp_path, fake)
    if not walked:
        monkeypatch.setattr(worktrees, "uncommittable", lambda path: None)
        monkeypatch.setattr(worktrees, "ADD_TIMEOUT", 2.0)  # else the off case hangs for the whole timeout

    def fifo(job):
        (job.workspace / "sub").mkdir()
        os.mkfifo(job.workspace / name)
        (job.workspace / "new.txt").write_text("work\n")
        return runners.Outcome("done", "wrote new.txt")

    monkeypatch.setattr(api_runner, "run", fifo)
    out, job = run_task(cfg, Task(id="t1", title="t", kind="task", attrs={"repo": str(repo)}))
    if not walked:  # agentd's `git add --all` opened the FIFO and hung until killed: this test can fail
        assert any("git add took more than 2 s" in line for line in out.lines), out.lines
        return
    said = [line for line in out.lines if "left what the run wrote uncommitted" in line]
    assert said and name in said[0] and "not a regular file" in said[0], out.lines
    assert sh("git", "-C", str(repo), "rev-list", "--count", "main..agentd/t1-r1").strip() == "0"
    assert (job.workspace / "new.txt").exists()


def test_a_nested_git_link_or_file_and_a_linked_gitignore_are_named_escaped_and_refused(tmp_path):
    wt = tmp_path / "wt"
    (wt / "a\x1b[2Jb").mkdir(parents=True)
    (wt / ".git").write_text("gitdir: elsewhere\n")  # the top one is git's own
    (wt / "a\x1b[2Jb" / ".git").symlink_to(tmp_path)
    said = worktrees.uncommittable(wt)
    assert "nested repository" in said and "\x1b" not in said and "a\\x1b[2Jb/.git" in said, said
    os.unlink(wt / "a\x1b[2Jb" / ".git")
    assert worktrees.uncommittable(wt) is None
    (wt / "a\x1b[2Jb" / ".gitignore").symlink_to("/dev/zero")
    assert "is not a regular file" in worktrees.uncommittable(wt)
