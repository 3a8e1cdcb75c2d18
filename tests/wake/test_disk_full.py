"""An agent that fills its disk: agentd keeps a reserve (reserve.py) that it frees to record the run and
say why (diskuse.py), runs the person's next command task, and holds agent tasks back until there is room.

Every test here works on a real small file system: a tmpfs mounted for the test (this needs root, or it
is skipped), holding the state dir, the default workspace inside it, and the worklog.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentd.config import config
from agentd.wake import diskuse, reserve

from conftest import run_cli
from fake_llm import finish, reply

MiB = 1024**2
FILL = "dd if=/dev/zero of=big bs=1M 2>&1 | tail -1"  # the agent's shell: write until the disk is full


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                           capture_output=True, text=True, timeout=30)
    except OSError as e:
        pytest.skip(f"cannot run mount: {e}")
    if p.returncode:
        pytest.skip(f"mounting a tmpfs is not permitted here (a real full disk needs root): {p.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A mounted tmpfs factory; each is unmounted after the test."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        d = tmp_path / f"disk{len(mounted)}"
        mount_tmpfs(d, size)
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        if subprocess.run(["umount", str(d)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.fixture
def full_layout(small_disk, monkeypatch):
    """State dir (and so the default workspace) and worklog on one 192 MiB disk: room for the 64 MiB
    reserve and 64 MiB beside it."""
    disk = small_disk("192m")
    monkeypatch.setenv("AGENTD_STATE_DIR", str(disk / "state"))
    monkeypatch.setenv("AGENTD_WORKLOG_DIR", str(disk / "wl"))
    (disk / "wl").mkdir()
    return disk


def anthropic_env(fake) -> dict:
    return {"ANTHROPIC_API_KEY": "sk-ant-test-" + "k" * 24, "ANTHROPIC_BASE_URL": fake.url,
            "AGENTD_CALL_TIMEOUT": "20s"}


def wake(fake, reserve_bytes: int | None = None) -> subprocess.CompletedProcess:
    """`agentd wake --now` in a subprocess; ``reserve_bytes`` replaces reserve.RESERVE_BYTES in it."""
    if reserve_bytes is None:
        return run_cli("wake", "--now", env=anthropic_env(fake))
    code = (f"import agentd.wake.reserve as r; r.RESERVE_BYTES = {reserve_bytes}\n"
            "from agentd.cli.cli import main\nraise SystemExit(main(['wake', '--now']))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **anthropic_env(fake)})


WORKLOG = ("DIRECTIVE: make a big file {id: filler}\n"  # 8 x 0.5 = 4.0: first
           "DIRECTIVE: another agent task {id: later, value: 6}\n"  # 3.0: second, when agents may run
           "- [ ] a person's command {run: echo hello-from-command, id: after, value: 1}\n")  # 0.9


def _entry_marks(worklog: Path) -> list[tuple[str, str]]:
    out = []
    for line in worklog.read_text().splitlines():
        if line.startswith("=== agentd entry "):
            kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
            out.append((kv["task"], kv["status"]))
    return out


def test_an_agent_that_fills_its_workspace_leaves_agentd_able_to_record_it_run_the_next_command_and_say_why(
        full_layout, fake, monkeypatch):
    disk = full_layout
    state, ws = disk / "state", disk / "state" / "workspace"
    wl = disk / "wl" / "testhost_worklog.txt"
    wl.write_text(WORKLOG)
    fake.script(reply(tools=[("shell", {"command": FILL})]), finish("done", "made a big file"))

    r = wake(fake)  # the agent fills the disk
    assert r.returncode == 1, r.stdout + r.stderr  # a failed run, not exit 74
    assert shutil.disk_usage(disk).free < 65 * MiB  # it did fill it: only the reserve's room is left
    run = json.loads(run_cli("runs", "--json").stdout)[0]
    assert run["task_id"] == "filler" and run["status"] == "failed"
    assert f"the agent workspace {ws} holds" in run["reason"] and "the disk is full" in run["reason"]
    assert ("filler", "failed") in _entry_marks(wl)  # its entry reached the worklog
    assert f"remove {ws / 'filler'}" in wl.read_text()

    r = wake(fake)  # the next wake: agent tasks wait, the person's command runs
    assert r.returncode == 0, r.stdout + r.stderr
    assert "after: done" in r.stdout
    assert ("after", "done") in _entry_marks(wl) and "hello-from-command" in wl.read_text()
    assert "later" not in [t for t, _ in _entry_marks(wl)]  # scored above the command, held back

    r = wake(fake)
    assert r.returncode == 0 and "nothing to do: agent tasks wait: disk full" in r.stdout, r.stdout + r.stderr
    assert str(ws) in r.stdout

    st = run_cli("status")
    assert st.returncode == 0, st.stderr
    assert f"disk:      the disk is full: the agent workspace {ws} holds" in st.stdout, st.stdout
    assert "biggest in the workspace: filler" in st.stdout and f"remove {ws / 'filler'}" in st.stdout
    assert "agent tasks wait until it has room" in st.stdout

    from agentd.cli import doctor

    lines: list[str] = []
    doctor.doctor(lines.append, lambda: config.load(dict(os.environ)), torch=False, canary=False)
    text = "\n".join(lines)
    assert f"FAIL disk of the state dir and the workspace (nearly) full: the disk is full: the agent workspace {ws}" \
        in text, text
    assert f"fix: remove {ws / 'filler'}" in text and "reserve: none" in text

    shutil.rmtree(ws / "filler")  # the person frees the space: the reserve is made again, agents run again
    fake.script(finish("done", "did the later thing"))
    r = wake(fake)
    assert r.returncode == 0 and "later: done" in r.stdout, r.stdout + r.stderr
    assert os.stat(state / "reserve").st_blocks * 512 >= reserve.RESERVE_BYTES


def test_without_the_reserve_the_agent_that_fills_the_disk_stops_every_later_wake(full_layout, fake):
    """The protection-off twin of the test above: reserve.RESERVE_BYTES = 0 in the wakes."""
    wl = full_layout / "wl" / "testhost_worklog.txt"
    wl.write_text(WORKLOG)
    fake.script(reply(tools=[("shell", {"command": FILL})]), finish("done", "made a big file"))
    first = wake(fake, reserve_bytes=0)
    assert first.returncode != 0
    r = wake(fake, reserve_bytes=0)
    assert r.returncode == 74, r.stdout + r.stderr
    assert "disk is full" in r.stderr
    assert "after" not in [t for t, _ in _entry_marks(wl)]  # the person's command never ran
    assert not (full_layout / "state" / "reserve").exists()


# -- the reserve itself ------------------------------------------------------------------------------
@pytest.fixture
def disk_cfg(small_disk, monkeypatch):
    disk = small_disk("32m")
    monkeypatch.setattr(reserve, "RESERVE_BYTES", 8 * MiB)
    monkeypatch.setattr(reserve, "MARGIN", 2 * MiB)
    cfg = config.load({**os.environ, "AGENTD_STATE_DIR": str(disk / "state")})
    cfg.ensure_state_dir()
    return disk, cfg


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the disk is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * MiB)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


def test_the_reserve_is_real_blocks_not_a_sparse_file(disk_cfg):
    disk, cfg = disk_cfg
    before = shutil.disk_usage(disk).free
    assert reserve.ensure(cfg) == reserve.MADE
    st = os.stat(reserve.path(cfg))
    assert st.st_size == 8 * MiB and st.st_blocks * 512 >= 8 * MiB
    assert before - shutil.disk_usage(disk).free >= 8 * MiB  # the disk's free space went down by it
    assert reserve.ensure(cfg) == reserve.HELD


def test_a_write_that_meets_a_full_disk_frees_the_reserve_and_goes_through(disk_cfg):
    disk, cfg = disk_cfg
    reserve.ensure(cfg)
    fill(disk / "big")
    record = disk / "state" / "record.txt"

    def write():
        with open(record, "wb") as f:
            f.write(b"r" * (2 * MiB))

    reserve.retry(cfg, write)
    assert record.stat().st_size == 2 * MiB and not reserve.path(cfg).exists()
    assert reserve.ensure(cfg) == reserve.NO_ROOM  # no room to make it again while the disk is full
    os.unlink(disk / "big")
    assert reserve.ensure(cfg) == reserve.MADE  # space is back: made again
    assert os.stat(reserve.path(cfg)).st_blocks * 512 >= 8 * MiB


def test_without_a_reserve_the_same_write_fails_for_the_full_disk(disk_cfg):
    """The twin of the test above: nothing to free, the write fails."""
    disk, cfg = disk_cfg
    fill(disk / "big")
    with pytest.raises(OSError) as e:
        reserve.retry(cfg, (disk / "state" / "record.txt").write_bytes, b"r" * (2 * MiB))
    assert e.value.errno == errno.ENOSPC


def test_sqlite_saying_the_disk_is_full_is_a_full_state_error_that_frees_the_reserve(disk_cfg):
    from agentd.store.store import Store
    from agentd.store.storedb import Tx

    disk, cfg = disk_cfg
    store = Store(cfg.store_path)
    reserve.ensure(cfg)
    fill(disk / "big")
    rows = [("x" * 4096,)] * 512

    def many():
        with Tx(store.db) as db:  # one transaction: rolled back whole when the disk is full
            db.execute("CREATE TABLE IF NOT EXISTS filler (v TEXT)")
            db.executemany("INSERT INTO filler VALUES (?)", rows)

    from agentd.errors import StateError

    with pytest.raises(StateError) as e:  # without freeing the reserve: sqlite's "database or disk is full"
        many()
    assert e.value.full and reserve.full_error(e.value) and e.value.exit_code == 74
    reserve.retry(cfg, many)
    assert store.db.execute("SELECT count(*) FROM filler").fetchone()[0] == 512


def test_the_workspace_walk_is_bounded_and_says_at_least_when_cut_off(tmp_path):
    for i in range(30):
        (tmp_path / f"t{i % 3}").mkdir(exist_ok=True)
        (tmp_path / f"t{i % 3}" / f"f{i}").write_bytes(b"x" * 8192)
    whole = diskuse.measure(tmp_path)
    assert not whole.cut and whole.total >= 30 * 8192 and [n for n, _ in whole.dirs] != []
    cut = diskuse.measure(tmp_path, max_entries=5)
    assert cut.cut and cut.size(cut.total).startswith("at least ") and cut.total < whole.total


@pytest.mark.parametrize("protected", [True, pytest.param(False, marks=pytest.mark.xfail(
    strict=True, reason="PROTECTION OFF: the killed agent run is resumed onto the full disk"))])
def test_an_interrupted_agent_run_is_not_resumed_while_the_disk_is_full(full_layout, fake, monkeypatch, protected):
    import signal
    import time

    from conftest import AGENTD

    disk = full_layout
    ws = disk / "state" / "workspace" / "filler"
    worklog = disk / "wl" / "testhost_worklog.txt"
    worklog.write_text(WORKLOG)
    fake.script(reply(tools=[("shell", {"command": "touch started; sleep 60"})]),
                finish("done", "Resumed once there was room, and finished."))
    env = {**os.environ, **anthropic_env(fake)}
    if not protected:  # PROTECTION OFF, ON PURPOSE: settling resumes agent runs whatever the disk
        site = disk.parent / "off"
        site.mkdir()
        (site / "sitecustomize.py").write_text("import agentd.wake.settle as s\ns.agents_held = lambda cfg, view: None\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    p = subprocess.Popen([*AGENTD, "wake", "--now"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (ws / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (ws / "started").exists()
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    fill(disk / "someone-elses-file")  # the disk fills up meanwhile
    r = subprocess.run([*AGENTD, "wake", "--now"], env=env, capture_output=True, text=True, timeout=120)
    assert "after: done" in r.stdout, r.stdout + r.stderr
    assert len(fake.requests) == 1  # the agent run waits for room: no model call
    (disk / "someone-elses-file").unlink()
    r = subprocess.run([*AGENTD, "wake", "--now"], env=env, capture_output=True, text=True, timeout=120)
    assert "filler: done" in r.stdout, r.stdout + r.stderr
    runs = [x for x in json.loads(run_cli("runs", "--json").stdout) if x["task_id"] == "filler"]
    assert len(runs) == 1  # the same run, resumed from its checkpoint
