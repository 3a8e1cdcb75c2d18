"""A run's directory: manifest.json (provenance) and progress.json (`agentd show` prints them: cli/show.py).

progress.json follows the seeds' monitoring format: ``current_phase``,
``phase_started``, ``last_update``, ``status`` (running, done, failed,
blocked), ``notes`` and ``phases_completed``.  It is rewritten atomically
(temp file + rename) so a monitor never reads half of it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from agentd import __version__
from agentd.errors import WorkspaceError
from agentd.providers.choice import CLI_EXES, chosen
from agentd.redact import redact
from agentd.times import now_iso


def new_run_id(store=None, now: float | None = None, token=None) -> str:
    """``r<YYYYMMDD-HHMMSS>-<16 hex>``: readable, sorted by the (UTC) second it was made, and 64 random
    bits so two wakes in one second, or a clock set back, don't make the same id; one the store
    already has is never used (``token`` stands in for the random bits in tests).  Ids made before
    had 4 hex digits; they stay valid (nothing parses an id's shape)."""
    # lazy: only a wake makes a run id; secrets (and random) stay off `agentd status`'s start-up
    import secrets

    token = token or (lambda: secrets.token_hex(8))
    stamp = "r" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-"
    while True:
        run_id = stamp + token()
        if store is None or store.db.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is None:
            return run_id


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(redact(json.dumps(data, indent=2, default=str)) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def config_hash(values: dict) -> str:
    # lazy: hashlib loads OpenSSL (~5 ms); most runs of queue and status never hash
    import hashlib

    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _git_commit(path: Path) -> str | None:
    """The commit a workspace's checkout is at, asked with agentd's hardened git (the workspace is an
    agent's: its .git may hold hooks, an fsmonitor, filters)."""
    if not (path / ".git").exists():
        return None
    # lazy: only a wake's manifest asks git; keeps it off `agentd status`'s start-up
    from agentd.workspace import git

    try:
        out = git.git("rev-parse", "--verify", "HEAD", cwd=path, timeout=10).strip()
    except (WorkspaceError, OSError):
        return None
    return out or None


def _dist_version(name: str) -> str | None:
    # lazy: importlib.metadata (email, zipfile...) only for a wake's manifest; keeps `agentd status`'s start-up
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


class RunDir:
    def __init__(self, cfg, run_id: str):
        self.path = cfg.runs_dir / run_id
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.progress_path = self.path / "progress.json"

    def write_manifest(self, cfg, run_id: str, task, snapshot: dict, workspace: Path | None = None,
                       rules: list | None = None) -> None:
        """``workspace``: where the run works (the task's own workspace, its worktree, a command's cwd);
        ``rules``: the ids of the rules in force an agent run was given (``worklog.standing``)."""
        # lazy: only a wake's manifest names the platform; keeps it off `agentd status`'s start-up
        import platform

        gpus = snapshot.get("gpu") or []
        write_json(self.path / "manifest.json", {
            "run_id": run_id,
            "task": {"id": task.id, "title": task.title, "kind": task.kind, "source": task.source,
                     "line": task.line, "attrs": task.attrs},
            "host": cfg.host, "agentd_version": __version__,
            "workspace": str(workspace) if workspace else None,
            "workspace_git_commit": _git_commit(workspace) if workspace and not task.attrs.get("repo") else None,
            "python": platform.python_version(), "torch": _dist_version("torch"),
            "transformers": _dist_version("transformers"),
            "cuda": (gpus[0].get("cuda_version") if gpus else None),
            "gpu": [g.get("name") for g in gpus],
            "config_sha256": config_hash(cfg.values), "started_at": now_iso(),
            "sandbox": _sandbox(cfg, task, workspace),
            **({"limits": _limits(cfg)} if task.runner == "agent" else {}),
            **({"rules": list(rules)} if rules is not None else {}),
        })

    def read(self) -> dict | None:
        return read_progress(self.path)

    def progress(self, phase: str | None = None, status: str = "running", notes: str | None = None,
                 complete: str | None = None) -> None:
        p = self.read() or {"phases_completed": []}
        t = now_iso()
        if phase is not None and phase != p.get("current_phase"):
            prev = p.get("current_phase")
            if prev and prev not in p["phases_completed"] and status in ("running", "done"):
                p["phases_completed"].append(prev)
            p["current_phase"], p["phase_started"] = phase, t
        if complete and complete not in p["phases_completed"]:
            p["phases_completed"].append(complete)
        p.update({"last_update": t, "status": status})
        if notes is not None:
            p["notes"] = notes
        write_json(self.progress_path, p)


def _sandbox(cfg, task, workspace) -> dict:
    """Which sandbox the run's model-driven processes get, and its policy (docs/security.md)."""
    if task.runner != "agent":
        return {"sandbox": "none", "note": f"a {task.kind} a person wrote runs as written, like their own shell"}

    # status reads progress.json from here, and needs no sandbox policy (subprocess, shutil):
    # lazy: only a wake's manifest needs the sandbox policy; keeps status's start-up
    from agentd.sandbox import sandbox

    cli = chosen(cfg)
    policy = sandbox.policy_for(cfg, task.attrs, workspace or cfg.workspace,
                                for_cli=cli if cli in CLI_EXES else False)
    return sandbox.describe(policy, cfg)


def _limits(cfg) -> dict:
    """The cgroup limits the run's model-driven processes get (cgroups.py)."""
    # lazy: only a wake's manifest reads the cgroup limits; keeps it off `agentd status`'s start-up
    from agentd.sandbox import cgroups

    return cgroups.describe(cfg)


def note_limits(run_dir, limits: dict) -> None:
    """A limit a command of the run hit: the manifest's ``limits`` take the group's, and its ``hits`` grow."""
    path = Path(run_dir) / "manifest.json"
    try:
        old = json.loads(path.read_text(encoding="utf-8")).get("limits") or {}
    except (OSError, ValueError, AttributeError):
        return
    hits = list(old.get("hits") or [])
    hits += [h for h in limits.get("hits", []) if h not in hits]
    amend_manifest(run_dir, limits={**old, **limits, "hits": hits[-20:]})


def amend_manifest(run_dir, **fields) -> None:
    """Add to a run's manifest what changed while it ran (a person's approvals widening its sandbox)."""
    path = Path(run_dir) / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    write_json(path, {**data, **fields})


def read_progress(run_dir) -> dict | None:
    """A run directory's progress.json, or None (the one place it is read)."""
    if not run_dir:
        return None
    try:
        return json.loads((Path(run_dir) / "progress.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
