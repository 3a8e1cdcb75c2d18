"""agentd.queue.queue and agentd.tasks.scoring: task state from real worklogs, eligibility and the explained order."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pytest

from agentd.config import config
from agentd.queue import queue, taskstate
from agentd.tasks import scoring
from agentd.worklog.entries import Entry
from agentd.worklog.parse import parse_bytes

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
MIN = 60.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(seq: int, task: str, status: str, at: float = NOW - 3600, **extra) -> str:
    return Entry(seq, f"r{seq}", task, status, iso(at), extra, body=f"{status} body\nDIRECTIVE: inert").render()


def cfg_with(**env):
    return config.load(dict(os.environ, **env))


def load(worklog, text: str, *, gpu=False, now=NOW, **env) -> dict:
    worklog.write_text(text, encoding="utf-8")
    view = queue.load(cfg_with(**env), has_gpu=gpu, now=now)
    return view


def by_id(view) -> dict:
    return {t.id: t for t in view.tasks}


def order(view) -> list[str]:
    return [t.id for t in view.tasks]


KEY = {"ANTHROPIC_API_KEY": "sk-test-not-used"}


# -- scoring and order -----------------------------------------------------------------------------

def test_a_near_certain_command_task_goes_before_an_uncertain_directive(worklog):
    view = load(worklog, "DIRECTIVE: think about the roadmap {id: d}\n"
                         "- [ ] run the tests {id: c, run: make test, value: 6, certainty: 0.95}\n", **KEY)
    t = by_id(view)
    assert t["d"].eligible and t["c"].eligible
    assert t["c"].score == pytest.approx(5.7) and t["d"].score == pytest.approx(4.0)
    assert order(view) == ["c", "d"]
    assert queue.pick(view.tasks).id == "c"


def test_expected_value_not_kind_or_file_position_sets_the_order(worklog):
    view = load(worklog, "- [ ] low {id: low, run: 'true', value: 2}\n"
                         "DIRECTIVE: sure thing {id: hi, value: 10, certainty: 0.9}\n"
                         "- [ ] mid {id: mid, run: 'true'}\n", **KEY)
    assert order(view) == ["hi", "mid", "low"]
    scores = [t.score for t in view.tasks]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("line, key", [
    ("- [ ] plain task", "task"),
    ("- [ ] command task {run: 'true'}", "command"),
    ("EXPERIMENT: health", "experiment"),
    ("DIRECTIVE: a directive", "directive"),
    ("**CRITICAL DIRECTIVE**: a critical one", "critical directive"),
    ("BLOCKER: a blocker", "blocker"),
])
def test_each_kind_has_its_default_value_and_certainty(worklog, line, key):
    want = {"task": (5, 0.7), "command": (5, 0.9), "experiment": (4, 0.9), "directive": (8, 0.5),
            "critical directive": (10, 0.5), "blocker": (7, 0.3)}[key]
    assert scoring.DEFAULTS[key] == want
    (t,) = load(worklog, line + "\n", **KEY).tasks
    parts = dict(t.parts)
    assert parts["value (default)"] == f"{want[0]:g}"
    assert parts["certainty (default)"] == f"× {want[1]:g}"
    factor = 1.5 if key == "critical directive" else 1.0
    assert t.score == pytest.approx(want[0] * want[1] * factor)
    assert "(default)" in t.why


@pytest.mark.parametrize("line, score", [
    ("- [ ] x {value: 2, certainty: 0.25}", 0.5),
    ("- [ ] x {run: 'true', certainty: 0.1}", 0.5),
    ("DIRECTIVE: x {value: 1}", 0.5),
    ("BLOCKER: x {certainty: 1}", 7.0),
    ("**CRITICAL DIRECTIVE**: x {value: 2, certainty: 1}", 3.0),
    ("EXPERIMENT: health {value: 0}", 0.0),
])
def test_a_value_or_certainty_on_the_line_wins_over_the_default(worklog, line, score):
    (t,) = load(worklog, line + "\n", **KEY).tasks
    assert t.score == pytest.approx(score)


def test_priority_and_cost_change_the_score_and_say_so(worklog):
    view = load(worklog, "- [ ] a {id: a, run: 'true', priority: high}\n"
                         "- [ ] b {id: b, run: 'true', priority: low}\n"
                         "- [ ] c {id: c, run: 'true', minutes: 120}\n")
    t = by_id(view)
    assert t["a"].score == pytest.approx(4.5 * 1.2) and "high priority" in t["a"].why
    assert t["b"].score == pytest.approx(4.5 * 0.7)
    assert t["c"].score == pytest.approx(4.5 * 0.5) and "cost (120 min)" in t["c"].why
    assert t["a"].why.endswith(f"= {t['a'].score:.2f}")


# -- failures, backoff, blocking and the human's commands --------------------------------------------

CMD = "- [ ] flaky {id: flaky, run: 'exit 1'}\n"


def test_a_failed_attempt_lowers_the_score_and_backoff_makes_it_wait(worklog):
    failed_at = NOW - 10 * MIN
    view = load(worklog, CMD + entry(1, "flaky", "failed", at=failed_at))
    (t,) = view.tasks
    assert (t.status, t.attempts, t.eligible) == ("failed", 1, False)
    assert t.score == pytest.approx(4.5 * 0.5)
    assert "backoff" in t.why and iso(failed_at + 30 * MIN) in t.why
    later = queue.load(cfg_with(), has_gpu=False, now=failed_at + 31 * MIN)
    assert later.tasks[0].eligible and "after 1 failed attempt" in later.tasks[0].why


def test_the_backoff_doubles_with_each_failure(worklog):
    text = CMD + entry(1, "flaky", "failed", at=NOW - 5 * 3600) + entry(2, "flaky", "failed", at=NOW - 59 * MIN)
    (t,) = load(worklog, text).tasks
    assert t.attempts == 2 and not t.eligible and t.score == pytest.approx(4.5 * 0.25)
    assert iso(NOW - 59 * MIN + 60 * MIN) in t.why
    (t,) = queue.load(cfg_with(), has_gpu=False, now=NOW + 2 * MIN).tasks
    assert t.eligible


def test_the_backoff_follows_the_retry_backoff_setting(worklog):
    (t,) = load(worklog, CMD + entry(1, "flaky", "failed", at=NOW - 10 * MIN), AGENTD_RETRY_BACKOFF="5m").tasks
    assert t.eligible


def test_after_three_failures_a_task_is_blocked_until_a_person_writes_retry(worklog):
    text = CMD + "".join(entry(i, "flaky", "failed", at=NOW - 86400 + i) for i in (1, 2, 3))
    (t,) = load(worklog, text).tasks
    assert (t.status, t.eligible, t.attempts) == ("blocked", False, 3)
    assert "RETRY: flaky" in t.why
    (t,) = load(worklog, text, now=NOW + 365 * 86400).tasks  # time alone does not unblock it
    assert t.status == "blocked"
    (t,) = load(worklog, text + "RETRY: flaky\n").tasks
    assert (t.status, t.eligible, t.attempts) == ("open", True, 0)
    assert t.score == pytest.approx(4.5)


def test_max_attempts_is_configurable(worklog):
    text = CMD + "".join(entry(i, "flaky", "failed", at=NOW - 86400 + i) for i in (1, 2))
    assert load(worklog, text).tasks[0].status == "failed"
    assert load(worklog, text, AGENTD_MAX_ATTEMPTS="2").tasks[0].status == "blocked"


def test_failures_after_a_retry_count_again(worklog):
    text = (CMD + "".join(entry(i, "flaky", "failed", at=NOW - 86400 + i) for i in (1, 2, 3)) + "RETRY: flaky\n"
            + entry(4, "flaky", "failed", at=NOW - 86400 + 4))
    (t,) = load(worklog, text).tasks
    assert (t.status, t.attempts) == ("failed", 1)


@pytest.mark.parametrize("verb, status", [("DONE", "done"), ("CANCEL", "cancelled")])
def test_a_human_can_close_a_task_by_id(worklog, verb, status):
    text = CMD + "- [ ] other {id: other, run: 'true'}\n" + f"{verb}: flaky\n"
    t = by_id(load(worklog, text))
    assert t["flaky"].status == status and not t["flaky"].eligible
    assert order(load(worklog, text)) == ["other", "flaky"]


def test_a_checked_box_is_done(worklog):
    (t,) = load(worklog, "- [x] already did it {run: 'true'}\n").tasks
    assert t.status == "done" and not t.eligible


def test_an_entry_newer_than_a_human_done_wins(worklog):
    text = CMD + entry(1, "flaky", "done") + "RETRY: flaky\n" + entry(2, "flaky", "done")
    assert load(worklog, text).tasks[0].status == "done"


def test_state_comes_from_the_highest_seq_not_the_position_in_the_file(worklog):
    text = CMD + entry(9, "flaky", "done") + entry(3, "flaky", "failed")
    (t,) = load(worklog, text).tasks
    assert t.status == "done"


def test_a_running_entry_with_no_successor_is_interrupted_and_runnable(worklog):
    (t,) = load(worklog, CMD + entry(1, "flaky", "running")).tasks
    assert t.status == "interrupted" and t.eligible


def test_a_deferred_task_waits_for_its_time(worklog):
    until = iso(NOW + 3600)
    text = CMD + entry(1, "flaky", "deferred", until=until)
    (t,) = load(worklog, text).tasks
    assert (t.status, t.eligible, t.defer_until) == ("deferred", False, until)
    assert f"deferred until {until}" in t.why
    (t,) = load(worklog, text, now=NOW + 3601).tasks
    assert t.eligible


# -- eligibility ---------------------------------------------------------------------------------------

def test_unmet_dependencies_make_a_task_wait_and_say_for_what(worklog):
    text = ("- [ ] first {id: first, run: 'true'}\n"
            "- [ ] second {id: second, run: 'true', after: first, value: 10}\n"
            "- [ ] third {id: third, run: 'true', after: [first, ghost]}\n")
    t = by_id(load(worklog, text))
    assert not t["second"].eligible and t["second"].why == "waits for first (open)"
    assert not t["third"].eligible and t["third"].why == "waits for first (open)"
    t = by_id(load(worklog, text + entry(1, "first", "done")))
    assert t["second"].eligible
    assert not t["third"].eligible and t["third"].why == "waits for ghost, which no line or task file defines"


def test_a_dependency_loop_is_named_as_one(worklog):
    text = ("- [ ] c1 {id: c1, run: 'true', after: c2}\n"
            "- [ ] c2 {id: c2, run: 'true', after: [c3]}\n"
            "- [ ] c3 {id: c3, run: 'true', after: c1}\n"
            "- [ ] self {id: self, run: 'true', after: self}\n"
            "- [ ] outside {id: outside, run: 'true', after: c1}\n")
    t = by_id(load(worklog, text))
    assert "a loop (c1 → c2 → c3 → c1)" in t["c1"].why and "remove one `after`" in t["c1"].why
    assert "a loop (c2 → c3 → c1 → c2)" in t["c2"].why
    assert "a loop (self → self)" in t["self"].why
    assert t["outside"].why == "waits for c1 (open)"  # waits on a loop, but is not in it
    assert not any(x.eligible for x in t.values())
    # a done task breaks the loop: c1 can run now, and c3 waits for it as usual
    t = by_id(load(worklog, text.replace("- [ ] c1", "- [x] c1")))
    assert t["c3"].eligible and t["c2"].why == "waits for c3 (open)"


def test_a_gpu_task_is_ineligible_without_a_gpu(worklog):
    text = "- [ ] bench {id: bench, run: ./bench.sh, gpu: true}\n"
    (t,) = load(worklog, text, gpu=False).tasks
    assert not t.eligible and t.why == "needs a GPU and none is present"
    (t,) = load(worklog, text, gpu=True).tasks
    assert t.eligible


def test_agent_tasks_are_ineligible_without_an_llm_backend_and_say_why(worklog):
    text = "- [ ] write the report {id: report}\nDIRECTIVE: steer {id: d}\nBLOCKER: stuck {id: b}\n"
    view = load(worklog, text)
    assert view.agent_backend is None
    for t in view.tasks:
        assert not t.eligible
        assert t.why.startswith("needs an LLM backend: ") and "ANTHROPIC_API_KEY" in t.why
    view = load(worklog, text, AGENTD_PROVIDER="none")
    assert all(t.why == "needs an LLM backend: provider is none" for t in view.tasks)
    view = load(worklog, text, **KEY)
    assert view.agent_backend == "anthropic" and all(t.eligible for t in view.tasks)


def test_command_tasks_need_no_llm_backend(worklog):
    (t,) = load(worklog, "- [ ] c {run: 'true'}\n").tasks
    assert t.eligible


def test_an_unknown_experiment_is_ineligible(worklog):
    (t,) = load(worklog, "EXPERIMENT: warp-drive\n").tasks
    assert not t.eligible and "unknown experiment" in t.why


def test_open_tasks_come_first_then_waiting_ones_then_closed_ones(worklog):
    text = ("- [x] closed {id: closed, run: 'true', value: 10}\n"
            "- [ ] waiting {id: waiting, run: 'true', gpu: true, value: 10}\n"
            "- [ ] ready {id: ready, run: 'true', value: 1}\n")
    assert order(load(worklog, text)) == ["ready", "waiting", "closed"]


# -- directives are never starved ----------------------------------------------------------------------

def _build(text: str, passovers: dict, first_seen: dict | None = None, **env):
    state = parse_bytes(text.encode())
    return queue.build(cfg_with(**env), state, [], queue.Facts(now=NOW, has_gpu=False, agent_backend="anthropic",
                                                               passovers=passovers, first_seen=first_seen or {}))


CRIT = "**CRITICAL DIRECTIVE**: CUDA must work {id: crit, value: 4}\n- [ ] big {id: big, run: 'true', value: 10}\n"


def test_a_critical_directive_passed_over_twice_goes_first(worklog):
    assert [t.id for t in _build(CRIT, {})] == ["big", "crit"]
    assert [t.id for t in _build(CRIT, {"crit": 1})] == ["big", "crit"]
    tasks = _build(CRIT, {"crit": 2})
    assert [t.id for t in tasks] == ["crit", "big"]
    assert tasks[0].forced and "passed over 2 wakes" in tasks[0].why


def test_the_passover_limit_is_configurable(worklog):
    assert [t.id for t in _build(CRIT, {"crit": 2}, AGENTD_CRITICAL_MAX_PASSOVERS="3")] == ["big", "crit"]
    assert [t.id for t in _build(CRIT, {"crit": 3}, AGENTD_CRITICAL_MAX_PASSOVERS="3")] == ["crit", "big"]


def test_a_passover_limit_of_zero_puts_an_eligible_critical_directive_first_at_once():
    assert [t.id for t in _build(CRIT, {}, AGENTD_CRITICAL_MAX_PASSOVERS="0")] == ["crit", "big"]


def test_an_ineligible_critical_directive_is_not_forced():
    text = "**CRITICAL DIRECTIVE**: later {id: crit, after: big}\n- [ ] big {id: big, run: 'true'}\n"
    tasks = _build(text, {"crit": 5})
    assert [t.id for t in tasks] == ["big", "crit"] and not tasks[1].forced


def test_update_passovers_counts_wakes_and_resets_when_the_directive_runs():
    tasks = _build(CRIT, {})
    big, crit = tasks
    counts = queue.update_passovers(tasks, big, {})
    assert counts == {"crit": 1}
    counts = queue.update_passovers(_build(CRIT, counts), big, counts)
    assert counts == {"crit": 2}
    tasks = _build(CRIT, counts)
    assert queue.pick(tasks).id == "crit"
    assert queue.update_passovers(tasks, queue.pick(tasks), counts) == {"crit": 0}
    # a wake that ran nothing passed nobody over
    assert queue.update_passovers(_build(CRIT, {"crit": 1}), None, {"crit": 1}) == {"crit": 1}


def test_a_directive_gains_score_as_it_ages():
    text = "DIRECTIVE: old one {id: old}\nDIRECTIVE: new one {id: new}\n"
    tasks = {t.id: t for t in _build(text, {}, {"old": NOW - 4 * 86400, "new": NOW})}
    assert tasks["new"].score == pytest.approx(4.0)
    assert tasks["old"].score == pytest.approx(4.0 + 0.5 * 4)
    assert "waiting 4.0 d" in tasks["old"].why
    capped = {t.id: t for t in _build(text, {}, {"old": NOW - 400 * 86400})}
    assert capped["old"].score == pytest.approx(4.0 + 0.5 * scoring.MAX_AGE_DAYS)
    more = {t.id: t for t in _build(text, {}, {"old": NOW - 4 * 86400}, AGENTD_DIRECTIVE_AGE_BONUS="1")}
    assert more["old"].score == pytest.approx(8.0)


def test_tasks_that_are_not_directives_do_not_age():
    text = "- [ ] t {id: t, run: 'true'}\n**CRITICAL DIRECTIVE**: c {id: c}\n"
    tasks = {t.id: t for t in _build(text, {}, {"t": NOW - 5 * 86400, "c": NOW - 5 * 86400})}
    assert tasks["t"].score == pytest.approx(4.5) and tasks["c"].score == pytest.approx(7.5)


# -- YAML task files -------------------------------------------------------------------------------------

def test_yaml_task_files_add_tasks_with_the_same_schema(worklog, tmp_path):
    tasks_dir = tmp_path / "wl" / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "nightly.yaml").write_text(
        "- title: run the nightly build\n  id: nightly\n  run: make nightly\n  value: 7\n  certainty: 1\n"
        "- title: read the logs\n  kind: directive\n  after: nightly\n")
    (tasks_dir / "one.yml").write_text("title: single task\nrun: 'true'\ndone: true\n")
    view = load(worklog, "- [ ] inline {id: inline, run: 'true'}\n", **KEY)
    t = by_id(view)
    assert view.problems == []
    assert t["nightly"].kind == "command" and t["nightly"].score == pytest.approx(7.0)
    assert t["nightly"].source == str(tasks_dir / "nightly.yaml")
    d = next(x for x in view.tasks if x.title == "read the logs")
    assert d.kind == "directive" and d.why == "waits for nightly (open)"
    single = next(x for x in view.tasks if x.title == "single task")
    assert single.status == "done"
    assert order(view)[0] == "nightly"


def test_a_bad_task_file_is_reported_with_file_line_and_key(worklog, tmp_path):
    tasks_dir = tmp_path / "wl" / "tasks"
    tasks_dir.mkdir()
    bad = tasks_dir / "bad.yaml"
    bad.write_text("title: broken\nrun: make\nvaleu: 3\ncertainty: sure\n")
    (tasks_dir / "worse.yaml").write_text("title: [unclosed\n")
    (tasks_dir / "notitle.yaml").write_text("run: make\n")
    (tasks_dir / "good.yaml").write_text("title: fine\nid: fine\nrun: 'true'\n")
    view = load(worklog, "- [ ] inline {run: 'true'}\n")
    probs = view.problems
    assert any(p.startswith(f"{bad}:3: ") and "'valeu'" in p and "did you mean 'value'" in p for p in probs), probs
    assert any(p.startswith(f"{bad}:4: ") and "'certainty'" in p and "number" in p for p in probs), probs
    assert any(str(tasks_dir / "worse.yaml") in p and "not valid YAML" in p for p in probs), probs
    assert any(str(tasks_dir / "notitle.yaml") in p and "'title'" in p and "required" in p for p in probs), probs
    assert len(probs) == 4
    assert "fine" in by_id(view)  # good files are still read
    assert all(t.title != "broken" for t in view.tasks)


def test_a_bad_task_in_a_list_file_is_reported_with_its_line(worklog, tmp_path):
    tasks_dir = tmp_path / "wl" / "tasks"
    tasks_dir.mkdir()
    bad = tasks_dir / "bad.yaml"
    bad.write_text("- title: fine\n  id: fine\n  run: 'true'\n- title: broken\n  valeu: 3\n")
    view = load(worklog, "")
    assert by_id(view)["fine"].line == 1
    assert view.problems and view.problems[0].startswith(f"{bad}:5: "), view.problems


def test_the_worklog_wins_over_a_task_file_with_the_same_id(worklog, tmp_path):
    tasks_dir = tmp_path / "wl" / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "dup.yaml").write_text("title: from the file\nid: same\nrun: 'true'\n")
    (t,) = load(worklog, "- [ ] from the worklog {id: same, run: 'true'}\n").tasks
    assert t.title == "from the worklog"


def test_queue_json_has_the_documented_keys(worklog):
    view = load(worklog, "- [ ] x {id: x, run: 'true', after: y}\n- [ ] y {id: y, run: 'true'}\n")
    d = by_id(view)["x"].to_json()
    for key in ("id", "title", "kind", "status", "score", "eligible", "why", "priority", "runner", "attempts",
                "line", "source", "after", "run", "gpu", "defer_until", "latest_run", "parts"):
        assert key in d
    assert d["after"] == ["y"] and d["parts"][0] == {"part": "value (default)", "effect": "5"}


def test_a_retry_written_at_the_top_of_the_file_counts_once_agentd_has_seen_the_block(worklog, cli):
    import time as _time

    from agentd.worklog.entries import Entry

    def entry(seq, status):
        at = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(_time.time() - 60))
        return Entry(seq, f"r{seq}", "x", status, at, body="b").render()

    worklog.write_text("- [ ] x {id: x, run: 'false'}\n" + entry(1, "failed") + entry(2, "failed")
                       + entry(3, "failed"))
    q = json.loads(cli("queue", "--json").stdout)
    assert q["tasks"][0]["status"] == "blocked"
    assert cli("wake", "--now").returncode == 0  # nothing to do, but agentd has now seen the task
    # a person who writes newest-first puts the RETRY above everything
    worklog.write_text("RETRY: x\n" + worklog.read_text())
    q = json.loads(cli("queue", "--json").stdout)
    x = next(t for t in q["tasks"] if t["id"] == "x")
    assert x["status"] == "open" and x["attempts"] == 0


def test_an_old_retry_above_later_failures_does_not_reopen_a_task_on_a_first_read(worklog, cli):
    from agentd.worklog.entries import Entry

    e = [Entry(i, f"r{i}", "x", "failed", "2026-01-01T00:00:00Z", body="b").render() for i in range(1, 7)]
    worklog.write_text("- [ ] x {id: x, run: 'false'}\n" + "".join(e[:3]) + "RETRY: x\n" + "".join(e[3:]))
    x = next(t for t in json.loads(cli("queue", "--json").stdout)["tasks"] if t["id"] == "x")
    assert x["status"] == "blocked" and x["attempts"] == 3


@pytest.mark.parametrize("lines, want", [("DONE: flaky\nRETRY: flaky\n", "open"),
                                         ("RETRY: flaky\nDONE: flaky\n", "done")])
def test_of_two_lines_written_together_the_lower_one_wins(worklog, lines, want):
    (t,) = load(worklog, CMD + entry(1, "flaky", "failed") + lines).tasks
    assert t.status == want


def test_a_worklog_reached_through_a_symlinked_directory_is_the_same_worklog(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert taskstate.worklog_scope(tmp_path / "link" / "h_worklog.txt") == taskstate.worklog_scope(real / "h_worklog.txt")
    assert taskstate.worklog_scope(real / "h_worklog.txt") != taskstate.worklog_scope(real / "g_worklog.txt")


def test_a_title_with_a_newline_prints_no_line_of_its_own(worklog, tmp_path, cli):
    """A task file's title may hold a newline: `agentd queue` writes it escaped, on the task's line,
    never as a line that looks like agentd's (or like another task)."""
    tasks_dir = tmp_path / "wl" / "tasks"
    tasks_dir.mkdir(parents=True)
    (tasks_dir / "forged.yaml").write_text('title: "line one\\n\\u2714 all checks passed\\tdone"\nrun: "true"\n')
    worklog.write_text("- [ ] inline {id: inline, run: 'true'}\n")
    p = cli("queue")
    assert p.returncode == 0, p.stderr
    assert not any(line.startswith("\u2714") for line in p.stdout.splitlines()), p.stdout
    assert "line one\\x0a\u2714 all checks passed\tdone" in p.stdout


# -- one kind -> runner mapping -------------------------------------------------------------------------

def test_every_kind_a_line_may_name_has_a_runner_and_the_agent_kinds_are_those_the_agent_runs():
    from agentd.tasks.task import AGENT_KINDS, RUNNER_OF, Task, runner_of
    from agentd.worklog.maketask import KINDS  # (the grammar's kinds: worklog/lines.py before its split)

    assert set(RUNNER_OF) == set(KINDS)  # a kind added to the grammar needs a runner here
    assert set(RUNNER_OF.values()) == {"agent", "command", "experiment"}
    assert set(AGENT_KINDS) == {k for k in KINDS if runner_of(k) == "agent"} == {"task", "directive", "blocker"}
    assert all(Task(id="x", title="x", kind=k).runner == RUNNER_OF[k] for k in KINDS)
