"""`agentd fleet init|join REPO_URL`: the worklog dir becomes a clone of the repository the hosts share.

``init`` starts a fleet on an empty remote: a ``.gitattributes`` with git's union merge for the worklogs,
and this host's worklog, in a first commit it pushes.  ``join`` clones a fleet's branch into the worklog
dir; a worklog of this host already there keeps its bytes: it is committed first and merged with the
fleet's (union), never replaced.  Both refuse a worklog dir that is already a git repository of another
remote, and say what to do.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from agentd.errors import FleetError
from agentd.fleet import hostfile, layout, state
from agentd.fleet.layout import ATTRIBUTES, FETCHED, SEEN
from agentd.fleet.repo import Repo


def _refuse_working_clone(url: str) -> None:
    """Refuse a local path (or file:// URL) to a clone with a work tree: git declines every push to its
    checked-out branch, so no host's entries would ever arrive."""
    path = url[len("file://"):] if url.startswith("file://") else url
    if "://" in path or not path:
        return
    p = Path(path).expanduser()
    if (p / ".git").exists():
        raise FleetError(f"{layout.redacted_url(url)} is a clone with a work tree (it has a .git): git refuses "
                         "pushes to its checked-out branch, so the hosts could never push there; point the fleet "
                         "at a bare repository (`git init --bare --initial-branch=main DIR`, or that clone's own "
                         "remote)")


def _refuse_existing(cfg, url: str) -> bool:
    """True when the worklog dir is already a clone of ``url`` (nothing to do); raises for any other git dir."""
    git_dir = cfg.worklog_dir / ".git"
    if not git_dir.exists() and not git_dir.is_symlink():
        return False
    if git_dir.is_dir() and not git_dir.is_symlink() and Repo(cfg).url() == url:
        return True
    raise FleetError(f"{cfg.worklog_dir} is already a git repository (of "
                     f"{layout.redacted_url(Repo(cfg).url()) if git_dir.is_dir() else 'elsewhere'}); agentd makes "
                     "a fleet only of a worklog dir that is none: move its .git away, or point worklog_dir elsewhere")


def _attributes(cfg) -> None:
    """``.gitattributes`` with the worklogs' union merge (the line added to a person's file, never replacing it)."""
    p = cfg.worklog_dir / ".gitattributes"
    text = p.read_text(encoding="utf-8", errors="replace") if p.is_file() else ""
    if ATTRIBUTES.strip() not in text.splitlines():
        with open(p, "a", encoding="utf-8") as f:
            f.write(("" if not text or text.endswith("\n") else "\n") + ATTRIBUTES)


def init(cfg, url: str) -> str:
    """Start a fleet at ``url`` (an empty repository).  Returns what to say."""
    if _refuse_existing(cfg, url):
        return f"{cfg.worklog_dir} is already a clone of {layout.redacted_url(url)}"
    _refuse_working_clone(url)
    existed = cfg.worklog_dir.exists()
    cfg.worklog_dir.mkdir(parents=True, exist_ok=True)
    try:
        heads, _ = remote_heads(Repo(cfg), url)
    except FleetError:
        if not existed:
            shutil.rmtree(cfg.worklog_dir, ignore_errors=True)  # made just now: as it was
        raise
    if heads:
        raise FleetError(f"{layout.redacted_url(url)} already holds a fleet (branch {heads[0]}): "
                         f"`agentd fleet join {url}` joins it")
    init_repo(Repo(cfg), "main", url)
    r = Repo(cfg)
    _attributes(cfg)
    r.git("add", "--", ".gitattributes", *([r.own] if (r.dir / r.own).is_file() else []))
    r.git("commit", "-q", "--no-verify", "-m", f"agentd {cfg.host}: start the fleet")
    pushed = r.push()
    _record(cfg, r, pushed.status == "pushed")
    if pushed.status != "pushed":
        return (f"{cfg.worklog_dir} is now a fleet clone of {layout.redacted_url(url)}, but the first push was "
                f"{pushed.status} ({pushed.detail}): `agentd sync` tries again")
    return f"{cfg.worklog_dir} is now a fleet clone of {layout.redacted_url(url)} (branch main); other hosts: " \
           f"`agentd fleet join {layout.redacted_url(url)}`"


def join(cfg, url: str) -> str:
    """Join the fleet at ``url``.  Returns what to say."""
    if _refuse_existing(cfg, url):
        return f"{cfg.worklog_dir} is already a clone of {layout.redacted_url(url)}"
    _refuse_working_clone(url)
    existed = cfg.worklog_dir.exists()
    cfg.worklog_dir.mkdir(parents=True, exist_ok=True)
    try:
        heads, head = remote_heads(Repo(cfg), url)
        if not heads:
            raise FleetError(f"{layout.redacted_url(url)} is empty: `agentd fleet init {url}` starts a fleet there")
        branch = head if head in heads else ("main" if "main" in heads else heads[0])
        init_repo(Repo(cfg), branch, url)
        return _join(cfg, Repo(cfg), url, branch)
    except BaseException:  # as before the join: the .git it made removed, the worklog dir too if it made it
        shutil.rmtree(cfg.worklog_dir if not existed else cfg.worklog_dir / ".git", ignore_errors=True)
        raise


def _clear_the_way(cfg, r: Repo, fetched: str) -> None:
    """Files already in the worklog dir that the fleet also holds (a former clone's): one with the fleet's
    bytes, or this host's own ``hosts/<host>.json`` (the next sync writes it anew), is removed for the
    checkout to write; any other stops the join, named (nothing removed then)."""
    listed = r.git("ls-tree", "-r", "-z", "--name-only", fetched).out.split("\0")
    mine, clear, blocked = hostfile.rel(cfg.host), [], []
    for p in [p for p in listed if p and p != r.own]:
        local = r.dir / p
        if not local.exists() and not local.is_symlink():
            continue
        if local.is_file() and not local.is_symlink() and (p == mine or local.read_bytes() == r.show(fetched, p)):
            clear.append(local)
        else:
            blocked.append(p)
    if blocked:
        raise FleetError(f"{r.dir} already holds {', '.join(blocked[:10])[:400]}, which the fleet holds otherwise: "
                         "move them away (or make them the fleet's), then join again")
    for local in clear:
        local.unlink()


def _join(cfg, r: Repo, url: str, branch: str) -> str:
    got = r.fetch()
    if not got.ok:
        raise FleetError(f"cannot fetch {layout.redacted_url(url)}: {got.said()}")
    fetched = r.ref(FETCHED)
    _clear_the_way(cfg, r, fetched)
    if (r.dir / r.own).is_file():  # this host's worklog keeps its bytes: committed, then merged (union)
        r.git("add", "--", r.own)
        r.git("commit", "-q", "--no-verify", "-m", f"agentd {cfg.host}: {r.own} joins the fleet")
        how, what = r.merge(fetched, f"agentd {cfg.host}: join the fleet", unrelated=True)
        if how in ("conflict", "refused"):
            raise FleetError(f"joining {layout.redacted_url(url)}: git would not merge: {', '.join(what)[:300]}")
    else:
        r.git("checkout", "-q", "-B", branch, fetched)
    r.git("update-ref", SEEN, fetched)
    pushed = r.push() if r.ref("HEAD") != fetched else None
    _record(cfg, r, pushed is None or pushed.status == "pushed")
    tail = "" if pushed is None or pushed.status == "pushed" else \
        f"; the push was {pushed.status} ({pushed.detail}): `agentd sync` tries again"
    return f"{cfg.worklog_dir} is now a fleet clone of {layout.redacted_url(url)} (branch {branch}){tail}"


def _record(cfg, r: Repo, ok: bool) -> None:
    try:
        cfg.ensure_state_dir()
        state.write(cfg, {"at": time.time(), "ok": ok, "warning": "" if ok else "the first push did not go through",
                          "kind": "" if ok else "unreachable", "last_ok": time.time() if ok else None,
                          "unpushed": r.ahead(r.ref(SEEN)), "remote": layout.redacted_url(r.url()),
                          "head": r.ref("HEAD") or ""})
    except OSError:
        pass  # the next sync writes it


def init_repo(repo: Repo, branch: str, url: str) -> None:
    """A new clone's git dir in the worklog dir: on ``branch``, ``origin`` at ``url``, ``GUARD`` in
    ``.git/info/attributes`` (a ``.gitattributes`` another host pushed or removed can't change it)."""
    repo.dir.mkdir(parents=True, exist_ok=True)
    repo.git("init", "-q", f"--initial-branch={branch}", str(repo.dir))
    layout.guard_attributes(repo.dir)
    repo.git("remote", "add", "origin", url)
    repo.git("config", f"branch.{branch}.remote", "origin")
    repo.git("config", f"branch.{branch}.merge", f"refs/heads/{branch}")


def remote_heads(repo: Repo, url: str) -> tuple[list[str], str | None]:
    """The branches at ``url`` and the one its HEAD names (``git ls-remote``, no clone needed)."""
    r = repo.git("ls-remote", "--symref", url, "HEAD", "refs/heads/*", network=True, check=False)
    if not r.ok:
        raise FleetError(f"cannot reach {layout.redacted_url(url)}: "
                         + (f"no answer within {repo.timeout:g} s" if r.rc is None else r.said()))
    heads, head = [], None
    for line in r.out.splitlines():
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            head = line[5:].split("\t")[0].removeprefix("refs/heads/")
        elif "\trefs/heads/" in line:
            heads.append(line.split("\trefs/heads/", 1)[1])
    return heads, head
