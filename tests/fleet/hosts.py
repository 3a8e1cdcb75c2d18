"""Hosts of a fleet on one machine, for the fleet's tests: each its own HOME, state dir and worklog dir, all
running the real CLI in subprocesses against a bare repository in the test's tmp dir; and a person's
laptop, a plain `git clone` of it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from agentd.config import config

from conftest import AGENTD


def git(*args: str, cwd=None, env: dict | None = None, check: bool = True) -> str:
    """The test's own git (a person's), with an identity and no user config of the machine's."""
    e = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "person",
         "GIT_AUTHOR_EMAIL": "person@laptop", "GIT_COMMITTER_NAME": "person", "GIT_COMMITTER_EMAIL": "person@laptop",
         **(env or {})}
    p = subprocess.run(["git", *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=60)
    if check and p.returncode:
        raise AssertionError(f"git {' '.join(args)}: {p.stderr}")
    return p.stdout


def bare(tmp_path: Path, name: str = "fleet.git") -> Path:
    d = tmp_path / name
    git("init", "-q", "--bare", "--initial-branch=main", str(d))
    return d


class Host:
    """One agentd host: ``run(...)`` is the real CLI with this host's environment."""

    def __init__(self, root: Path, name: str, **env: str):
        self.name = name
        self.home = root / f"home-{name}"
        self.wl = root / f"wl-{name}"
        self.home.mkdir(parents=True, exist_ok=True)
        # the person's own git config is ~/.gitconfig in this HOME: no GIT_* of the test run's
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, "HOME": str(self.home),
                    "XDG_CONFIG_HOME": str(self.home / ".config"), "XDG_STATE_HOME": str(self.home / ".local" / "state"),
                    "AGENTD_HOST": name, "AGENTD_WORKLOG_DIR": str(self.wl), **env}

    @property
    def worklog(self) -> Path:
        return self.wl / f"{self.name}_worklog.txt"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*AGENTD, *args], capture_output=True, text=True, env=self.env, timeout=timeout)

    def ok(self, *args: str) -> str:
        p = self.run(*args)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr, p.stderr
        return p.stdout

    def cfg(self):
        return config.load(self.env)

    def append(self, text: str) -> None:
        with open(self.worklog, "a", encoding="utf-8") as f:
            f.write(text)

    def gitconfig(self, text: str) -> None:
        (self.home / ".gitconfig").write_text(text)


def at_remote(remote: Path, path: str, ref: str = "main") -> str:
    """A file as the fleet's remote holds it ("" when it holds none)."""
    p = subprocess.run(["git", "--git-dir", str(remote), "show", f"{ref}:{path}"], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else ""


def entries(text: str) -> list[tuple[str, str]]:
    """(task, status) of each agentd entry in a worklog's text."""
    out = []
    for line in text.splitlines():
        if line.startswith("=== agentd entry "):
            kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
            out.append((kv["task"], kv["status"]))
    return out


def start_fleet(tmp_path, names=("alpha", "beta", "gamma")) -> tuple:
    """A bare remote, the first host that started the fleet on it and the others that joined it."""
    remote = bare(tmp_path)
    hosts = [Host(tmp_path, n) for n in names]
    for h in hosts:
        h.ok("init")
    hosts[0].ok("fleet", "init", str(remote))
    for h in hosts[1:]:
        h.ok("fleet", "join", str(remote))
    return remote, hosts
