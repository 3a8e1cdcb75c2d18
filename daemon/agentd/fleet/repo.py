"""The fleet repository: the worklog dir as a clone of the repository the hosts share, and every git call
agentd makes on it.

agentd's other git (``workspace/git.py``) has no transport at all.  The fleet's git talks to a remote, so
it uses the person's own way there: their git config files (``~/.gitconfig``, ``$XDG_CONFIG_HOME/git/config``,
``/etc/gitconfig``: a credential helper, ``core.sshCommand``, ``url.<base>.insteadOf``, a proxy) and their
environment (``SSH_AUTH_SOCK``, ``GIT_SSH_COMMAND``, ``GIT_SSH``, ``GIT_ASKPASS``).  Nothing that arrives
with the repository runs, and nothing in it chooses how git reaches the remote:

- hooks, fsmonitor, pagers, editors and signing are off (command-line config, which beats every file);
- every filter, diff and merge driver any config names is emptied, so a ``.gitattributes`` another host
  pushed can't start the person's git-lfs or any other program (the worklogs' ``merge=union`` is git's own),
  and ``.git/info/attributes`` (``GUARD``) turns off every attribute that changes the bytes git checks out;
- the ``ext::`` and ``fd::`` transports are off: no URL runs a command;
- the clone's own config (``.git/config``) may hold only what a clone writes (remote URLs and refspecs,
  branch upstreams, core's plain settings, user.name and user.email): anything else (a credential helper,
  an ssh command, an include) is refused with a message, so it counts only from the person's own files;
- ``core.symlinks`` is false (a link another host committed is checked out as a plain file holding its
  target) and ``transfer.fsckObjects`` true (malformed objects are refused);
- agentd's commits are its own (``agentd on <host>``); it never forces a push, rebases or amends.
"""

from __future__ import annotations

from pathlib import Path

from agentd.config.schema import parse_duration
from agentd.errors import FleetError
from agentd.fleet import gitenv
from agentd.fleet.gitenv import LOCAL_TIMEOUT, MAX_OUT
from agentd.fleet.layout import FETCHED, SEEN, host_of
from agentd.recordtype import Record
from agentd.sandbox import procs

class Result(Record):
    """One git call: its exit code (None when it ran past its time and was stopped), output and error."""
    argv: list
    rc: int | None
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def said(self) -> str:
        """What git said, one line (or why it was stopped): its first ``fatal:`` or ``error:`` line, with the
        files it lists under it (``... would be overwritten by merge: notes.md``); else its last line."""
        if self.rc is None:
            return "no answer"
        raw = [x for x in self.err.splitlines() if x.strip() and not x.startswith("hint:")]
        for i, line in enumerate(raw):
            if line.startswith(("fatal:", "error:")):
                files = []
                for nxt in raw[i + 1:] if line.rstrip().endswith(":") else []:
                    if not nxt[:1].isspace():
                        break
                    files.append(nxt.strip())
                return (line.strip() + (" " + ", ".join(files) if files else ""))[:300]
        return (raw[-1].strip() if raw else f"exit {self.rc}")[:300]


class Pushed(Record):
    """A push's outcome.  ``status``: ``pushed``; ``up-to-date``; ``rejected``, the branch moved since this
    host last fetched (git's compare-and-swap on the branch lost: fetch, merge, look again); ``declined``,
    the remote refused it (a hook, permissions, a protected branch); ``unreachable`` (no answer within the
    timeout, or no connection); ``failed``."""
    status: str
    detail: str = ""
    head: str = ""


class Repo:
    """The clone in the worklog dir, and git run on it the fleet's way."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.dir = Path(cfg.worklog_dir)
        self.own = cfg.worklog_path.name
        self.timeout = parse_duration(cfg["fleet"]["timeout"])
        self._env: dict | None = None

    # -- running git -------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The environment of every call (``gitenv.fleet_env``), made once."""
        if self._env is None:
            self._env = gitenv.fleet_env(self.cfg, self.dir)
        return self._env

    def _where(self) -> dict[str, str]:
        return gitenv.where(self.dir)

    def git(self, *args: str, network: bool = False, check: bool = True, index: str | None = None) -> Result:
        """``git args`` in the clone; ``network``: it talks to the remote (then the fleet's timeout holds);
        ``index``: an index file of its own (not the work tree's).  Raises FleetError when it fails and
        ``check`` is set."""
        argv = ["git", "--no-pager", *args]
        extra = {"GIT_INDEX_FILE": index} if index else {}
        try:
            rc, out, err, _ = procs.run(argv, cwd=self.dir, env={**self.env(), **self._where(), **extra},
                                        timeout=self.timeout if network else LOCAL_TIMEOUT, max_bytes=MAX_OUT)
        except FileNotFoundError:
            raise FleetError("git is not installed") from None
        r = Result(argv, rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if check and not r.ok:
            raise FleetError(f"git {args[0]} " + ("got no answer from the remote within "
                                                  f"{self.timeout:g} s" if r.rc is None else f"failed: {r.said()}"))
        return r

    # -- reading -----------------------------------------------------------------------------------
    def ref(self, name: str) -> str | None:
        r = self.git("rev-parse", "--verify", "-q", name + "^{commit}", check=False)
        return r.out.strip() or None if r.ok else None

    def branch(self) -> str:
        r = self.git("symbolic-ref", "--short", "-q", "HEAD", check=False)
        return r.out.strip() or "main"

    def url(self) -> str:
        return self.git("config", "--get", "remote.origin.url", check=False).out.strip()

    def is_ancestor(self, old: str, new: str) -> bool:
        return self.git("merge-base", "--is-ancestor", old, new, check=False).rc == 0

    def ahead(self, base: str | None) -> int:
        """How many commits HEAD has that ``base`` has not (all of them when there is no base)."""
        if self.ref("HEAD") is None:
            return 0
        r = self.git("rev-list", "--count", "HEAD", *(["--not", base] if base else []), check=False)
        return int(r.out.strip() or 0) if r.ok else 0

    def foreign(self, base: str | None) -> list[tuple[str, str]]:
        """(commit, path) for each file the push would change on the remote that is another host's: its
        worklog, or its ``hosts/<host>.json``.  The net change is judged (``base``, the remote's head as
        fetched and merged, against HEAD), not each commit: a revert undoes it, and the commits the remote
        already holds the same way count for nothing.  ``commit``: the last commit since ``base`` that
        changed the path (merges left out; "" if none), the one to revert."""
        if self.ref("HEAD") is None:
            return []
        if base:
            r = self.git("diff", "--name-only", "-z", "--no-renames", base, "HEAD")
        else:
            r = self.git("ls-tree", "-r", "-z", "--name-only", "HEAD")
        mine = f"hosts/{self.cfg.host}.json"
        bad = [p for p in r.out.split("\0") if p and p != self.own and p != mine
               and (host_of(p) or (p.startswith("hosts/") and p != mine))]
        out = []
        for path in bad:
            c = self.git("log", "-1", "--no-merges", "--format=%H", "HEAD", *(["--not", base] if base else []),
                         "--", path, check=False)
            out.append((c.out.strip(), path))
        return out

    def show(self, ref: str, path: str, limit: int = 64 * 2**20) -> bytes | None:
        """The bytes of ``path`` at ``ref`` (None if it has none), at most ``limit`` of them."""
        r = self.git("cat-file", "-s", f"{ref}:{path}", check=False)
        if not r.ok:
            return None
        rc, out, _, _ = procs.run(["git", "--no-pager", "cat-file", "blob", f"{ref}:{path}"], cwd=self.dir,
                                  env={**self.env(), **self._where()}, timeout=LOCAL_TIMEOUT, max_bytes=limit)
        return out[:limit] if rc == 0 or len(out) >= limit else None

    # -- writing -----------------------------------------------------------------------------------
    def commit_own(self, message: str) -> bool:
        """Commit this host's worklog as it is now (a person's lines in it included: theirs, in their own
        host's file), nothing else: other staged changes stay staged.  True if there was something new."""
        if not (self.dir / self.own).is_file():
            return False
        self.git("add", "--", self.own)
        if self.git("diff", "--cached", "--quiet", "--", self.own, check=False).rc == 0:
            return False
        self.git("commit", "-q", "--no-verify", "-m", message, "--only", "--", self.own)
        return True

    def commit_paths(self, paths: list[str], message: str) -> bool:
        """Commit these paths as they are now (``fleet_worklog.txt``, which any host may commit), nothing
        else.  True if there was something new."""
        paths = [p for p in paths if (self.dir / p).is_file()]
        if not paths:
            return False
        self.git("add", "--", *paths)
        if self.git("diff", "--cached", "--quiet", "--", *paths, check=False).rc == 0:
            return False
        self.git("commit", "-q", "--no-verify", "-m", message, "--only", "--", *paths)
        return True

    def commit_on(self, base: str, path: str, data: bytes, message: str) -> str:
        """A commit whose parent is ``base`` (not HEAD: the work tree and HEAD stay as they are) in which
        ``path`` holds ``data``; its hash.  Pushing it is git's compare-and-swap: it goes through only
        while the remote's branch is still ``base``."""
        import tempfile  # lazy: only a claim

        with tempfile.TemporaryDirectory(dir=self.dir / ".git", prefix="agentd-claim-") as tmp:
            blob_file, index = Path(tmp) / "blob", str(Path(tmp) / "index")
            blob_file.write_bytes(data)
            blob = self.git("hash-object", "-w", "--no-filters", str(blob_file)).out.strip()
            self.git("read-tree", base, index=index)
            self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", index=index)
            tree = self.git("write-tree", index=index).out.strip()
        return self.git("commit-tree", tree, "-p", base, "-m", message).out.strip()

    def fetch(self) -> Result:
        """The remote's branch into ``FETCHED`` (and ``origin/<branch>``, for a person's own git)."""
        b = self.branch()
        return self.git("fetch", "-q", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head", "origin",
                        f"+refs/heads/{b}:{FETCHED}", f"+refs/heads/{b}:refs/remotes/origin/{b}",
                        network=True, check=False)

    def merge(self, ref: str, message: str, unrelated: bool = False, ours: tuple = ()) -> tuple[str, list[str]]:
        """Merge ``ref`` into HEAD (a fast-forward when HEAD has nothing of its own: no merge commit that the
        other hosts would merge again): ("merged" | "up-to-date" | "conflict" | "refused", conflicted paths or
        git's words).  A conflict only in ``ours`` (this host's own file) is resolved as this host has it;
        any other is undone (``merge --abort``): nothing is left half-merged."""
        if self.ref("HEAD") is not None and self.is_ancestor(ref, "HEAD"):
            return "up-to-date", []
        r = self.git("merge", "-q", "--no-edit", "--no-verify", "--ff", "-m", message,
                     *(["--allow-unrelated-histories"] if unrelated else []), ref, check=False)
        if r.ok:
            return "merged", []
        conflicted = self.git("diff", "--name-only", "--diff-filter=U", "-z", check=False).out.split("\0")
        conflicted = [c for c in conflicted if c]
        if conflicted and set(conflicted) <= set(ours) and all(
                self.git("checkout", "--ours", "--", c, check=False).ok for c in conflicted):
            self.git("add", "--", *conflicted)
            self.git("commit", "-q", "--no-verify", "-m", message)
            return "merged", []
        if conflicted:
            self.git("merge", "--abort", check=False)
            return "conflict", conflicted
        return "refused", [r.said()]

    def push(self, commit: str | None = None) -> Pushed:
        """Push HEAD (or ``commit``) to the remote's branch, never forced; on success ``SEEN`` is the pushed
        head."""
        head = commit or self.ref("HEAD")
        if head is None:
            return Pushed("up-to-date")
        b = self.branch()
        r = self.git("push", "--porcelain", "--no-verify", "origin", f"{head}:refs/heads/{b}", network=True,
                     check=False)
        status, detail = _push_status(r)
        if status in ("pushed", "up-to-date"):
            self.git("update-ref", SEEN, head, check=False)
            self.git("update-ref", f"refs/remotes/origin/{b}", head, check=False)
        return Pushed(status, detail, head)


def _push_status(r: Result) -> tuple[str, str]:
    """What ``git push --porcelain`` said of the one ref: (Pushed.status, detail)."""
    for line in r.out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and ":" in parts[1]:
            flag, summary = parts[0], parts[2]
            if flag == "=":
                return "up-to-date", ""
            if flag in (" ", "*", "+"):
                return "pushed", ""
            if "remote rejected" in summary and ("failed to update ref" in summary or "cannot lock ref" in summary):
                return "rejected", summary  # another push held the branch's lock: it moved, or is moving, meanwhile
            if "remote rejected" in summary:
                return "declined", summary + (f": {r.said()}" if r.err.strip() else "")
            if flag == "!":
                return "rejected", summary
    if r.rc is None:
        return "unreachable", "no answer"
    if r.ok:
        return "pushed", ""
    return "unreachable", r.said()


