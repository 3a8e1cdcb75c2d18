"""The RULE: line (issue 21, part 4): read, given a stable id, never a task; ended by a person's
DONE/CANCEL below it; near misses said; `agentd check` knows it."""

from __future__ import annotations

from agentd.worklog.lines import Rule, parse_line
from agentd.worklog.maketask import stable_id
from agentd.worklog.parse import parse_bytes
from agentd.worklog.standing import in_force

from conftest import run_cli


def test_a_rule_line_is_read_with_a_stable_id_and_is_never_a_task():
    r = parse_line("**RULE**: never delete anything under /data", 4)
    assert r == Rule(stable_id("rule", "never delete anything under /data"), "never delete anything under /data", 4)
    assert parse_line("RULE: Never  delete anything under /data", 9).id == r.id  # as a title's: case, spaces
    assert parse_line("RULE: be quiet at night {id: quiet}", 1).id == "quiet"
    st = parse_bytes(b"RULE: be quiet at night {id: quiet}\n")
    assert len(st.tasks) == 0 and [(x.id, x.line, x.kind) for x in in_force(st)] == [("quiet", 1, "rule")]


def test_done_or_cancel_below_a_rule_ends_it_and_a_critical_directive_stays_until_then():
    st = parse_bytes(b"RULE: a {id: a}\nDONE: b\n**CRITICAL DIRECTIVE**: CUDA MUST work {id: b}\nRULE: c {id: c}\n"
                     b"CANCEL: c\nDIRECTIVE: plain {id: d}\n")
    assert [x.id for x in in_force(st)] == ["a", "b"]  # b's DONE is above it: written before it
    st = parse_bytes(b"**CRITICAL DIRECTIVE**: CUDA MUST work {id: b}\nDONE: b\nRETRY: b\n")
    assert [x.id for x in in_force(st)] == ["b"]
    st = parse_bytes(b"**CRITICAL DIRECTIVE**: CUDA MUST work {id: b}\nDIRECTIVE: CUDA MUST work {id: b}\n")
    assert in_force(st) == []  # the later line wins: no longer critical


def test_bad_and_nearly_rule_lines_are_reported(worklog):
    worklog.write_text("RULE: keep it {run: ls}\nRULE:\nRule: be nice\nRULE be nice\nRULES: x\n"
                       "RULE: be nice {id: nice}\nDONE: nice\nRETRY: nice\nCANCEL: nicee\n")
    r = run_cli("check", str(worklog))
    out = r.stdout
    assert r.returncode != 0
    assert ":1: the line is not read: a RULE takes only an id attr, not run" in out
    assert ":2: the line is not read: RULE: needs the rule's text" in out
    assert ":3: 'Rule:' is not a keyword (keywords are upper case)" in out and "did you mean RULE:?" in out
    assert ":4: 'RULE' without its ':' is not a keyword" in out
    assert ":5: 'RULES:' is not a keyword, so this line is prose and ignored; did you mean RULE:?" in out
    assert ":7:" not in out  # DONE: of a rule names it
    assert ":8: RETRY: nice names a rule, which is never run" in out
    assert ":9: CANCEL: nicee names no task; did you mean nice?" in out
