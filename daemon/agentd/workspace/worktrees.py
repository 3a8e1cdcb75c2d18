"""Where a task's work lands: agent workspaces, `{repo: PATH}` worktrees, command tasks' directories.

- An agent task works in a workspace of its own, ``<workspace>/<name>``, where ``name`` is
  its id made a safe single path component (``safe_name``); every run of the task (retries,
  resumes) reuses it.  The config's ``workspace`` is only their parent.
- An agent task with ``{repo: PATH}`` works in a new ``git worktree`` of that repository at
  ``<workspace>/<name>@<run>``, on a new branch ``agentd/<name>-<run>`` from the commit the
  repository's HEAD names (the person's branch and checkout are never touched).  Only the
  worktree is writable in the sandbox: the repository's ``.git`` (objects, refs, hooks,
  config, the worktree's admin dir) stays read-only (a ``repo:`` in or around a path approved for an
  agent to write is refused, and checked again before agentd's own commit: ``agent_could_write``),
  so the agent's own ``git commit`` fails;
  when the run ends, agentd commits what it left with hardened git (``git.py``) and the
  finding names the branch, its commits and a diff summary (``land``); a worktree holding a nested
  repository, or a ``.gitattributes`` (...) that is not a regular file, is left uncommitted
  (``uncommittable``).  A resumed run takes up
  its own worktree again.  A record per worktree (``<state_dir>/worktrees/<run>.json``) is what
  ``agentd worktrees`` lists and ``--prune`` removes (the branches are kept).
- A command task runs in its ``cwd:`` or else in the worklog's directory, never in a directory
  an agent could write (``command_cwd``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

from agentd.errors import WorkspaceError
from agentd.escapes import safe
from agentd.lazyre import lazy
from agentd.redact import redact
from agentd.times import now_iso
from agentd.workspace import git
from agentd.workspace.rundir import amend_manifest


_UNSAFE = lazy(r"[^A-Za-z0-9._-]|\.{2,}")
ACTIVE = ("running", "waiting")  # a run in these states may still write its worktree
MAX_STAT_LINES = 20
MAX_WALK = 500_000  # entries ``uncommittable`` looks at; a worktree holding more is left uncommitted
READ_BY_GIT = (".gitattributes", ".gitignore", ".gitmodules", ".mailmap")  # files git add reads: regular only
ADD_TIMEOUT = 30.0  # agentd's own `git add --all` (a wake waits for it)


def safe_name(task_id: str) -> str:
    """``task_id`` as one path component and one git ref component: letters, digits, ``.``, ``_``
    and ``-``, never ``.``/``..``, a leading ``.`` or ``-``, or a ``.lock`` ending.  An id that had
    to change gets a short hash of itself, so two ids never share a name."""
    name = _UNSAFE.sub("_", task_id).lstrip(".-")[:80]
    while name.endswith((".", ".lock")):
        name = name[:-1]
    if name != task_id or not name:
        name = f"{name[:64]}-{hashlib.sha256(task_id.encode()).hexdigest()[:8]}".lstrip("-")
    return name


def _real(p) -> Path:
    return Path(os.path.realpath(p))


def _inside(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


def attr_path(cfg, value: str) -> Path:
    """A task's path attr (``repo:``, ``cwd:``): ``~`` is the home dir, a relative path is from the
    worklog's directory."""
    home = cfg.env.get("HOME") or os.path.expanduser("~")
    value = str(value)
    if value == "~" or value.startswith("~/"):
        value = home + value[1:]
    return Path(cfg.worklog_dir) / value if not os.path.isabs(value) else Path(value)


# -- agent workspaces -----------------------------------------------------------------------
def planned(cfg, task, run_id: str) -> Path:
    """Where an agent task's run works: its worktree for a ``repo:`` task, else the task's workspace."""
    name = safe_name(task.id)
    return Path(cfg.workspace) / (f"{name}@{run_id}" if task.attrs.get("repo") else name)


def _own_dir(path: Path) -> None:
    """Make ``path`` (in the workspace parent) a directory of its own; refuse a link or a file there."""
    Path(path.parent).mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise WorkspaceError(f"the task's workspace {path} is {kind}; agentd works only in a directory of its "
                             "own there: remove it")


def prepare(job) -> Path:
    """Make the job's workspace (a directory, or a new worktree) and return it.  Raises WorkspaceError."""
    cfg, task = job.cfg, job.task
    path = planned(cfg, task, job.run_id)
    if not task.attrs.get("repo"):
        _own_dir(path)
        return path
    rec = read_record(cfg, job.run_id)
    if rec is not None:  # a resumed run: its own worktree
        if not os.path.isdir(rec["path"]) or os.path.islink(rec["path"]):
            raise WorkspaceError(f"the run's worktree {rec['path']} is gone; RETRY: {task.id} starts a new one")
        return Path(rec["path"])
    repo = attr_path(cfg, task.attrs["repo"])
    if not repo.is_dir():
        raise WorkspaceError(f"repo: {repo} is not a directory")
    if _inside(_real(repo), _real(cfg.workspace)):
        raise WorkspaceError(f"repo: {repo} is inside the agents' workspace {cfg.workspace}: its hooks and config "
                             "are an agent's to write; name a repository of your own")
    if why := agent_could_write(cfg, job.store, repo):
        raise WorkspaceError(why)
    common = Path(git.git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=repo).strip())
    if why := agent_could_write(cfg, job.store, common):
        raise WorkspaceError(why)
    base = git.git("rev-parse", "--verify", "HEAD^{commit}", cwd=repo).strip()
    branch = f"agentd/{safe_name(task.id)}-{job.run_id}"
    Path(cfg.workspace).mkdir(parents=True, exist_ok=True)
    if os.path.lexists(path):
        raise WorkspaceError(f"{path} is there already; agentd makes each run's worktree new")
    git.git("worktree", "add", "--quiet", "-b", branch, str(path), base, cwd=repo)
    admin = _admin_dir(path, common)
    write_record(cfg, {"task": task.id, "run": job.run_id, "repo": str(repo), "common_dir": str(common),
                       "admin_dir": str(admin), "branch": branch, "base": base, "path": str(path),
                       "created_at": now_iso(), "removed_at": None})

    amend_manifest(job.run_dir, worktree={"repo": str(repo), "branch": branch, "base": base, "path": str(path)})
    return path


def prompt_text(cfg, run_id: str, workspace: Path) -> str:
    """The workspace as the agent's prompt names it; for a worktree, what happens to it."""
    rec = read_record(cfg, run_id)
    if rec is None:
        return str(workspace)
    return (f"{workspace} (a git worktree of {rec['repo']} on branch {rec['branch']}; its .git is read-only, so "
            "don't commit: when the run ends agentd commits everything you leave there to that branch)")


def _admin_dir(path: Path, common: Path) -> Path:
    """The worktree's admin dir, read from its fresh ``.git`` file (before any agent ran there)."""
    text = (path / ".git").read_text(encoding="utf-8")
    admin = Path(text.removeprefix("gitdir:").strip())
    if not text.startswith("gitdir:") or _real(admin).parent != _real(common / "worktrees"):
        raise WorkspaceError(f"git made an unexpected worktree at {path} ({text.strip()[:200]!r})")
    return _real(admin)


# -- after the run: agentd commits -------------------------------------------------------------
def _restore_dot_git(rec: dict) -> None:
    """The worktree's ``.git`` file is the agent's to rewrite; put back the one git wrote."""
    dot = Path(rec["path"]) / ".git"
    want = f"gitdir: {rec['admin_dir']}\n"
    try:
        st = os.lstat(dot)
        if stat.S_ISREG(st.st_mode) and dot.read_text(encoding="utf-8") == want:
            return
        shutil.rmtree(dot) if stat.S_ISDIR(st.st_mode) else os.unlink(dot)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError):
        os.unlink(dot)
    fd = os.open(dot, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(want)


def uncommittable(path) -> str | None:
    """Why agentd must run no ``git add`` in the worktree ``path``: it holds a nested repository (a ``.git``
    dir, file or link below its top; ``git add`` would run ``git status`` in it, with the agent's config and
    its filters), or a ``.gitattributes``, ``.gitignore``, ``.gitmodules`` or ``.mailmap`` that is not a regular
    file (a FIFO hangs git), or more than ``MAX_WALK`` entries, or a directory it could not read; else None.
    Links are never followed."""
    root = str(path)
    nested, odd, errors, seen, stack = [], [], [], 0, [root]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                entries = list(it)
        except OSError as e:
            errors.append(f"{os.path.relpath(top, root)} ({e.strerror})")
            continue
        for entry in entries:
            seen += 1
            if seen > MAX_WALK:
                return (f"the worktree holds more than {MAX_WALK} files and directories, more than agentd checks "
                        "for a nested repository before its own git add")
            name, rel = entry.name.lower(), os.path.relpath(entry.path, root)
            try:
                if name == ".git" and (top != root or entry.name != ".git"):  # the top one is git's file
                    nested.append(rel)
                elif name in READ_BY_GIT and not entry.is_file(follow_symlinks=False):
                    odd.append(rel)
                elif entry.is_dir(follow_symlinks=False) and name != ".git":
                    stack.append(entry.path)
            except OSError as e:
                errors.append(f"{rel} ({e.strerror})")

    def names(paths: list[str]) -> str:
        more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
        return ", ".join(safe(p, 200) for p in sorted(paths)[:5]) + more

    if nested:
        return (f"it holds a nested repository ({names(nested)}; a submodule the agent checked out, or a "
                "repository of its own): agentd runs no git inside one; look at it before you commit it")
    if odd:
        return f"{names(odd)} is not a regular file (git would read it, and a FIFO hangs git)"
    if errors:
        return f"agentd could not read all of it to check for a nested repository: {names(errors)}"
    return None


def commit(cfg, rec: dict, status: str, summary: str) -> str | None:
    """Commit everything the run left in its worktree (if anything changed) on its branch; or, running no
    git there, why it left the work uncommitted (``uncommittable``)."""
    _restore_dot_git(rec)
    if why := uncommittable(rec["path"]):
        return why
    where = git.Where(rec["admin_dir"], rec["common_dir"], rec["path"])
    git.git("add", "--all", where=where, cwd=rec["path"], timeout=ADD_TIMEOUT)
    staged = git.git("diff", "--cached", "--name-only", *git.NO_DRIVERS, where=where, cwd=rec["path"])
    if not staged.strip():
        return None
    message = f"agentd: {rec['task']} {status} (run {rec['run']})\n\n{redact(summary, cfg.env)[:4000]}\n"
    git.git("-c", "user.name=agentd", "-c", f"user.email=agentd@{cfg.host}", "commit", "--quiet", "--no-verify",
            "--no-gpg-sign", "-m", message, where=where, cwd=rec["path"])
    return None


def summary_lines(rec: dict) -> list[str]:
    """The branch, its commits (short sha + subject) and a diff summary against the base."""
    where = git.Where(rec["common_dir"])
    rng = f"{rec['base']}..refs/heads/{rec['branch']}"
    log = git.git("log", "--format=%h %s", *git.NO_DRIVERS, rng, "--", where=where).splitlines()
    out = [f"branch {rec['branch']} in {safe(rec['repo'])} (worktree {safe(rec['path'])}), "
           f"{len(log)} commit(s) on {rec['base'][:12]}; agentd never pushes it"]
    out += [f"  {safe(line, 200)}" for line in log[:20]]
    if len(log) > 20:
        out.append(f"  … and {len(log) - 20} more")
    if log:
        stat_lines = git.git("diff", "--stat=120", *git.NO_DRIVERS, rec["base"], f"refs/heads/{rec['branch']}",
                             "--", where=where).rstrip("\n").splitlines()
        body, total = stat_lines[:-1], stat_lines[-1:]
        out += [f"  {safe(line, 200)}" for line in body[:MAX_STAT_LINES]]
        if len(body) > MAX_STAT_LINES:
            out.append(f"  … {len(body) - MAX_STAT_LINES} more file(s)")
        out += [f"  {safe(line.strip(), 200)}" for line in total]
    return out


def land(job, outcome):
    """For a ``repo:`` run: commit what it left and add the branch, commits and diff to the finding."""
    rec = read_record(job.cfg, job.run_id)
    if rec is None:
        return outcome
    why = agent_could_write(job.cfg, job.store, rec["repo"]) or agent_could_write(job.cfg, job.store,
                                                                                  rec["common_dir"])
    if why:  # a write approval granted since: the repository's config and objects may be an agent's now
        outcome.lines.append(f"worktree {rec['path']}: agentd left what the run wrote uncommitted and ran no git "
                             f"there: {why}")
        return outcome
    try:
        if why := commit(job.cfg, rec, outcome.status, outcome.summary):
            outcome.lines.append(f"worktree {rec['path']}: agentd left what the run wrote uncommitted and ran no "
                                 f"git there: {why}")
            return outcome
        outcome.lines += summary_lines(rec)
    except (WorkspaceError, OSError) as e:
        outcome.lines.append(f"worktree {rec['path']}: agentd could not commit what the run left: {e}")
    return outcome


# -- records, listing, pruning -------------------------------------------------------------------
def _records_dir(cfg) -> Path:
    return Path(cfg.state_dir) / "worktrees"


def write_record(cfg, rec: dict) -> None:
    d = _records_dir(cfg)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = d / f".{rec['run']}.json.tmp"
    tmp.write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, d / f"{rec['run']}.json")


def read_record(cfg, run_id: str) -> dict | None:
    try:
        return json.loads((_records_dir(cfg) / f"{run_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def records(cfg) -> list[dict]:
    out = []
    for p in sorted(_records_dir(cfg).glob("*.json")) if _records_dir(cfg).is_dir() else ():
        rec = read_record(cfg, p.stem)
        if rec:
            out.append(rec)
    return out


def listing(cfg, store) -> list[dict]:
    """Each worktree agentd made: task, run, branch, path, commits ahead of its base, state."""
    out = []
    for rec in records(cfg):
        run = store.run(rec["run"]) if store else None
        if rec.get("removed_at") or not os.path.isdir(rec["path"]):
            state = "removed"
        else:
            state = (run or {}).get("status") or "unknown"
            state = state if state in ACTIVE else f"ended ({state})"
        ahead = git.git("rev-list", "--count", f"{rec['base']}..refs/heads/{rec['branch']}",
                        where=git.Where(rec["common_dir"]), check=False).strip()
        out.append({"task": rec["task"], "run": rec["run"], "branch": rec["branch"], "path": rec["path"],
                    "repo": rec["repo"], "base": rec["base"], "ahead": int(ahead) if ahead.isdigit() else None,
                    "state": state})
    return out


def prune(cfg, store) -> list[dict]:
    """Remove the worktrees whose runs ended (the branches stay); the rows of those removed."""
    removed = []
    for row in listing(cfg, store):
        if row["state"] in ACTIVE or row["state"] == "removed":
            continue
        rec = read_record(cfg, row["run"])
        remove(rec)
        write_record(cfg, {**rec, "removed_at": now_iso()})
        removed.append({**row, "state": "removed"})
    return removed


def remove(rec: dict) -> None:
    """The worktree's directory and its admin dir go; its branch and commits stay."""
    path, admin = Path(rec["path"]), Path(rec["admin_dir"])
    if os.path.lexists(path):
        if os.path.islink(path) or not path.is_dir():
            os.unlink(path)
        else:
            shutil.rmtree(path)  # never follows a link inside
    if _real(admin).parent == _real(Path(rec["common_dir"]) / "worktrees") and admin.is_dir():
        shutil.rmtree(admin)


def writable_by_agents(cfg, store) -> list[tuple[str, Path]]:
    """Where an agent could write: the agents' workspace, and each path a person approved for writing."""
    out = [("the agents' workspace", Path(cfg.workspace))]
    if store is not None:
        out += [("a path approved for an agent to write", Path(r["what"])) for r in store.approvals()
                if r.get("kind") == "write" and r.get("answer") == "approve" and r.get("what")]
    return out


def agent_could_write(cfg, store, repo) -> str | None:
    """Why agentd must not run git in ``repo`` (a repository, or its git dir): it is inside the agents'
    workspace, or inside or around a path approved for an agent to write (its config, hooks and objects
    could be an agent's); else None."""
    real = _real(repo)
    for what, w in writable_by_agents(cfg, store):
        wr = _real(w)
        if _inside(real, wr) or (what != "the agents' workspace" and _inside(wr, real)):
            return (f"repo: {repo} is inside or holds {what} ({w}): its config and hooks could be an agent's; "
                    "name a repository no agent may write")
    return None


# -- command tasks ----------------------------------------------------------------------------------
def command_cwd(cfg, task, store=None) -> Path:
    """Where a person's command task runs: its ``cwd:``, else the worklog's directory.  Never a
    directory an agent could write: the agents' workspace (every task's workspace and worktree is in
    it) or a path a person approved for writing.  Raises WorkspaceError."""
    raw = task.attrs.get("cwd")
    d = attr_path(cfg, raw) if raw else Path(cfg.worklog_dir)
    real = _real(d)
    if not real.is_dir():
        raise WorkspaceError(f"cwd: {d} is not a directory")
    for what, w in writable_by_agents(cfg, store):
        if _inside(real, _real(w)):
            raise WorkspaceError(f"not run in {d}: it is inside {what} ({w}), so an agent could have written the "
                                 "code it would run; give the task a `cwd:` of your own")
    return real
