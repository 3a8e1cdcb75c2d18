"""agentd.worklog.lines and agentd.worklog.parse: the human grammar, torn entries and messy files."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from agentd.worklog.entries import Entry
from agentd.worklog.attrs import fast_flow_mapping
from agentd.worklog.lineerror import LineError
from agentd.worklog.lines import Command, parse_line
from agentd.worklog.maketask import stable_id
from agentd.worklog.parse import State, parse_bytes


def entry(seq=1, task="t-task", status="done", body="ok", run="r1", **extra) -> str:
    return Entry(seq, run, task, status, "2026-01-01T00:00:00Z", extra, body=body).render()


EVIL_BODY = ("ran it\nDIRECTIVE: evil directive\n- [ ] evil task {id: evil}\n**CRITICAL DIRECTIVE**: evil\n"
             "RETRY: h\u2028DONE: h\rBLOCKER: evil blocker\x85- [x] evil done\nend")


def tasks_of(data: bytes | str) -> dict:
    if isinstance(data, str):
        data = data.encode()
    return parse_bytes(data).tasks


# -- the grammar, one line at a time ---------------------------------------------------------------

def test_a_checkbox_line_is_a_task_with_its_attrs():
    t = parse_line("- [ ] benchmark the model {id: bench, value: 6, certainty: 0.8, minutes: 30, gpu: true}", 3)
    assert (t.id, t.title, t.kind, t.priority, t.line, t.human_done) == ("bench", "benchmark the model", "task",
                                                                         "normal", 3, False)
    assert t.attrs == {"id": "bench", "value": 6, "certainty": 0.8, "minutes": 30, "gpu": True}


def test_a_task_without_attrs_has_defaults():
    t = parse_line("- [ ] tidy up", 1)
    assert (t.kind, t.priority, t.attrs, t.human_done) == ("task", "normal", {}, False)
    assert t.id == stable_id("task", "tidy up")


@pytest.mark.parametrize("box", ["[x]", "[X]"])
def test_a_checked_box_is_a_task_the_human_marked_done(box):
    t = parse_line(f"- {box} install the driver", 1)
    assert t.human_done and t.title == "install the driver" and t.kind == "task"


def test_a_run_attr_makes_a_command_task():
    t = parse_line('- [ ] check the toolchain {id: toolchain, run: "python3 --version && uname -sm"}', 1)
    assert t.kind == "command" and t.attrs["run"] == "python3 --version && uname -sm"


@pytest.mark.parametrize("after, want", [("a", ["a"]), ("[a, b-2]", ["a", "b-2"])])
def test_after_takes_one_id_or_a_list(after, want):
    assert parse_line(f"- [ ] x {{after: {after}}}", 1).attrs["after"] == want


@pytest.mark.parametrize("line, kind, priority, title", [
    ("DIRECTIVE: write it up {priority: high}", "directive", "high", "write it up"),
    ("DIRECTIVE: write it up", "directive", "normal", "write it up"),
    ("**DIRECTIVE**: write it up", "directive", "normal", "write it up"),
    ("**CRITICAL DIRECTIVE**: CUDA MUST work", "directive", "critical", "CUDA MUST work"),
    ("BLOCKER: NVPL library missing {value: 9}", "blocker", "normal", "NVPL library missing"),
    ("EXPERIMENT: cuda-probe {id: probe, value: 7}", "experiment", "normal", "cuda-probe"),
    ("  - [ ] indented task", "task", "normal", "indented task"),
    ("* [ ] star task", "task", "normal", "star task"),
])
def test_every_keyword_form_is_understood(line, kind, priority, title):
    t = parse_line(line, 5)
    assert (t.kind, t.priority, t.title, t.line) == (kind, priority, title, 5)


def test_the_priority_attr_sets_the_priority():
    assert parse_line("DIRECTIVE: x {priority: critical}", 1).priority == "critical"
    assert parse_line("- [ ] x {priority: low}", 1).priority == "low"


@pytest.mark.parametrize("verb", ["DONE", "CANCEL", "RETRY"])
def test_done_cancel_and_retry_are_commands_for_a_task_id(verb):
    c = parse_line(f"{verb}: t-1a2b3c4d", 9)
    assert isinstance(c, Command) and (c.verb, c.task_id, c.line) == (verb.lower(), "t-1a2b3c4d", 9)


@pytest.mark.parametrize("line", [
    "Notes from Friday: the box came back.", "- a plain list item", "Done with it", "DIRECTIVES: plural",
    "# DIRECTIVE: a comment", "> DIRECTIVE: quoted", "-[ ] no space", "", "   ", "directive: lowercase",
    "Critical: not ours", "EXPERIMENTAL results", "- [y] not a box",
])
def test_prose_is_not_read_as_anything(line):
    assert parse_line(line, 1) is None


@pytest.mark.parametrize("line, words", [
    ("- [ ] x {value: 11}", "between 0 and 10"),
    ("- [ ] x {certainty: 2}", "between 0 and 1"),
    ("- [ ] x {value: lots}", "must be a number"),
    ("- [ ] x {valeu: 3}", "did you mean 'value'"),
    ("- [ ] x {gpu: maybe}", "true or false"),
    ("- [ ] x {priority: urgent}", "critical, high, normal, low"),
    ("- [ ] x {id: 'has space'}", "id"),
    ("- [ ] x {run: [unclosed}", "YAML"),
    ("- [ ] x {run: ''}", "'run' is empty"),
    ("- [ ] x {run: '   '}", "'run' is empty"),
    ("- [ ] x {run: }", "'run' is empty"),
    ("- [ ] x {[1, 2]}", ""),
    ("- [ ] {value: 3}", "no title"),
    ("DONE:", "needs a task id"),
    ("RETRY: !!!", "needs a task id"),
    ("EXPERIMENT: {value: 3}", "needs a name"),
])
def test_a_broken_line_raises_a_line_error_that_says_why(line, words):
    with pytest.raises(LineError) as e:
        parse_line(line, 1)
    assert words in str(e.value)


# -- stable ids -------------------------------------------------------------------------------------

def test_a_task_without_an_id_gets_a_stable_one_from_its_text():
    a = parse_line("- [ ] Benchmark  the model", 1)
    b = parse_line("  - [ ] benchmark the model   ", 40)
    assert a.id == b.id and a.id.startswith("t-")
    assert parse_line("- [ ] benchmark the other model", 1).id != a.id
    assert parse_line("- [x] benchmark the model", 1).id == a.id


@pytest.mark.parametrize("attrs", ["{value: 9}", "{certainty: 0.2}", "{minutes: 5, gpu: true}",
                                   "{priority: high}", "{after: other}", "{value: 1, certainty: 1}"])
def test_the_stable_id_does_not_change_when_attrs_change(attrs):
    assert parse_line(f"- [ ] benchmark the model {attrs}", 1).id == parse_line("- [ ] benchmark the model", 1).id
    assert parse_line(f"DIRECTIVE: look at logs {attrs}", 1).id == parse_line("DIRECTIVE: look at logs", 1).id


def test_the_stable_id_does_not_change_when_a_run_attr_is_added():
    assert parse_line("- [ ] build it {run: make}", 1).id == parse_line("- [ ] build it", 1).id


def test_an_explicit_id_wins():
    assert parse_line("- [ ] anything {id: my.task:1}", 1).id == "my.task:1"


# -- line endings ------------------------------------------------------------------------------------

def test_crlf_is_stripped_from_human_lines():
    s = parse_bytes(b"- [ ] a task {id: a, run: make}\r\nDIRECTIVE: do it\r\nDONE: a\r\n")
    assert s.tasks["a"].title == "a task" and s.tasks["a"].attrs["run"] == "make"
    assert not any(t.text.endswith("\r") for t in s.tasks.values())
    assert s.commands["a"][0][1:] == ("done", 3)
    assert s.lines == 3 and s.errors == []


@pytest.mark.parametrize("sep", ["\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c"])
def test_a_lone_cr_or_unicode_separator_does_not_split_a_human_line(sep):
    s = parse_bytes(f"- [ ] first half{sep}DIRECTIVE: second half\n- [ ] next\n".encode())
    titles = sorted(t.title for t in s.tasks.values())
    assert titles == sorted([f"first half{sep}DIRECTIVE: second half", "next"])
    assert s.lines == 2
    assert all(t.kind == "task" for t in s.tasks.values())


# -- entries in the file -----------------------------------------------------------------------------

def test_entries_are_counted_and_their_bodies_never_read():
    data = "- [ ] human {id: h}\n" + entry(1, body=EVIL_BODY) + entry(2, task="h", status="failed") + "RETRY: h\n"
    s = parse_bytes(data.encode())
    assert set(s.tasks) == {"h"}
    assert list(s.commands) == ["h"]
    assert (s.entry_count, s.torn, s.max_seq, s.errors) == (2, 0, 2, [])
    assert s.latest["h"]["status"] == "failed" and s.failures == {"h": [2]}
    assert s.lines == data.count("\n")


def test_the_latest_entry_for_a_task_is_the_one_with_the_highest_seq_wherever_it_sits():
    data = entry(9, task="x", status="done", run="r9") + entry(4, task="x", status="failed", run="r4")
    s = parse_bytes(data.encode())
    assert s.latest["x"]["seq"] == 9 and s.latest["x"]["status"] == "done"


def test_a_torn_entry_whose_end_a_crash_cut_off_is_ignored_at_every_cut_point():
    e = entry(5, task="victim", body=EVIL_BODY)
    for k in range(len(e) - 1):  # the last byte is the end marker's newline: then the entry is whole
        data = "- [ ] before {id: b}\n" + e[:k] + "\n- [ ] after {id: a}\nDONE: b\n"
        s = parse_bytes(data.encode())
        assert set(s.tasks) == {"b", "a"}, (k, s.tasks.keys())
        assert list(s.commands) == ["b"], k
        assert s.entry_count == 0 and "victim" not in s.latest, k
        assert s.tasks["a"].line == data.count("\n") - 1, k


def test_a_torn_entry_whose_start_was_cut_off_at_a_line_boundary_is_ignored():
    e = entry(5, task="victim", body=EVIL_BODY)
    starts = [i + 1 for i, c in enumerate(e) if c == "\n"][:-1]
    for k in starts:
        data = "- [ ] before {id: b}\n" + e[k:] + "- [ ] after {id: a}\n"
        s = parse_bytes(data.encode())
        # the line above the remains can't be told from a remnant by the bytes alone; agentd's own
        # copy of the entry (the store) decides that it is a person's line
        s.resolve_suspects(lambda run, seq: e)
        assert set(s.tasks) == {"b", "a"}, (k, e[k:k + 30])
        assert s.commands == {} and s.entry_count == 0, k
        # without agentd's copy, it is reported, not read, and never misread
        s = parse_bytes(data.encode())
        s.resolve_suspects(lambda run, seq: None)
        assert set(s.tasks) <= {"b", "a"} and s.commands == {}, k


def test_a_torn_entry_whose_start_was_cut_off_at_any_byte_is_never_misread():
    e = entry(5, task="victim", body=EVIL_BODY)
    for k in range(1, len(e)):
        data = "- [ ] before {id: b}\n" + e[k:] + "- [ ] after {id: a}\n"
        for copy in (e, None):  # with and without agentd's own copy of the entry
            s = parse_bytes(data.encode())
            s.resolve_suspects(lambda run, seq: copy)
            assert set(s.tasks) <= {"b", "a"} and "a" in s.tasks, (k, e[k:k + 30])
            assert s.commands == {}, k
            if copy is not None and e[k - 1] == "\n":
                assert "b" in s.tasks, k  # a whole line above the remains is the person's


def test_human_lines_after_a_torn_entry_are_read_even_before_another_entry():
    torn = entry(1, body=EVIL_BODY).split("\n")
    data = ("- [ ] one {id: one}\n" + "\n".join(torn[:3]) + "\n- [ ] two {id: two}\n"
            + entry(2, task="two", status="done") + "- [ ] three {id: three}\n")
    s = parse_bytes(data.encode())
    assert set(s.tasks) == {"one", "two", "three"}
    assert (s.torn, s.entry_count) == (1, 1)
    assert s.latest["two"]["status"] == "done"


def test_a_persons_edit_inside_an_entry_keeps_it_whole():
    e = entry(3, task="kept", status="failed", body="line one\nline two\nline three")
    edited = e.replace("> line two\n", "> line two, with a note from me\n- [ ] a task typed inside it\n"
                                       "DIRECTIVE: also inside\n\n")
    s = parse_bytes(("- [ ] h {id: h}\n" + edited + "- [ ] after {id: after}\n").encode())
    assert (s.entry_count, s.torn) == (1, 0)
    assert s.latest["kept"]["status"] == "failed"
    assert set(s.tasks) == {"h", "after"}
    assert s.tasks["after"].line == 1 + edited.count("\n") + 1


def test_line_numbers_stay_right_after_an_edit_that_keeps_an_entrys_byte_count():
    e = entry(1, body="aaa bbb\nccc")
    edited = e.replace("> aaa bbb", "> aaa\nbbb")
    assert len(edited) == len(e)
    data = "- [ ] one\n" + edited + "- [ ] two {value: 99}\n"
    s = parse_bytes(data.encode())
    assert s.errors[0][0] == data.count("\n")


def test_a_damaged_begin_marker_is_reported_and_the_lines_after_it_are_read():
    data = "=== agentd entry seq=x run=? ===\n> DIRECTIVE: quoted stays quoted\n- [ ] real {id: real}\n"
    s = parse_bytes(data.encode())
    assert set(s.tasks) == {"real"}
    assert s.errors and s.errors[0][0] == 1 and "damaged" in s.errors[0][1]


def test_an_orphan_end_marker_is_ignored():
    s = parse_bytes(b"=== agentd end seq=3 run=r1 ===\n- [ ] t {id: t}\n")
    assert set(s.tasks) == {"t"} and s.errors == [] and s.entry_count == 0


# -- messy files ---------------------------------------------------------------------------------------

def test_a_messy_file_lists_every_good_task_and_reports_bad_lines_by_number():
    lines = [
        b"# a worklog that has seen things",                       # 1
        b"- [ ] good one {id: g1}",                                 # 2
        b"- [ ] bad utf8 \xff\xfe {id: u}",                         # 3 bad
        b"- [ ] good two {id: g2}\r",                               # 4 (CRLF)
        b"- [ ] nul \x00 byte {id: n}",                             # 5 bad
        b"- [ ] " + b"x" * 3_000_000 + b" {id: huge}",              # 6 bad (3 MB)
        b"prose " * 500_000,                                        # 7 prose, 3 MB: not an error
        b"- [ ] broken attrs {value: ten}",                         # 8 bad
        b"DIRECTIVE: broken yaml {after: [a, }",                    # 9 bad
        b"- [ ] \x1b[31mred\x1b[0m title {id: g3}",                 # 10 good (escape sequences)
        b"\xc3\x28 invalid prose that starts badly",                # 11 prose: not an error
        b"DIRECTIVE: good directive {id: g4}\r",                    # 12
        b"=== agentd entry broken",                                 # 13 bad marker
        b"BLOCKER: good blocker {id: g5, value: 9}",                # 14
        b"- [ ] \xf0\x9f\x90\x8d snake {id: g6}",                   # 15 good (4-byte UTF-8)
    ]
    data = b"\n".join(lines) + b"\n"
    s = parse_bytes(data)
    assert set(s.tasks) == {"g1", "g2", "g3", "g4", "g5", "g6"}
    assert sorted(line for line, _ in s.errors) == [3, 5, 6, 8, 9, 13]
    assert s.error_count == 6
    msgs = dict(s.errors)
    assert "UTF-8" in msgs[3] and "NUL" in msgs[5] and "long" in msgs[6]
    assert s.lines == len(lines)


def test_a_file_saved_as_utf16_or_binary_does_not_raise():
    for data in ["- [ ] x\n".encode("utf-16"), bytes(range(256)) * 50, b"\n" * 1000, b"\r" * 1000, b""]:
        parse_bytes(data)


def test_a_byte_order_mark_does_not_hide_the_first_task():
    s = parse_bytes("\ufeff- [ ] first {id: first}\r\n- [ ] second {id: second}\r\n".encode())
    assert set(s.tasks) == {"first", "second"}


def test_a_byte_order_mark_left_mid_file_by_joining_files_hides_nothing():
    s = parse_bytes("- [ ] first {id: first}\n\ufeff- [ ] second {id: second}\n".encode())
    assert set(s.tasks) == {"first", "second"} and s.tasks["second"].line == 2


def test_a_duplicate_task_keeps_the_last_definition_and_records_the_earlier_line():
    s = parse_bytes(b"- [ ] a {id: x, value: 1}\n- [ ] b {id: x, value: 2}\n")
    assert s.tasks["x"].attrs["value"] == 2 and s.dup_lines == {"x": [1]}


# -- property tests ----------------------------------------------------------------------------------

FRAGMENTS = [b"\n", b"\r\n", b"\r", b"- [ ] ", b"- [x] ", b"DIRECTIVE: ", b"**CRITICAL DIRECTIVE**: ", b"DONE: ",
             b"RETRY: ", b"BLOCKER: ", b"EXPERIMENT: ", b"{", b"}", b"{id: a}", b"{value: 3", b"=== agentd entry ",
             b"=== agentd end seq=1 run=r1 ===", b"seq=1 run=r1 task=a status=done at=x lines=2 bytes=40 ===",
             b"> ", b"\x00", b"\xff", b"\xe2\x80\xa8", b"x", b" ", entry(1, task="a").encode(),
             entry(2, task="a", status="failed").encode()[:50]]
messy_bytes = st.one_of(st.binary(max_size=400),
                        st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=8)), max_size=40)
                        .map(b"".join))


@settings(max_examples=200, deadline=None)
@given(messy_bytes)
@example(b"DONE:\x80")
@example(b"- [ ] x {value: 99} \x00")
def test_property_parse_bytes_never_raises(data):
    s = parse_bytes(data)
    assert s.lines <= data.count(b"\n") + 1
    assert s.error_count >= len(s.errors)


_line_chars = st.characters(blacklist_characters="\n")
human_line = st.one_of(
    st.sampled_from(["- [ ] a task {id: a}", "- [x] done one", "DIRECTIVE: steer {priority: high}",
                     "**CRITICAL DIRECTIVE**: now", "BLOCKER: stuck", "EXPERIMENT: health", "DONE: a",
                     "RETRY: a", "CANCEL: b", "prose", "", "- [ ] bad {value: 99}", "- [ ] cr\rinside",
                     "DIRECTIVE: sep\u2028inside"]),
    st.text(alphabet=_line_chars, max_size=40),
    st.builds(lambda t: f"- [ ] {t}", st.text(alphabet=_line_chars, min_size=1, max_size=30)),
)
human_text = st.lists(human_line, max_size=12).map(lambda ls: "".join(line + "\n" for line in ls))


def _surrogate_free(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@settings(max_examples=200, deadline=None)
@given(human=human_text, body=st.text(), task=st.text(min_size=1, max_size=30), tail=st.text(max_size=3))
def test_property_an_entry_with_arbitrary_text_adds_no_task_or_command(human, body, task, tail):
    human = _surrogate_free(human)
    alone = parse_bytes(human.encode())
    data = (human + Entry(7, "r-x", task, "done", "2026-01-01T00:00:00Z", body=body + tail).render()).encode()
    s = parse_bytes(data)
    assert s.tasks == alone.tasks
    assert s.commands == alone.commands
    assert s.errors == alone.errors
    assert (s.entry_count, s.torn) == (alone.entry_count + 1, alone.torn)


@settings(max_examples=150, deadline=None)
@given(before=human_text, after=human_text, body=st.text())
def test_property_human_lines_after_an_entry_are_still_read(before, after, body):
    before, after = _surrogate_free(before), _surrogate_free(after)
    e = Entry(3, "r-y", "t", "failed", "2026-01-01T00:00:00Z", body=body).render()
    with_entry = parse_bytes((before + e + after).encode())
    without = parse_bytes((before + after).encode())
    assert set(with_entry.tasks) == set(without.tasks)
    assert {k: [v[1] for v in vs] for k, vs in with_entry.commands.items()} == \
           {k: [v[1] for v in vs] for k, vs in without.commands.items()}


doc_piece = st.one_of(
    human_line.map(lambda line: _surrogate_free(line) + "\n"),
    st.builds(lambda seq, task, status, body: entry(seq, task=task, status=status, body=body),
              st.integers(1, 50), st.sampled_from(["a", "b", "t-1"]),
              st.sampled_from(["done", "failed", "running", "deferred"]), st.text(max_size=60)),
    st.builds(lambda seq, body, cut: entry(seq, body=body)[:cut] + "\n", st.integers(1, 50), st.text(max_size=40),
              st.integers(0, 200)),
    st.builds(lambda seq, body, cut: entry(seq, body=body)[cut:], st.integers(1, 50), st.text(max_size=40),
              st.integers(0, 200)),
    st.just("=== agentd entry damaged\n"),
)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(doc_piece, max_size=10), data=st.data())
def test_property_feeding_in_two_pieces_at_a_line_boundary_equals_one_feed(pieces, data):
    raw = _surrogate_free("".join(pieces)).encode()
    boundaries = [0] + [i + 1 for i, b in enumerate(raw) if b == 0x0A]
    k = data.draw(st.sampled_from(boundaries))
    whole = parse_bytes(raw).to_dict()
    s = State()
    used = s.feed(raw[:k], final=False)
    assert used <= k
    s.feed(raw[used:], final=True)
    assert s.to_dict() == whole


# fast_flow_mapping must agree with yaml wherever it gives an answer.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
simple_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k.lower() not in _YAML_WORDS)
scalar = st.one_of(
    st.sampled_from(["yes", "no", "Yes", "NO", "on", "Off", "true", "False", "TRUE", "null", "Null", "~", "y", "n",
                     "0", "-0", "1", "-1", "1.5", "-0.25", "1.", "1.0.0", ".5", ".inf", "-.inf", ".nan", "1e3",
                     "0x1f", "0o17", "017", "+1", "1_000", "2024-01-01", "2024-01-01T10:00:00Z", "1:30", "a.b",
                     "-", "--x", "x-y", "a:b", "10:00-12:00", "x: y", "a - b", "-a", "- a", ":", "a:", ".", "..",
                     "=", "<<", "make test", "./bench.sh 7b", "python3 --version", "v1.2.3", "TRUE x"]),
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: f"{f:.3f}"),
    st.text(alphabet="abcxyzT019 .-:_/", min_size=1, max_size=12),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(simple_key, scalar, st.sampled_from([" ", "  "])), max_size=5),
       st.sampled_from(["", " ", ","]))
def test_property_fast_flow_mapping_agrees_with_yaml(pairs, trail):
    text = "{" + ", ".join(f"{k}:{sp}{v}" for k, v, sp in pairs) + (trail if pairs else "") + "}"
    fast = fast_flow_mapping(text)
    assume(fast is not None)
    slow = yaml.safe_load(text)
    assert fast == slow
    assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in slow.items()}


def test_fast_flow_mapping_handles_the_common_forms():
    assert fast_flow_mapping("{id: bench, value: 6, certainty: 0.8, gpu: true, minutes: 30}") == {
        "id": "bench", "value": 6, "certainty": 0.8, "gpu": True, "minutes": 30}
    assert fast_flow_mapping('{run: "quoted"}') == {"run": "quoted"}
    assert fast_flow_mapping("{run: 'it''s: a, b & c #1', id: x}") == {"run": "it's: a, b & c #1", "id": "x"}
    assert fast_flow_mapping('{run: "a\\tb"}') is None  # an escape: handed to yaml
    assert fast_flow_mapping("{run: x 'y'}") is None  # a quote inside a plain scalar: handed to yaml


quoted_text = st.text(alphabet="ab '\"\\,:#&{}[]-?*!|>%@`\t\u00e9\u00a0\u2028", max_size=10)
quoted = st.one_of(quoted_text.map(lambda t: "'" + t.replace("'", "''") + "'"),
                   quoted_text.map(lambda t: "'" + t + "'"),
                   quoted_text.map(lambda t: '"' + t + '"'))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(simple_key, st.one_of(quoted, scalar), st.sampled_from([" ", "  ", ""]),
                          st.sampled_from(["", " "])), max_size=5),
       st.sampled_from(["", " ", ","]))
def test_property_fast_flow_mapping_agrees_with_yaml_on_quoted_values(pairs, trail):
    text = "{" + ", ".join(f"{k}:{sp}{v}{after}" for k, v, sp, after in pairs) + (trail if pairs else "") + "}"
    fast = fast_flow_mapping(text)
    assume(fast is not None)
    assert fast == yaml.safe_load(text)


def _yaml_or_error(text):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return "YAMLError"


@pytest.mark.parametrize("text", ["{on: 1}", "{yes: 1}", "{null: 1}"])
def test_fast_flow_mapping_agrees_with_yaml_on_keys_that_are_yaml_words(text):
    fast = fast_flow_mapping(text)
    assert fast is None or fast == _yaml_or_error(text)


@pytest.mark.parametrize("text", ["{run: ls foo?}", "{a: x?y}", "{,}", "{a: 1,,}"])
def test_fast_flow_mapping_agrees_with_yaml_where_yaml_rejects_the_text(text):
    fast = fast_flow_mapping(text)
    assert fast is None or fast == _yaml_or_error(text)


# The fast path (runs of regular entries folded together) must read every file exactly as the
# careful one (entry by entry, line by line) does.
def _same_size_edit(e: str, pos: int) -> str:
    """Turn one byte of an entry's body into a newline (or a newline into a space): the size stays."""
    body_start = e.index("\n") + 1
    i = body_start + pos % max(1, len(e) - body_start - 1)
    return e[:i] + ("\n" if e[i] != "\n" else " ") + e[i + 1:]


fast_piece = st.one_of(
    doc_piece,
    st.builds(lambda seq, body: entry(seq, body=body, restored="1"), st.integers(1, 50), st.text(max_size=40)),
    st.builds(lambda seq, body: entry(seq, body=body).replace(f"seq={seq} ", f"seq=0{seq} ", 1),
              st.integers(1, 50), st.text(max_size=40)),
    st.builds(lambda seq, body, pos: _same_size_edit(entry(seq, body=body), pos),
              st.integers(1, 50), st.text(min_size=1, max_size=40), st.integers(0, 100)),
    st.builds(lambda seq, status: entry(seq, status=status), st.integers(1, 50), st.sampled_from(["Done", "note"])),
)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(fast_piece, max_size=12))
def test_property_the_fast_path_reads_like_the_careful_one(pieces):
    raw = _surrogate_free("".join(pieces)).encode()
    fast = parse_bytes(raw)
    careful = State()
    careful.lines = careful._careful(raw, 0, len(raw), 0)
    assert fast.to_dict() == careful.to_dict()
    assert fast.present == careful.present


def test_a_same_size_edit_inside_an_entry_in_a_long_run_keeps_line_numbers_right():
    run = "".join(entry(i, body=f"line {i}\nmore") for i in range(1, 40))
    edited = run.replace("> line 20\n> more", "> line 20 > more", 1)  # one line fewer, same size
    assert len(edited) == len(run) and edited != run
    data = (edited + "- [ ] after {value: 99}\n").encode()
    s = parse_bytes(data)
    assert s.errors[0][0] == data.count(b"\n") and s.entry_count == 39


def test_an_attr_given_twice_is_a_bad_line_not_a_silent_last_one_wins():
    s = parse_bytes(b"- [ ] t {id: dk, network: false, network: true}\n- [ ] ok {id: ok}\n")
    assert set(s.tasks) == {"ok"}
    assert s.errors == [(1, "the line is not read: attrs: 'network' is given twice; keep one")]


def test_approve_and_deny_lines_take_the_id_before_any_punctuation_and_the_rest_as_the_reason():
    s = parse_bytes(b"APPROVE: ap-1a2b3c, go ahead\nDENY: ap-4d5e6f: not on my watch\n")
    assert s.answers == {"ap-1a2b3c": ["approve", "go ahead", 1, 0.5, ""],
                         "ap-4d5e6f": ["deny", "not on my watch", 2, 0.5, ""]}


# -- lines agentd would misread or ignore (issue 19) -------------------------------------------------

def test_a_task_line_whose_attrs_never_close_is_unreadable_not_a_task():
    s = parse_bytes(b"- [ ] broken {value: eleven, colour: red\nDIRECTIVE: think {priority: high\n")
    assert len(s.tasks) == 0
    assert [line for line, _ in s.errors] == [1, 2]
    assert "have no closing '}'" in s.errors[0][1]


def test_braces_a_title_holds_in_other_forms_stay_in_the_title():
    s = parse_bytes(b"- [ ] fix {foo} parsing\n- [ ] handle a { in JSON\n- [ ] x {value: 3}\n")
    assert sorted(t.title for t in s.tasks.values()) == ["fix {foo} parsing", "handle a { in JSON", "x"]
    assert not s.errors


def test_a_prose_line_like_a_keyword_is_reported_with_a_did_you_mean_and_stays_prose():
    s = parse_bytes(b"EXPRIMENT: health\n**DIRECTVE**: go\nDone: t-1\nNote: prose\nTODO: more prose\n"
                    b"APPROVED: ap-1\n")
    assert len(s.tasks) == 0 and not s.commands and not s.answers  # never guess-run
    got = dict(s.errors)
    assert sorted(got) == [1, 2, 3, 6]
    assert got[1].endswith("did you mean EXPERIMENT:?") and got[2].endswith("did you mean DIRECTIVE:?")
    assert got[3].endswith("did you mean DONE:?") and got[6].endswith("did you mean APPROVE:?")


# -- issue 19: lines a newcomer wrote that looked read but were not ----------------------------------

@pytest.mark.parametrize("line", ['- [ ] trailing text {run: "true"} and then some words',
                                  '- [ ] two braces {run: "echo hi"} {value: 3}',
                                  'DIRECTIVE: do it {priority: high} please'])
def test_attrs_followed_by_more_text_make_an_unreadable_line_not_an_agent_task(line):
    s = parse_bytes(f"{line}\n- [ ] fix {{foo}} parsing\n- [ ] a {{ in JSON\n".encode())
    assert sorted(t.title for t in s.tasks.values()) == ["a { in JSON", "fix {foo} parsing"]
    assert len(s.errors) == 1 and s.errors[0][0] == 1
    assert "must end the line" in s.errors[0][1] and "not read" in s.errors[0][1]


@pytest.mark.parametrize("line, meant", [("DIRECTIVE find the bug", "DIRECTIVE:"),
                                         ("EXPERIMENT health", "EXPERIMENT:"),
                                         ("**CRITICAL DIRECTIVE** stop", "CRITICAL DIRECTIVE"),
                                         ('-[ ] no space task {run: "true"}', "- [ ] "),
                                         ('- [] empty box {run: "true"}', "- [ ] "),
                                         ('* [x]done {run: "true"}', "- [ ] ")])
def test_a_keyword_without_its_colon_or_a_box_without_its_spaces_is_reported_and_stays_prose(line, meant):
    s = parse_bytes(f"intro\n{line}\n".encode())
    assert not s.tasks and not s.commands
    assert len(s.errors) == 1 and s.errors[0][0] == 2, s.errors
    assert meant in s.errors[0][1] and "prose" in s.errors[0][1]


@pytest.mark.parametrize("line", ["- a bullet", "DONE with that, moving on? no", "Directive find it",
                                  "- [link](http://x) text", "EXPERIMENTAL results", "* bold item",
                                  "A DIRECTIVE from above"])
def test_ordinary_prose_near_those_is_not_reported(line):
    s = parse_bytes(f"{line}\n".encode())
    assert not s.errors and not s.tasks


@pytest.mark.parametrize("line", ["- [ ] x {value: 3, colour: red}", "- [ ] x {value: eleven}"])
def test_a_bad_attr_says_the_whole_line_is_not_read(line):
    s = parse_bytes(f"{line}\n".encode())
    assert len(s.errors) == 1 and "the line is not read" in s.errors[0][1], s.errors
