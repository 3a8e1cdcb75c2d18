"""`make test` sets up the system packages the tests need (`make sysdeps`, tests/sysdeps.sh), or stops
with one line that names the package and the command.

Each test runs the real Makefile with the real make and sh, on a PATH that is only a temp dir: links to
the few real tools the script uses, plus stand-ins, tiny scripts, for the programs a test must never
really run (apt-get, sudo) or whose answer it must choose (id: a user who is not root; bwrap, faketime,
chromium, npm: present or not).  The stand-ins write what they were asked to a log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")

REAL = ("sh", "tr", "sed", "wc", "env", "true")
CHMOD = shutil.which("chmod")


def _bin(tmp_path: Path, *, present=("bwrap", "faketime", "chromium", "sbatch", "munge", "npm"), uid=0, apt="fail", sudo="refuse",
         has_apt=True) -> Path:
    """A PATH dir: the real tools, then the stand-ins.  apt: fail, or install (creates the stand-ins of
    the packages it is asked for, as apt-get would put bwrap, faketime, chromium, sbatch, munge, npm on PATH)."""
    d = tmp_path / "bin"
    d.mkdir()
    for name in REAL:
        (d / name).symlink_to(shutil.which(name))
    log = tmp_path / "calls.log"

    def stand_in(name: str, body: str) -> None:
        (d / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{body}\n')
        (d / name).chmod(0o755)

    for cmd in present:
        stand_in(cmd, "exit 0")
    stand_in("id", f'[ "$1" = -u ] && echo {uid}')
    if has_apt:
        installs = {"bubblewrap": "bwrap", "faketime": "faketime", "chromium": "chromium", "slurm-wlm": "sbatch",
                    "munge": "munge", "npm": "npm"}
        make_cmd = " ".join(f'[ "$p" = {pkg} ] && printf "#!/bin/sh\\nexit 0\\n" > {d}/{cmd} && {CHMOD} +x {d}/{cmd};'
                            for pkg, cmd in installs.items())
        body = ("exit 100" if apt == "fail" else
                f'[ "$1" = install ] || exit 0\nfor p in "$@"; do {make_cmd} :; done')
        stand_in("apt-get", body)
    if sudo == "refuse":  # sudo -n with no cached password: refuses
        stand_in("sudo", 'echo "sudo: a password is required" >&2; exit 1')
    else:
        stand_in("sudo", '[ "$1" = -n ] && shift; exec "$@"')
    return d


def _make(bindir: Path, *args: str) -> subprocess.CompletedProcess:
    """The real Makefile, with its venv and the CLIs' stamp in the temp dir, both up to date: its
    python a stand-in too, so `make test` that goes on runs that stand-in's `-m pytest`, not the suite."""
    tmp = bindir.parent
    venv = tmp / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\necho "python $*" >> {tmp / "calls.log"}\n')
    py.chmod(0o755)
    future = 4_000_000_000
    for stamp in (venv / ".installed", tmp / "cli.stamp"):
        stamp.touch()
        os.utime(stamp, (future, future))
    env = {"PATH": str(bindir), "HOME": str(tmp), "LC_ALL": "C"}
    return subprocess.run([MAKE, "--no-print-directory", "-C", str(ROOT), f"VENV={venv}",
                           f"CLI_STAMP={tmp / 'cli.stamp'}", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _apt_calls(tmp_path: Path) -> list[str]:
    return [c for c in _calls(tmp_path) if c.startswith("apt-get")]


def test_without_bwrap_and_no_way_to_install_make_test_stops_at_once_with_one_line(tmp_path):
    bindir = _bin(tmp_path, present=("faketime", "chromium", "sbatch", "munge", "npm"), uid=1000, sudo="refuse")
    r = _make(bindir, "test")
    assert r.returncode != 0
    lines = (r.stdout + r.stderr).splitlines()
    assert len(lines) == 1, lines
    assert 'bubblewrap is needed by the tests: run "sudo apt-get install -y bubblewrap" (or see README)' in lines[0]
    assert _apt_calls(tmp_path) == []  # neither root nor sudo: apt-get is not tried
    assert not any(c.startswith("python") for c in _calls(tmp_path))  # no install, no suite


def test_as_root_an_apt_get_that_fails_still_ends_in_the_one_line(tmp_path):
    bindir = _bin(tmp_path, present=("faketime", "chromium", "sbatch", "munge", "npm"), uid=0, apt="fail")
    r = _make(bindir, "sysdeps")
    assert r.returncode != 0
    assert _apt_calls(tmp_path) == ["apt-get update -qq"]
    last = (r.stdout + r.stderr).splitlines()[-1]
    assert 'bubblewrap is needed by the tests: run "sudo apt-get install -y bubblewrap"' in last


def test_as_root_the_missing_packages_are_installed_and_make_test_goes_on(tmp_path):
    bindir = _bin(tmp_path, present=("npm",), uid=0, apt="install")
    r = _make(bindir, "test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _apt_calls(tmp_path) == ["apt-get update -qq", "apt-get install -y -qq bubblewrap faketime chromium slurm-wlm munge"]
    assert _calls(tmp_path)[-1] == "python -m pytest"
    assert (bindir / "bwrap").exists() and (bindir / "faketime").exists() and (bindir / "chromium").exists()
    assert "needed by the tests" not in r.stdout + r.stderr


def test_with_passwordless_sudo_they_are_installed_through_sudo(tmp_path):
    bindir = _bin(tmp_path, present=("faketime", "chromium", "sbatch", "munge", "npm"), uid=1000, apt="install", sudo="allow")
    r = _make(bindir, "sysdeps")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap" in _calls(tmp_path)
    assert (bindir / "bwrap").exists()


def test_with_everything_present_no_apt_get_runs(tmp_path):
    bindir = _bin(tmp_path, uid=0, apt="install")
    r = _make(bindir, "sysdeps")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _calls(tmp_path) == []  # not even id: the check is `command -v` alone
    assert (r.stdout + r.stderr).strip() == ""


def test_npm_is_installed_where_it_can_be_and_its_absence_only_noted(tmp_path):
    bindir = _bin(tmp_path, present=("bwrap", "faketime", "chromium", "sbatch", "munge"), uid=1000, sudo="refuse")
    r = _make(bindir, "sysdeps")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "note: nodejs npm not installed: the tests that need it skip, saying so" in r.stderr


def test_a_host_without_apt_get_gets_the_one_line_naming_the_packages(tmp_path):
    bindir = _bin(tmp_path, present=("chromium", "sbatch", "munge", "npm"), uid=0, has_apt=False)
    r = _make(bindir, "sysdeps")
    assert r.returncode != 0
    lines = (r.stdout + r.stderr).splitlines()
    assert len(lines) == 1, lines
    assert ("bubblewrap faketime are needed by the tests: install it with this system's package manager"
            in lines[0])


def test_make_n_test_runs_nothing(tmp_path):
    bindir = _bin(tmp_path, present=(), uid=0, apt="install")
    r = _make(bindir, "-n", "test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _calls(tmp_path) == []


def test_ci_runs_no_more_than_the_readmes_two_commands():
    commands = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    commands = [c for c in commands if not c.startswith(("set ", "cd "))]
    readme = (ROOT / "README.md").read_text()
    assert commands and all(c in ("make test", "make run") for c in commands), commands
    assert all(f"\n{c} " in readme for c in commands)
