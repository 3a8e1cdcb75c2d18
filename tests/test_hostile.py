"""Hostile inputs: YAML bombs, huge numbers, deep nesting, absurd seqs, symlinks, full disks.

Every case must give a clear answer (an exit code and a message naming the file, line or key),
never a traceback, a hang or a host that stays broken.  The corpus in tests/hostile/ is run by
``test_corpus``; the cases below reproduce each problem of issue 12 one by one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import can_mount, run_cli, still

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def no_traceback(r) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-3000:]


# -- a. YAML: alias bombs, size and depth ------------------------------------------------

def test_a_yaml_alias_bomb_in_a_task_file_is_refused_quickly(worklog, tmp_path):
    worklog.write_text("- [ ] fine {id: fine, run: 'true'}\n")
    tasks = tmp_path / "wl" / "tasks"
    tasks.mkdir()
    (tasks / "bomb.yaml").write_text(BOMB)
    r = run_cli("queue", "--json", timeout=20)
    no_traceback(r)
    assert r.returncode == 0
    out = json.loads(r.stdout)
    assert [t["id"] for t in out["tasks"]] == ["fine"]
    assert any("bomb.yaml" in p and "alias" in p for p in out["task_file_problems"]), out["task_file_problems"]


def test_a_yaml_alias_bomb_in_the_config_is_a_config_error(worklog, home):
    cfg = home / ".config" / "agentd"
    cfg.mkdir(parents=True)
    (cfg / "config.yaml").write_text(BOMB)
    r = run_cli("queue", timeout=20)
    no_traceback(r)
    assert r.returncode == 78
    assert "config.yaml" in r.stderr and "alias" in r.stderr


def test_deep_nesting_and_huge_numbers_in_the_config_are_config_errors(worklog, home):
    cfg = home / ".config" / "agentd"
    cfg.mkdir(parents=True)
    for text, want in [("max_steps: " + "9" * 5000 + "\n", "digits"),
                       ("budget: " + "[" * 30000 + "]" * 30000 + "\n", "deep"),
                       ("budget:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 3000)), "deep"),
                       ("x: 1\n" * 10 + "notify: '" + "y" * (2 << 20) + "'\n", "bytes")]:
        (cfg / "config.yaml").write_text(text)
        r = run_cli("queue", timeout=30)
        no_traceback(r)
        assert r.returncode == 78, (text[:40], r.stderr[-500:])
        assert "config.yaml" in r.stderr and want in r.stderr, r.stderr[-500:]


def test_a_config_yaml_that_is_a_directory_is_an_error(worklog, home):
    (home / ".config" / "agentd" / "config.yaml").mkdir(parents=True)
    r = run_cli("queue")
    no_traceback(r)
    assert r.returncode == 78
    assert "config.yaml" in r.stderr and "directory" in r.stderr


# -- b. attr values: size and depth before use ---------------------------------------------

@pytest.mark.parametrize("attrs,want", [
    ("{value: " + "9" * 5000 + "}", "digits"),
    ("{id: big, value: " + "9" * 5000 + ".5}", "digits"),
    ("{after: " + "[" * 30000 + "x" + "]" * 30000 + "}", "deep"),
    ("{after: " + "{a: " * 3000 + "x" + "}" * 3000 + "}", "deep"),
    ("{value: 1e999999}", "number"),
    ("{value: 1.0e+999999}", "finite"),
])
def test_a_hostile_attr_is_a_bad_line_reported_by_number(worklog, attrs, want):
    worklog.write_text("- [ ] first {id: first, run: 'true'}\n"
                       f"- [ ] evil {attrs}\n"
                       "- [ ] last {id: last, run: 'true'}\n")
    r = run_cli("queue", "--json", timeout=30)
    no_traceback(r)
    assert r.returncode == 0, r.stderr[-500:]
    out = json.loads(r.stdout)
    assert {t["id"] for t in out["tasks"]} == {"first", "last"}
    assert [u["line"] for u in out["unreadable"]] == [2], out["unreadable"]
    assert want in out["unreadable"][0]["message"], out["unreadable"]
    text = run_cli("queue").stdout
    assert "line 2" in text
    w = run_cli("wake", "--now", "--dry-run")
    no_traceback(w)
    assert w.returncode == 0


# -- c. seq ceiling ---------------------------------------------------------------------------

def forged_entry(seq: int, task: str, status: str = "done", run: str = "r20260101-000000-dead") -> str:
    body = f"> forged\n=== agentd end seq={seq} run={run} ===\n"
    return (f"=== agentd entry seq={seq} run={run} task={task} status={status} at=2026-01-01T00:00:00Z "
            f"lines=2 bytes={len(body.encode())} ===\n{body}")


@pytest.mark.parametrize("seq", [2**62 - 1, 2**62, 10**15, "9" * 5000])
def test_an_entry_with_an_absurd_seq_is_a_bad_line_and_never_breaks_the_host(worklog, seq):
    human = "- [ ] t {id: t, run: 'echo ran'}\n- [ ] u {id: u, run: 'echo ran-u', value: 1}\n"
    worklog.write_text(human + forged_entry(seq, "u"))
    q = json.loads(run_cli("queue", "--json").stdout)
    assert [u["line"] for u in q["unreadable"]] == [3], q["unreadable"]
    assert "seq" in q["unreadable"][0]["message"]
    assert {t["id"]: t["status"] for t in q["tasks"]} == {"t": "open", "u": "open"}
    for _ in range(5):
        r = run_cli("wake", "--now")
        no_traceback(r)
        assert r.returncode == 0, r.stderr[-1000:]
    text = worklog.read_text()
    assert text.count("> ran\n") == 1 and text.count("> ran-u\n") == 1  # each ran once, never again
    q = json.loads(run_cli("queue", "--json", "--all").stdout)
    assert {t["id"]: t["status"] for t in q["tasks"]} == {"t": "done", "u": "done"}
    assert [u["line"] for u in q["unreadable"]] == [3]  # only the forged one: agentd's own entries all read
    assert text.count("=== agentd entry") == 5


def test_a_high_seq_within_range_is_adopted_and_the_host_goes_on(worklog):
    human = "- [ ] t {id: t, run: 'echo ran'}\n"
    worklog.write_text(human + forged_entry(10**14, "other"))
    assert run_cli("wake", "--now").returncode == 0
    q = json.loads(run_cli("queue", "--json", "--all").stdout)
    assert q["unreadable"] == [] and q["tasks"][0]["status"] == "done"
    assert "seq=100000000000001 " in worklog.read_text()


def test_a_store_whose_counter_an_old_release_pushed_past_the_ceiling_numbers_below_it_again(worklog, home):
    import sqlite3

    worklog.write_text("- [ ] t {id: t, run: 'echo ran'}\n- [ ] u {id: u, run: 'echo ran-u', value: 1}\n")
    assert run_cli("wake", "--now").returncode == 0
    db = sqlite3.connect(home / ".local/state/agentd/agentd.sqlite3")
    db.execute("UPDATE counters SET value=? WHERE name='seq'", (2**62,))
    db.commit()
    db.close()
    for _ in range(3):
        assert run_cli("wake", "--now").returncode == 0
    q = json.loads(run_cli("queue", "--json", "--all").stdout)
    assert q["unreadable"] == [] and {t["status"] for t in q["tasks"]} == {"done"}
    assert worklog.read_text().count("> ran-u\n") == 1


# -- d. a symlinked worklog -----------------------------------------------------------------

@pytest.mark.parametrize("cmd", [("queue",), ("queue", "--json"), ("status",), ("wake", "--now"),
                                 ("wake", "--dry-run"), ("add", "x"), ("directive", "y"), ("reindex",)])
def test_a_symlinked_worklog_is_an_error_naming_it_and_the_target_is_never_written(worklog, tmp_path, cmd):
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0:root:/root:/bin/bash\n- [ ] bait {id: bait, run: 'echo pwned'}\n")
    before = target.read_bytes()
    worklog.symlink_to(target)
    r = run_cli(*cmd)
    no_traceback(r)
    if cmd == ("status",):  # status still answers, and says what is wrong with the worklog
        assert r.returncode == 0 and "symbolic link" in r.stdout, r.stdout
    else:
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert str(worklog) in r.stderr and "symbolic link" in r.stderr, r.stderr
    assert target.read_bytes() == before
    assert worklog.is_symlink()


def test_entries_are_never_restored_through_a_symlink(worklog, tmp_path):
    worklog.write_text("- [ ] t {id: t, run: 'echo ran'}\n")
    old = worklog.read_bytes()
    assert run_cli("wake", "--now").returncode == 0
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(old)  # lost the entries: a wake would restore them
    still(target)
    worklog.unlink()
    worklog.symlink_to(target)
    r = run_cli("wake", "--now")
    no_traceback(r)
    assert r.returncode == 1 and "symbolic link" in r.stderr
    assert target.read_bytes() == old


def test_the_worklog_swapped_for_a_symlink_between_check_and_append_is_not_written_through(worklog, tmp_path):
    from agentd.worklog import worklog as wl
    from agentd.errors import WorklogError

    target = tmp_path / "target"
    target.write_text("keep\n")
    worklog.symlink_to(target)
    with pytest.raises(WorklogError, match="symbolic link"):
        wl.append(worklog, "=== hello\n")
    assert target.read_text() == "keep\n"


# -- e. a full, read-only or unwritable state directory ---------------------------------------

CAN_MOUNT = can_mount()
needs_mount = pytest.mark.skipif(not CAN_MOUNT, reason="needs root and mount -t tmpfs")


@pytest.fixture
def small_state(tmp_path, monkeypatch):
    """A state directory on its own small tmpfs; yields (path, remount(options))."""
    import subprocess

    mnt = tmp_path / "statefs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)], check=True)
    monkeypatch.setenv("AGENTD_STATE_DIR", str(mnt))

    def remount(opts: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{opts}", str(mnt)], check=True)

    try:
        yield mnt, remount
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def fill(path: Path) -> None:
    with open(path / "filler", "wb", buffering=0) as f:  # (unbuffered: close has nothing left to write)
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass


READ_ONLY_COMMANDS = [("queue",), ("queue", "--json"), ("status",), ("status", "--json"), ("runs",),
                      ("wake", "--dry-run")]


@needs_mount
@pytest.mark.parametrize("how", ["full", "read-only"])
def test_a_full_or_read_only_state_dir_gives_one_message_and_exit_74_and_reads_still_work(worklog, small_state,
                                                                                          tmp_path, how):
    mnt, remount = small_state
    count = tmp_path / "count"
    worklog.write_text(f"- [ ] t {{id: t, run: 'echo x >> {count}'}}\n- [ ] u {{id: u, run: 'echo y', value: 1}}\n")
    assert run_cli("wake", "--now").returncode == 0  # a store, an index, a run exist
    worklog.write_text(worklog.read_text() + "- [ ] new {id: new, run: 'echo new', value: 9}\n")
    before = worklog.read_bytes()
    if how == "full":
        fill(mnt)
    else:
        remount("ro")
    for cmd in READ_ONLY_COMMANDS:
        r = run_cli(*cmd)
        no_traceback(r)
        assert r.returncode == 0, (cmd, r.stderr)
    assert "new" in run_cli("queue").stdout
    r = run_cli("wake", "--now")
    no_traceback(r)
    assert r.returncode == 74, (r.returncode, r.stderr)
    assert str(mnt) in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr
    assert worklog.read_bytes() == before  # nothing ran, nothing half-written
    if how == "full":
        (mnt / "filler").unlink()
    else:
        remount("rw")
    for _ in range(4):
        assert run_cli("wake", "--now").returncode == 0
    assert count.read_text() == "x\n"
    st = json.loads(run_cli("queue", "--json", "--all").stdout)
    assert {t["id"]: t["status"] for t in st["tasks"]} == {"t": "done", "u": "done", "new": "done"}


@needs_mount
def test_a_store_whose_first_write_failed_on_a_full_disk_reads_as_empty_and_a_wake_runs_nothing(worklog,
                                                                                                small_state,
                                                                                                tmp_path):
    mnt, _ = small_state
    ran = tmp_path / "ran"
    worklog.write_text(f"- [ ] t {{id: t, run: 'touch {ran}'}}\n")
    (mnt / "agentd.sqlite3").touch()  # the new store's file was made, then the disk filled up
    fill(mnt)
    for cmd in (*READ_ONLY_COMMANDS, ("runs", "--json"), ("show", "r1")):
        r = run_cli(*cmd)
        no_traceback(r)
        assert r.returncode == (2 if cmd[0] == "show" else 0), (cmd, r.returncode, r.stderr)
    assert "no runs yet" in run_cli("runs").stdout and json.loads(run_cli("runs", "--json").stdout) == []
    r = run_cli("wake", "--now")
    assert r.returncode == 74 and "agentd.sqlite3" in r.stderr and "disk is full" in r.stderr, r.stderr
    assert not ran.exists()
    (mnt / "filler").unlink()
    assert run_cli("wake", "--now").returncode == 0 and ran.exists()


@needs_mount
def test_a_command_that_ran_is_never_run_again_when_the_state_dir_fills_up_while_it_runs(worklog, small_state,
                                                                                         tmp_path):
    mnt, _ = small_state
    count = tmp_path / "count"
    worklog.write_text(f"- [ ] fill {{id: fill, run: 'echo ran >> {count}; "
                       f"cat /dev/zero > {mnt}/filler 2>/dev/null; true'}}\n")
    r = run_cli("wake", "--now")
    no_traceback(r)
    assert r.returncode in (0, 74), r.stderr
    assert "=== agentd entry" in worklog.read_text()
    (mnt / "filler").unlink()
    for _ in range(3):
        r = run_cli("wake", "--now")
        no_traceback(r)
        assert r.returncode == 0, r.stderr
    assert count.read_text() == "ran\n"
    st = parse_state(worklog)
    assert st.latest["fill"]["status"] == "done"


def parse_state(worklog: Path):
    from agentd.worklog.parse import parse_bytes

    return parse_bytes(worklog.read_bytes())


def test_a_state_dir_that_cannot_be_created_is_one_message(worklog, tmp_path):
    (tmp_path / "afile").write_text("x")
    worklog.write_text("- [ ] t {id: t, run: 'true'}\n")
    env = {"AGENTD_STATE_DIR": str(tmp_path / "afile" / "state")}
    for cmd in (("queue",), ("status",), ("runs",)):
        r = run_cli(*cmd, env=env)
        no_traceback(r)
        assert r.returncode == 0, (cmd, r.stderr)
    r = run_cli("wake", "--now", env=env)
    no_traceback(r)
    assert r.returncode == 74 and "afile" in r.stderr, r.stderr


# -- f. memory bounded by a chunk, not by the longest line ------------------------------------

def _peak_rss_of(code: str, env: dict | None = None) -> tuple[float, str]:
    import subprocess
    import sys

    # VmHWM, not ru_maxrss: that one keeps the pytest parent's size across fork and exec
    wrapped = code + ("\nprint('PEAK', [int(x.split()[1]) for x in open('/proc/self/status')"
                      " if x.startswith('VmHWM:')][0])\n")
    r = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, timeout=300,
                       env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr[-2000:]
    peak = int(r.stdout.rsplit("PEAK", 1)[1]) / 1024  # MiB
    return peak, r.stdout


@pytest.mark.parametrize("first", [b"\0", b"- [ ] a task that goes on ", b"=== agentd entry seq=1 "])
def test_a_huge_line_without_a_newline_is_read_in_bounded_memory(tmp_path, first):
    big = tmp_path / "big_worklog.txt"
    with open(big, "wb") as f:
        f.write(b"- [ ] before {id: before}\n" + first)
        f.truncate(400 * 2**20)  # sparse: 400 MiB of NUL bytes, no newline
        f.seek(0, 2)
        f.write(b"x\n- [ ] after {id: after}\n")
    code = (f"from pathlib import Path\nfrom agentd.worklog import worklog\nfrom agentd.worklog.index import Index\n"
            f"r = worklog.read(Path({str(big)!r}), Index(Path({str(tmp_path / 'i.sqlite3')!r})))\n"
            "print('TASKS', sorted(r.state.tasks), r.state.lines, [e[0] for e in r.state.errors])\n")
    peak, out = _peak_rss_of(code)
    assert "TASKS ['after', 'before'] 3" in out, out
    if first.startswith(b"-") or first.startswith(b"="):
        assert "[2]" in out, out  # the long line is reported by number
    assert peak < 150, f"peak RSS {peak:.0f} MiB"


# -- g. slow in-place editor saves never pile up restored entries ------------------------------

def _slow_saves(worklog, buffer: bytes, rounds: int, pause_past_quiet: bool) -> None:
    """An editor saving ``buffer`` in place, slowly: truncate, write part, (a wake), write the rest."""
    for rnd in range(rounds):
        cut = len(buffer) * (rnd % 7 + 1) // 8
        with open(worklog, "r+b") as f:
            f.truncate(0)
            f.write(buffer[:cut])
            f.flush()
            if pause_past_quiet:  # the editor stalls longer than the quiet period, mid-save
                still(worklog)
            no_traceback(run_cli("wake", "--now"))  # a wake in the middle of the save
            f.write(buffer[cut:])
        no_traceback(run_cli("wake", "--now"))  # and one right after it


def _restores(home) -> dict:
    import sqlite3

    db = sqlite3.connect(home / ".local/state/agentd/agentd.sqlite3")
    return dict(db.execute("SELECT seq, restored_count FROM entries"))


@pytest.mark.parametrize("pause_past_quiet", [False, True])
def test_slow_in_place_saves_never_pile_up_restored_entries(worklog, home, pause_past_quiet):
    import re

    worklog.write_text("".join(f"- [ ] t{i} {{id: t{i}, run: 'echo {i}'}}\n" for i in range(3)))
    for _ in range(3):
        assert run_cli("wake", "--now").returncode == 0
    buffer = worklog.read_bytes()  # what the editor holds, and writes back again and again
    keys = set(re.findall(rb"=== agentd end seq=(\d+) run=(\S+) ===", buffer))
    _slow_saves(worklog, buffer, 6, pause_past_quiet)
    counts = _restores(home)
    if pause_past_quiet:  # each stalled save lost them while a wake looked: restored, at most 3 times
        assert 1 <= max(counts.values()) <= 3, counts
    else:  # a file still being written is never appended to
        assert max(counts.values()) == 0, counts
    text = worklog.read_bytes()
    for seq, run in keys:  # the editor's copy, and at most a stub of agentd's that its save wrote over
        n = len(re.findall(rb"=== agentd end seq=" + seq + rb" run=" + re.escape(run) + rb" ===", text))
        assert 1 <= n <= 2, (seq, n)
    st = parse_state(worklog)
    assert {st.latest[f"t{i}"]["status"] for i in range(3)} == {"done"}
    assert text.count(b"> 0\n") + text.count(b"> 1\n") + text.count(b"> 2\n") <= 6  # no task ran again
    still(worklog)
    r = run_cli("queue", "--json")
    assert json.loads(r.stdout)["lost_entries"] == 0


def test_an_entry_saved_over_again_and_again_is_restored_each_time_up_to_three_times(worklog, home):
    worklog.write_text("- [ ] t {id: t, run: 'echo ran'}\n")
    stale = worklog.read_bytes()  # an editor's buffer from before the wake
    assert run_cli("wake", "--now").returncode == 0
    for n in range(1, 6):
        worklog.write_bytes(stale)  # the stale buffer saved again: agentd's entries are gone
        still(worklog)
        r = run_cli("wake", "--now")
        no_traceback(r)
        text = worklog.read_text()
        if n <= 3:
            assert "restored 2 agentd entries" in r.stdout and text.count("restored=1") == 2, (n, r.stdout)
            assert json.loads(run_cli("queue", "--json").stdout)["lost_entries"] == 0
        else:  # the fourth time it stays in agentd's copy: counted, reported, never appended again
            assert "restored" not in r.stdout and "=== agentd" not in text, n
            q = json.loads(run_cli("queue", "--json").stdout)
            assert (q["lost_entries"], q["lost_entries_past_restores"]) == (2, 2)
            assert "2 were saved over after 3 restores" in run_cli("queue").stdout
            assert "stay in agentd's copy only" in run_cli("status").stdout
            worklog.write_bytes(stale)  # saved again just now: nothing says a wake will restore them
            r = run_cli("wake", "--now")
            assert "missing" not in r.stdout and "restored" not in r.stdout, r.stdout
        assert text.count("> ran") <= 1  # never run again
    assert set(_restores(home).values()) == {3}


# -- h. the corpus: every case with the exit code and the message it must give ------------------

CORPUS_DIR = Path(__file__).resolve().parent / "hostile"
CORPUS = sorted(p for p in CORPUS_DIR.glob("*/*") if p.suffix in (".txt", ".yaml"))


def _expectation(first_line: bytes) -> dict:
    text = first_line.decode().removeprefix("# expect: ")
    exp: dict = {}
    for key in ("exit", "lines"):
        if text.startswith(key + "="):
            value, _, text = text.partition(" ")
            exp[key] = value.split("=", 1)[1]
    exp["text"] = text.removeprefix("text=").split("|")
    return exp


def test_the_corpus_has_at_least_100_cases():
    assert len(CORPUS) >= 100, len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[f"{p.parent.name}/{p.stem}" for p in CORPUS])
def test_corpus(case, worklog, tmp_path, home, capsys):
    from agentd.cli import cli

    data = case.read_bytes()
    exp = _expectation(data.partition(b"\n")[0])
    kind = case.parent.name
    if kind == "worklog":
        worklog.write_bytes(data)
    else:
        worklog.write_text("# hostile\n- [ ] good {id: good, run: 'true'}\n")
        where = (tmp_path / "wl" / "tasks") if kind == "tasks" else (home / ".config" / "agentd")
        where.mkdir(parents=True)
        (where / ("case.yaml" if kind == "tasks" else "config.yaml")).write_bytes(data)
    args = ["queue"] if kind == "config" else ["queue", "--json"]
    code = cli.main(args)
    out = capsys.readouterr()
    both = out.out + out.err
    assert "Traceback" not in both
    assert code == int(exp["exit"]), (code, both[-1500:])
    for t in exp["text"]:
        assert t in both, (t, both[-1500:])
    if kind != "config":
        q = json.loads(out.out)
        if kind == "worklog":
            want = [] if exp["lines"] == "-" else [int(x) for x in exp["lines"].split(",")]
            assert [u["line"] for u in q["unreadable"]] == want, q["unreadable"][:5]
        assert "good" in {t["id"] for t in q["tasks"]}  # every other task is still listed


# -- h. property tests: attrs and YAML never raise anything but their own errors ---------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30))
_trees = st.recursive(_scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                      max_leaves=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("{}[]:,&*!|>'\"#- ab1.\\\n\t\x00\u2028e+")), max_size=80))
def test_any_attrs_text_is_read_or_refused_as_a_bad_line(raw):
    from agentd.worklog.attrs import parse_attrs
    from agentd.worklog.lineerror import LineError

    try:
        out = parse_attrs("{" + raw + "}", "w:1")
    except LineError:
        return
    assert isinstance(out, dict)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees)
def test_any_yaml_tree_loads_as_itself_or_is_refused_with_a_line(tree):
    import math

    import yaml

    from agentd.config.yamlread import load_yaml

    text = yaml.safe_dump({"k": tree})
    data, lines, problems = load_yaml(text, "f.yaml")
    if problems:
        assert all(p.startswith("f.yaml") for p in problems), problems
        return

    def same(a, b):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        if isinstance(a, list):
            return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a == b

    assert same(data, {"k": tree})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("{}[]:,&*!|>'\"#- ab1.\n\t%@`?~=<")), max_size=120))
def test_any_yaml_text_gives_data_or_problems_never_an_exception(text):
    from agentd.config.yamlread import load_yaml

    data, lines, problems = load_yaml(text, "f.yaml")
    assert isinstance(problems, list)


@needs_mount
def test_enospc_at_every_point_of_a_wake_loses_nothing_and_runs_nothing_twice(worklog, small_state, tmp_path):
    """The state dir fills at a different point of each wake (free space left: 0 to 2 MiB)."""
    mnt, _ = small_state
    count = tmp_path / "count"
    human = ""
    for k, free in enumerate([0, 8, 32, 64, 128, 256, 512, 1024, 2048]):
        line = f"- [ ] c{k} {{id: c{k}, run: 'echo c{k} >> {count}', value: 9}}\n"
        human += line
        with open(worklog, "a") as f:
            f.write(line)
        with open(mnt / "filler", "wb") as f:
            left = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize - free * 1024
            if left > 0:
                f.truncate(0)
                f.write(b"\0" * left)
        r = run_cli("wake", "--now")
        no_traceback(r)
        assert r.returncode in (0, 74), r.stderr
        (mnt / "filler").unlink()
        for _ in range(3):
            r = run_cli("wake", "--now")
            no_traceback(r)
            assert r.returncode == 0, r.stderr
        text = worklog.read_text()
        assert [ln for ln in text.splitlines(keepends=True) if ln.startswith("- [ ] c")] == human.splitlines(True)
        runs = count.read_text().splitlines() if count.exists() else []
        assert sorted(runs) == sorted(f"c{i}" for i in range(k + 1)), (free, runs)  # each ran exactly once
        st = parse_state(worklog)
        assert st.error_count == 0 and all(st.latest[f"c{i}"]["status"] == "done" for i in range(k + 1))


@needs_mount
def test_reindex_on_a_read_only_state_dir_says_it_could_not_and_exits_74(worklog, small_state):
    mnt, remount = small_state
    worklog.write_text("- [ ] t {id: t}\n")
    assert run_cli("reindex").returncode == 0
    remount("ro")
    r = run_cli("reindex")
    no_traceback(r)
    assert r.returncode == 74 and "nothing was reindexed" in r.stderr and str(mnt) in r.stderr, r.stderr
