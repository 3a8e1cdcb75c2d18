"""A full disk under the fleet: the clone's (its .git on a real small tmpfs, filled) or the state dir's.
The wake records all the same, the fault is a warning, never a traceback, and nothing is lost."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import can_mount
from hosts import Host, at_remote, bare, entries

pytestmark = pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root (a real full disk)")


@pytest.fixture
def mounts():
    made = []

    def mount(where, size: str = "1m"):
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
        made.append(where)

    yield mount
    for d in reversed(made):
        if subprocess.run(["umount", str(d)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)


def fill(d) -> None:
    subprocess.run(f"dd if=/dev/zero of={d}/filler bs=64k 2>/dev/null; true", shell=True)


def test_a_full_repository_disk_is_a_warning_the_wake_records_and_the_next_sync_pushes(tmp_path, mounts):
    remote = bare(tmp_path)
    alpha = Host(tmp_path, "alpha")
    alpha.ok("init")
    alpha.ok("fleet", "init", str(remote))
    git_dir = alpha.wl / ".git"
    shutil.copytree(git_dir, tmp_path / "git-copy")
    mounts(git_dir, "2m")
    shutil.copytree(tmp_path / "git-copy", git_dir, dirs_exist_ok=True)
    fill(git_dir)
    alpha.append("- [ ] one {run: echo one, id: one}\n")
    p = alpha.run("wake", "--now")
    assert p.returncode == 0 and "one: done" in p.stdout and "Traceback" not in p.stderr, p.stderr
    assert "fleet sync" in p.stderr and "kind" in p.stderr
    assert ("one", "done") in entries(alpha.worklog.read_text())
    (git_dir / "filler").unlink()
    assert alpha.ok("sync").startswith("synced")
    assert ("one", "done") in entries(at_remote(remote, "alpha_worklog.txt"))


def test_a_full_state_dir_is_a_warning_of_sync_not_a_traceback(tmp_path, mounts):
    remote = bare(tmp_path)
    alpha = Host(tmp_path, "alpha")
    alpha.ok("init")
    alpha.ok("fleet", "init", str(remote))
    state = tmp_path / "state"
    state.mkdir()
    mounts(state, "1m")
    alpha.env["AGENTD_STATE_DIR"] = str(state)
    fill(state)
    alpha.append("a person's line\n")
    p = alpha.run("sync")
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 1 and "fleet.json could not be written" in p.stderr
    assert "a person's line" in at_remote(remote, "alpha_worklog.txt")  # the sync itself went through
