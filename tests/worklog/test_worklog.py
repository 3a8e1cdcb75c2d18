"""agentd.worklog.worklog: the append protocol on real files, and incremental reading through the index."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentd.worklog import worklog as wl
from agentd.worklog.entries import Entry
from agentd.worklog.index import Index
from agentd.worklog.parse import parse_bytes


def entry(seq=1, task="t", status="done", body="ok") -> str:
    return Entry(seq, f"r{seq}", task, status, "2026-01-01T00:00:00Z", body=body).render()


MESSY = (b"# my notes\r\n- [ ] a task {id: a}\r\nhalf a line with \xff\xfe bad bytes\x00 and NUL\n"
         + "DIRECTIVE: do the thing\u2028 more".encode() + b"\rno newline at the end")


def same(state) -> dict:
    """A state's content; the index stores it as JSON, so tuples come back as lists."""
    return json.loads(json.dumps(state.to_dict()))


@pytest.fixture
def idx(tmp_path) -> Index:
    return Index(tmp_path / "state" / "index.sqlite3")


# -- the append protocol ----------------------------------------------------------------------------

def test_appends_never_change_the_bytes_already_there(worklog):
    worklog.write_bytes(MESSY + b"\n")
    before = worklog.read_bytes()
    for seq in range(1, 6):
        wl.append(worklog, entry(seq, body=f"entry {seq}\nDIRECTIVE: inert"))
        now = worklog.read_bytes()
        assert now[:len(before)] == before
        assert now.endswith(entry(seq, body=f"entry {seq}\nDIRECTIVE: inert").encode())
        before = now
    s = parse_bytes(worklog.read_bytes())
    assert s.entry_count == 5 and s.torn == 0
    assert sorted(t.kind for t in s.tasks.values()) == ["directive", "task"]


def test_an_append_to_a_file_not_ending_in_newline_starts_on_a_new_line(worklog):
    worklog.write_bytes(MESSY)  # ends mid-line
    wl.append(worklog, entry(1))
    data = worklog.read_bytes()
    assert data == MESSY + b"\n" + entry(1).encode()
    s = parse_bytes(data)
    assert (s.entry_count, s.torn) == (1, 0)
    assert "a" in s.tasks


def test_an_append_to_a_file_ending_in_newline_adds_no_blank_line(worklog):
    worklog.write_bytes(b"- [ ] x\n")
    wl.append(worklog, entry(1))
    assert worklog.read_bytes() == b"- [ ] x\n" + entry(1).encode()


def test_an_append_creates_a_missing_file_without_a_leading_newline(worklog):
    wl.append(worklog, entry(1))
    assert worklog.read_bytes() == entry(1).encode()


def test_appended_text_is_written_as_utf8(worklog):
    worklog.write_bytes(b"")
    wl.append(worklog, entry(1, body="caf\u00e9 \U0001f40d"))
    assert "caf\u00e9 \U0001f40d".encode() in worklog.read_bytes()


def test_after_an_editor_renames_a_new_file_into_place_the_next_append_lands_in_the_current_file(worklog):
    worklog.write_bytes(b"- [ ] old {id: old}\n")
    wl.append(worklog, entry(1))
    old_fd = os.open(worklog, os.O_RDONLY)  # the old inode, as a process that still holds it sees it
    try:
        old_ino = os.fstat(old_fd).st_ino
        new = worklog.with_name(".testhost_worklog.txt.swp")
        new.write_bytes(worklog.read_bytes() + b"- [ ] added in the editor {id: new}\n")
        os.replace(new, worklog)
        assert os.stat(worklog).st_ino != old_ino
        wl.append(worklog, entry(2))
        current = worklog.read_bytes()
        assert current.endswith(b"{id: new}\n" + entry(2).encode())
        old_size = os.fstat(old_fd).st_size
        assert old_size == len(b"- [ ] old {id: old}\n" + entry(1).encode())  # nothing went to the old inode
    finally:
        os.close(old_fd)
    s = parse_bytes(current)
    assert set(s.tasks) == {"old", "new"} and s.entry_count == 2


def test_init_writes_a_header_once_and_never_overwrites(worklog):
    assert worklog.parent.is_dir()
    assert wl.init(worklog, "testhost") is True
    first = worklog.read_bytes()
    assert b"testhost worklog" in first and b"DIRECTIVE:" in first
    # the header explains the syntax but defines no task itself
    s = parse_bytes(first)
    assert s.tasks == {} and s.commands == {} and s.errors == []
    worklog.write_bytes(first + b"- [ ] mine\n")
    assert wl.init(worklog, "testhost") is False
    assert worklog.read_bytes() == first + b"- [ ] mine\n"


# -- incremental reading through the index ----------------------------------------------------------

def test_a_missing_worklog_reads_as_missing(worklog, idx):
    r = wl.read(worklog, idx)
    assert (r.exists, r.mode) == (False, "missing")


def test_an_unchanged_file_costs_no_reading(worklog, idx):
    worklog.write_bytes(b"- [ ] a {id: a}\n" + entry(1).encode())
    first = wl.read(worklog, idx)
    assert first.mode == "full" and first.bytes_read == worklog.stat().st_size
    again = wl.read(worklog, Index(idx.path))  # a new process: a fresh connection to the same index
    assert (again.mode, again.bytes_read) == ("cached", 0)
    assert same(again.state) == same(first.state)


def test_appended_bytes_are_read_incrementally_and_only_they(worklog, idx):
    base = b"- [ ] a {id: a}\n" + entry(1).encode()
    worklog.write_bytes(base)
    wl.read(worklog, idx)
    wl.append(worklog, entry(2, task="a", status="failed"))
    wl.append(worklog, "RETRY: a\n- [ ] b {id: b}\n")
    r = wl.read(worklog, idx)
    assert r.mode == "incremental"
    assert r.bytes_read == worklog.stat().st_size - len(base)
    assert same(r.state) == same(parse_bytes(worklog.read_bytes()))
    assert set(r.state.tasks) == {"a", "b"}


def test_a_rewritten_prefix_is_parsed_again_in_full(worklog, idx):
    worklog.write_bytes(b"- [ ] a {id: a}\n- [ ] b {id: b}\n")
    wl.read(worklog, idx)
    worklog.write_bytes(b"- [x] a {id: a}\n- [ ] b {id: b}\n- [ ] c {id: c}\n")  # history edited, then grown
    r = wl.read(worklog, idx)
    assert r.mode == "full"
    assert r.state.tasks["a"].human_done is True and "c" in r.state.tasks


def test_a_file_that_shrank_is_parsed_again_in_full(worklog, idx):
    worklog.write_bytes(b"- [ ] a {id: a}\n- [ ] b {id: b}\n# the end\n")
    wl.read(worklog, idx)
    worklog.write_bytes(b"- [ ] a {id: a}\n")
    r = wl.read(worklog, idx)
    assert r.mode == "full" and set(r.state.tasks) == {"a"}


def test_an_edit_in_the_middle_of_a_large_file_is_not_missed(worklog, idx):
    filler = "".join(f"prose line {i} about nothing in particular\n" for i in range(3000))
    text = filler + "- [ ] mid task {id: mid}\n" + filler
    worklog.write_text(text)
    assert wl.read(worklog, idx).state.tasks["mid"].human_done is False
    worklog.write_text(text.replace("- [ ] mid task", "- [x] mid task"))
    r = wl.read(worklog, idx)
    assert r.state.tasks["mid"].human_done is True


def test_a_same_size_edit_with_its_mtime_set_back_is_not_missed(worklog, idx):
    """rsync -t --inplace, or touch -r, can put the old mtime back; the ctime still moves."""
    text = "- [ ] a {id: a, value: 1}\n" + "".join(f"prose {i}\n" for i in range(100))
    worklog.write_text(text)
    st = os.stat(worklog)
    assert wl.read(worklog, idx).state.tasks["a"].attrs["value"] == 1
    worklog.write_text(text.replace("value: 1}", "value: 7}"))
    os.utime(worklog, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(worklog).st_size, os.stat(worklog).st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    r = wl.read(worklog, idx)
    assert r.mode == "full" and r.state.tasks["a"].attrs["value"] == 7


def test_deleting_the_index_loses_nothing(worklog, idx):
    worklog.write_bytes(MESSY + b"\n" + entry(1, task="a", status="failed").encode())
    wl.append(worklog, "DONE: a\n")
    wl.read(worklog, idx)
    wl.append(worklog, entry(2, task="b"))
    before = same(wl.read(worklog, idx).state)
    idx.drop()
    assert not idx.path.exists()
    r = wl.read(worklog, idx)
    assert r.mode == "full" and same(r.state) == before


def test_a_damaged_index_is_treated_as_missing(worklog, idx):
    worklog.write_bytes(b"- [ ] a {id: a}\n")
    idx.path.parent.mkdir(parents=True, exist_ok=True)
    idx.path.write_bytes(b"this is not a database" * 100)
    r = wl.read(worklog, idx)
    assert set(r.state.tasks) == {"a"}


def test_a_partial_last_line_is_read_now_and_read_whole_once_finished(worklog, idx):
    # (a last whole line that could be read waits too, see the next test: "# notes" can't)
    worklog.write_bytes(b"- [ ] a {id: a}\n# notes\n- [ ] half")
    r = wl.read(worklog, idx)
    assert {t.title for t in r.state.tasks.values()} == {"a", "half"}
    with open(worklog, "ab") as f:
        f.write(b" and the rest {id: whole, value: 3}\n")
    r = wl.read(worklog, idx)
    assert r.mode == "incremental"
    assert set(r.state.tasks) == {"a", "whole"}
    assert r.state.tasks["whole"].title == "half and the rest"
    assert same(r.state) == same(parse_bytes(worklog.read_bytes()))


def test_a_last_line_that_could_be_a_cut_off_entry_start_is_read_again_with_what_follows(worklog, idx):
    """An editor that cut an entry's start can leave a task-looking remnant above its quoted lines;
    only the end marker below tells.  So such a line at the end is not committed to the index."""
    e = entry(3, task="a", body="x\ny")
    worklog.write_bytes(b"# notes\n- [ ] looks like a task {id: remnant}\n")
    assert "remnant" in wl.read(worklog, idx).state.tasks  # read now, as a task
    with open(worklog, "ab") as f:  # what follows shows it was the remnant of entry 3
        f.write(e.split("\n", 1)[1].encode())
    r = wl.read(worklog, idx)
    assert r.mode == "incremental" and "remnant" not in r.state.tasks
    assert same(r.state) == same(parse_bytes(worklog.read_bytes()))


def test_an_unchanged_file_without_a_final_newline_costs_no_reading(worklog, idx):
    worklog.write_bytes(b"- [ ] a {id: a}\n- [ ] b {id: b}")
    wl.read(worklog, idx)
    again = wl.read(worklog, idx)
    assert set(again.state.tasks) == {"a", "b"}
    assert (again.mode, again.bytes_read) == ("cached", 0)


def test_an_entry_still_being_written_is_read_whole_once_finished(worklog, idx):
    e = entry(4, task="x", status="failed", body="line\nDIRECTIVE: inside\nmore").encode()
    half = e.index(b"DIRECTIVE")  # a crash or a slow write: only part of it is there yet
    worklog.write_bytes(b"- [ ] x {id: x}\n" + e[:half])
    r = wl.read(worklog, idx)
    assert r.state.entry_count == 0 and set(r.state.tasks) == {"x"}
    with open(worklog, "ab") as f:
        f.write(e[half:])
    r = wl.read(worklog, idx)
    assert (r.state.entry_count, r.state.torn) == (1, 0)
    assert r.state.latest["x"]["status"] == "failed"
    assert same(r.state) == same(parse_bytes(worklog.read_bytes()))


def test_reading_never_changes_the_worklog(worklog, idx):
    worklog.write_bytes(MESSY)
    st = os.stat(worklog)
    for _ in range(3):
        wl.read(worklog, idx)
    assert worklog.read_bytes() == MESSY
    assert os.stat(worklog).st_mtime_ns == st.st_mtime_ns and os.stat(worklog).st_ino == st.st_ino


chunk = st.one_of(
    st.sampled_from([b"- [ ] a {id: a}\n", b"- [x] b {id: b}\n", b"DIRECTIVE: d\n", b"DONE: a\n", b"RETRY: a\n",
                     b"- [ ] bad {value: 99}\n", b"prose\r\n", b"half a li", b"ne\n", b"\xff\x00\n",
                     b"=== agentd entry damaged\n"]),
    st.builds(lambda seq, task, status, body: entry(seq, task, status, body).encode(), st.integers(1, 40),
              st.sampled_from(["a", "b", "c"]), st.sampled_from(["done", "failed", "running"]),
              st.text(max_size=30).map(lambda t: t.encode("utf-8", "replace").decode("utf-8", "replace"))),
    st.builds(lambda seq, k: entry(seq, "a", "failed", "torn\nDIRECTIVE: no").encode()[:k], st.integers(1, 40),
              st.integers(1, 150)),
)


@settings(max_examples=120, deadline=None)
@given(steps=st.lists(st.tuples(st.lists(chunk, max_size=4), st.booleans()), min_size=1, max_size=8))
def test_property_incremental_reads_always_equal_a_fresh_full_parse(steps):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "h_worklog.txt"
        index = Index(Path(d) / "index.sqlite3")
        path.write_bytes(b"")
        for chunks, read_now in steps:
            with open(path, "ab") as f:
                f.write(b"".join(chunks))
            if read_now:
                r = wl.read(path, index)
                assert same(r.state) == same(parse_bytes(path.read_bytes()))
        r = wl.read(path, index)
        assert same(r.state) == same(parse_bytes(path.read_bytes()))
        again = wl.read(path, index)
        assert same(again.state) == same(r.state)
        if path.read_bytes().endswith(b"\n") and r.state.torn == 0:
            assert (again.mode, again.bytes_read) == ("cached", 0)
        index.drop()


cut_start = st.builds(  # an entry whose start an editor cut off: a person-looking line, quoted lines, an end marker
    lambda seq, k: b"- [ ] looks like a task {id: maybe}\n" + entry(seq, "a", "done", "x\ny\nz").encode().split(
        b"\n", 1)[1][k:], st.integers(1, 40), st.sampled_from([0, 2]))


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.one_of(chunk, cut_start), max_size=14), size=st.integers(16, 300))
def test_property_reading_in_small_chunks_equals_one_parse(pieces, size):
    """The 8 MiB chunks, made tiny: every boundary falls somewhere, and the result never changes."""
    data = b"".join(pieces)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "h_worklog.txt"
        path.write_bytes(data)
        saved, wl.READ_CHUNK = wl.READ_CHUNK, size
        try:
            r = wl.read(path, Index(Path(d) / "index.sqlite3"))
        finally:
            wl.READ_CHUNK = saved
        whole = parse_bytes(data)
        assert same(r.state) == same(whole)
        assert (r.state.suspects, r.state.errors) == (whole.suspects, whole.errors)


@pytest.mark.parametrize("cmd", [("queue",), ("status",), ("wake", "--now"), ("add", "x")])
def test_a_worklog_with_a_second_hard_link_is_an_error_naming_it_and_neither_name_is_written(
        worklog, tmp_path, cmd):
    from conftest import run_cli

    worklog.parent.mkdir(parents=True, exist_ok=True)
    worklog.write_text("- [ ] t {id: t, run: 'echo ran'}\n")
    other = tmp_path / "other-name.txt"
    os.link(worklog, other)
    before = other.read_bytes()
    r = run_cli(*cmd)
    assert "Traceback" not in r.stderr, r.stderr
    if cmd == ("status",):  # status still answers, and says what is wrong with the worklog
        assert r.returncode == 0 and "hard link" in r.stdout, r.stdout
    else:
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert str(worklog) in r.stderr and "2 hard links" in r.stderr, r.stderr
    assert other.read_bytes() == before == worklog.read_bytes()


def test_appending_to_a_worklog_with_a_second_hard_link_is_refused(tmp_path):
    from agentd.errors import WorklogError

    path = tmp_path / "w.txt"
    path.write_text("keep\n")
    os.link(path, tmp_path / "elsewhere.txt")
    with pytest.raises(WorklogError, match="hard link"):
        wl.append(path, "=== hello\n")
    assert (tmp_path / "elsewhere.txt").read_text() == "keep\n"
