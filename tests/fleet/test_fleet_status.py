"""`agentd fleet status` (issue 23, part 5) and the hosts/<host>.json each sync records: real git, three hosts
with HOMEs of their own on one bare repository, real `agentd` subprocesses; hostile files, another host's
file committed here, a full disk under the clone."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import can_mount
from hosts import at_remote, git, start_fleet


@pytest.fixture
def three(tmp_path):
    return start_fleet(tmp_path)


def laptop_push(tmp_path, remote, files: dict[str, bytes]) -> None:
    lap = tmp_path / "laptop"
    if not lap.exists():
        git("clone", "-q", str(remote), str(lap))
    git("pull", "-q", "--no-rebase", cwd=lap)
    for path, data in files.items():
        (lap / path).parent.mkdir(parents=True, exist_ok=True)
        (lap / path).write_bytes(data)
        git("add", path, cwd=lap)
    git("commit", "-qm", "from the laptop", cwd=lap)
    git("push", "-q", "origin", "main", cwd=lap)


def test_fleet_status_shows_all_three_hosts(three):
    remote, (alpha, beta, gamma) = three
    alpha.append("- [ ] first {run: echo a1, id: a1}\n- [ ] second {run: echo a2, id: a2}\n")
    beta.append("- [ ] b's task {run: echo b1, id: b1}\n")
    assert "a1: done" in alpha.ok("wake", "--now")
    assert "b1: done" in beta.ok("wake", "--now")
    gamma.ok("sync")
    st = json.loads(gamma.ok("fleet", "status", "--json"))
    by = {h["host"]: h for h in st["hosts"]}
    assert list(by) == ["gamma", "alpha", "beta"] and by["gamma"]["this"]
    assert by["alpha"]["last_run"]["task"] == "a1" and by["alpha"]["last_run"]["status"] == "done"
    assert by["alpha"]["queue_top"]["id"] == "a2"  # what alpha runs next
    assert by["alpha"]["wake"]["kind"] == "after a run"
    assert by["beta"]["last_run"]["task"] == "b1" and by["beta"]["queue_top"] is None
    assert not any(h["stale"] for h in st["hosts"]) and by["alpha"]["spend"]["usd"] == 0.0
    text = gamma.ok("fleet", "status")
    for line in ("gamma (this host): synced", "alpha: synced", "beta: synced", "  last run:    a1: done (started ",
                 "  queue top:   a2: second", "fleet budget: none set"):
        assert line in text, text
    assert json.loads(at_remote(remote, "hosts/beta.json"))["last_run"]["task"] == "b1"


def test_hostile_and_huge_host_files_are_warnings_and_nothing_of_them_reaches_the_terminal(three, tmp_path):
    remote, (alpha, beta, gamma) = three
    evil = {"host": "mallory", "synced_at": "2020-01-01T00:00:00Z",
            "queue_top": {"id": "x\x1b]52;c;cm0gLXJmIH4=\x07", "title": "T" * 100_00, "why": "\x1b[2J"},
            "last_run": "not a mapping", "running": [{"task": 1}] * 1000, "spend": {"day": "today", "usd": 1e300}}
    laptop_push(tmp_path, remote, {
        "hosts/mallory.json": json.dumps(evil).encode(),
        "hosts/huge.json": b"{" + b" " * 200_000 + b"}",
        "hosts/bad.json": b"\xff\xfe not json",
        "hosts/liar.json": json.dumps({"host": "alpha"}).encode(),
        "hosts/..json": b"{}",
        **{f"{h}_worklog.txt": b"" for h in ("mallory", "huge", "bad", "liar")},  # hosts of the fleet: files read
    })
    alpha.ok("sync")
    p = alpha.run("fleet", "status")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "\x1b" not in p.stdout and "\x07" not in p.stdout
    assert "mallory: synced" in p.stdout and "(stale: more than 6h)" in p.stdout
    assert "T" * 201 not in p.stdout
    for w in ("hosts/huge.json: 200002 bytes, more than the 65536 a host's file may have: left out",
              "hosts/bad.json: not JSON", "hosts/liar.json: names host 'alpha', not 'liar': left out",
              "hosts/mallory.json: its spend"):
        assert w in p.stdout, p.stdout
    st = json.loads(alpha.ok("fleet", "status", "--json"))
    (m,) = [h for h in st["hosts"] if h["host"] == "mallory"]
    assert m["queue_top"]["cut"] is True and len(m["queue_top"]["title"]) == 200 and len(m["running"]) == 5
    assert m["last_run"] is None and m["spend"]["usd"] == 0.0


def test_a_commit_of_another_hosts_file_is_refused(three):
    remote, (alpha, beta, gamma) = three
    beta.ok("sync")
    alpha.ok("sync")
    forged = alpha.wl / "hosts" / "beta.json"
    forged.write_text(json.dumps({"host": "beta", "spend": {"day": "2026-01-01", "usd": 0}}))
    git("add", "hosts/beta.json", cwd=alpha.wl)
    git("commit", "-qm", "forge beta's spend", cwd=alpha.wl)
    p = alpha.run("sync")
    assert p.returncode == 1 and "would change hosts/beta.json, another host's file" in p.stderr, p.stderr
    assert '"2026-01-01"' not in at_remote(remote, "hosts/beta.json")


def test_a_stale_host_is_flagged(three, tmp_path):
    remote, (alpha, beta, gamma) = three
    beta.ok("sync")
    old = json.loads(at_remote(remote, "hosts/beta.json"))
    old["synced_at"] = "2020-01-01T00:00:00Z"  # as if beta went silent long ago (a person's copy)
    laptop_push(tmp_path, remote, {"hosts/beta.json": json.dumps(old).encode()})
    alpha.ok("sync")
    st = json.loads(alpha.ok("fleet", "status", "--json"))
    by = {h["host"]: h for h in st["hosts"]}
    assert by["beta"]["stale"] and not by["alpha"]["stale"]
    assert "no hosts/gamma.json yet" in alpha.ok("fleet", "status")  # gamma never synced: its worklog only


@pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root (a real full disk)")
def test_a_full_disk_under_the_hosts_file_is_a_warning_and_the_next_sync_writes_it(three, tmp_path):
    remote, (alpha, beta, gamma) = three
    d = alpha.wl / "hosts"
    d.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], check=True)
    try:
        subprocess.run(f"dd if=/dev/zero of={d}/filler bs=4k 2>/dev/null; true", shell=True)
        alpha.append("- [ ] one {run: echo one, id: one}\n")
        p = alpha.run("wake", "--now")
        assert p.returncode == 0 and "one: done" in p.stdout and "Traceback" not in p.stderr, p.stderr
        assert "hosts/alpha.json could not be written" in p.stderr
        assert "one" in at_remote(remote, "alpha_worklog.txt")  # the worklog synced all the same
        assert at_remote(remote, "hosts/alpha.json") == ""
        (d / "filler").unlink()
        assert alpha.ok("sync").startswith("synced")
        assert json.loads(at_remote(remote, "hosts/alpha.json"))["last_run"]["task"] == "one"
    finally:
        if subprocess.run(["umount", str(d)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_this_hosts_own_file_edited_on_the_remote_is_merged_as_this_hosts(three, tmp_path):
    remote, (alpha, beta, gamma) = three
    alpha.ok("sync")
    edited = json.loads(at_remote(remote, "hosts/alpha.json"))
    edited["spend"]["usd"] = 999.0  # a person's edit of alpha's file, pushed
    laptop_push(tmp_path, remote, {"hosts/alpha.json": json.dumps(edited).encode(), "notes.md": b"a note\n"})
    alpha.append("- [ ] a new top of the queue {run: echo top, id: top}\n")  # alpha's file changes too
    assert alpha.ok("sync").startswith("synced")
    mine = json.loads(at_remote(remote, "hosts/alpha.json"))
    assert mine["spend"]["usd"] == 0.0 and mine["queue_top"]["id"] == "top"
    assert (alpha.wl / "notes.md").is_file()  # the rest of the remote's commit merged
    assert alpha.ok("sync").startswith("synced")
