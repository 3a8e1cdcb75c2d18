"""`agentd check`: the lines agentd would ignore, misread or never run, by file:line, running nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agentd.config import config
from agentd import experiments
from agentd.queue import queue

AGENTD = [sys.executable, "-m", "agentd"]

BAD = """\
- [ ] broken {value: eleven, colour: red
EXPRIMENT: health
EXPERIMENT: model-bench
- [ ] build it {id: build, run: "true"}
DONE: nosuchtask
DONE: buld
- [ ] waits {id: w, after: [biuld], run: "true"}
"""


def agentd(*args):
    return subprocess.run([*AGENTD, *args], capture_output=True, text=True, env=os.environ, timeout=60)


def test_check_lists_each_bad_line_by_file_and_line_with_a_did_you_mean_and_exits_1(worklog):
    worklog.write_text(BAD, encoding="utf-8")
    before = worklog.read_bytes()
    p = agentd("check")
    assert p.returncode == 1, p.stderr
    out = p.stdout
    w = str(worklog)
    assert f"{w}:1: attrs '{{value: eleven, colour: red' have no closing '}}'" in out
    assert f"{w}:2: 'EXPRIMENT:' is not a keyword" in out and "did you mean EXPERIMENT:?" in out
    assert f"{w}:3: model-bench needs {{model: <hf id or path>}}" in out
    assert f"{w}:5: DONE: nosuchtask names no task" in out
    assert f"{w}:6: DONE: buld names no task; did you mean build?" in out
    assert f"{w}:7: after: biuld names no task" in out and "did you mean build?" in out
    assert "6 problems" in out
    assert worklog.read_bytes() == before  # runs and writes nothing
    cfg = config.load(dict(os.environ))
    assert not cfg.store_path.exists() and not cfg.index_path.exists()
    data = json.loads(agentd("check", "--json").stdout)
    assert data["count"] == 6 and {"file": w, "line": 5, "message": "DONE: nosuchtask names no task (this line "
                                   "is ignored)"} in data["problems"]


def test_check_of_a_clean_worklog_says_so_in_one_line_and_exits_0(worklog):
    worklog.write_text("# notes\nNote: prose stays prose\n- [ ] build it {id: build, run: \"true\"}\n"
                       "DONE: build\nEXPERIMENT: model-bench {model: sshleifer/tiny-gpt2}\n", encoding="utf-8")
    p = agentd("check")
    assert p.returncode == 0 and p.stdout.startswith("no problems") and len(p.stdout.splitlines()) == 1, p.stdout


def test_check_of_one_file_reads_a_task_file_by_its_extension(worklog, tmp_path):
    worklog.write_text("- [ ] fine\n", encoding="utf-8")
    f = tmp_path / "t.yaml"
    f.write_text("- title: model-bench\n  kind: experiment\n- title: x\n  after: [nope]\n", encoding="utf-8")
    p = agentd("check", str(f))
    assert p.returncode == 1
    assert f"{f}:1: model-bench needs {{model: <hf id or path>}}" in p.stdout
    assert f"{f}:4: after: nope names no task" in p.stdout  # the line of the `after` key
    other = tmp_path / "other.md"
    other.write_text("DIRECTVE: do it\n", encoding="utf-8")
    p = agentd("check", str(other))
    assert p.returncode == 1 and f"{other}:1: 'DIRECTVE:' is not a keyword" in p.stdout
    assert "did you mean DIRECTIVE:?" in p.stdout


def test_an_after_problem_in_a_task_file_names_the_line_of_its_after(worklog):
    worklog.write_text("- [ ] build it {id: build, run: \"true\"}\n", encoding="utf-8")
    f = worklog.parent / "tasks" / "t.yaml"
    f.parent.mkdir()
    f.write_text("- title: waits\n  id: w\n  run: \"true\"\n  after: biuld\n"
                 "- title: many\n  id: m\n  after:\n    - build\n    - nope\n"
                 "- title: me\n  id: me\n  run: \"true\"\n  after: [me]\n"
                 "- title: bad\n  id: b\n  after: {x: 1}\n", encoding="utf-8")
    p = agentd("check")
    assert p.returncode == 1
    out = p.stdout
    assert f"{f}:4: after: biuld names no task, so w waits for ever; did you mean build?" in out, out
    assert f"{f}:9: after: nope names no task" in out, out  # the line of the id in the list
    assert f"{f}:13: the `after` links go round in a loop (me → me)" in out, out
    assert f"{f}:16: 'after': must be an id or a list of ids" in out, out


def test_the_queue_shows_the_same_problems(worklog):
    worklog.write_text(BAD, encoding="utf-8")
    out = agentd("queue").stdout
    assert "line 1: attrs '{value: eleven, colour: red' have no closing" in out
    assert "did you mean EXPERIMENT:?" in out
    assert "model-bench needs {model: <hf id or path>}" in out
    assert "line 5: DONE: nosuchtask names no task" in out
    assert "line 6: DONE: buld names no task; did you mean build?" in out
    q = json.loads(agentd("queue", "--json").stdout)
    assert {"line": 6, "message": "DONE: buld names no task; did you mean build? (this line is ignored)"} in q["notes"]
    assert q["note_count"] == len(q["notes"]) >= 2


def test_a_model_bench_line_without_a_model_is_not_runnable(worklog):
    worklog.write_text("EXPERIMENT: model-bench\nEXPERIMENT: model-bench {max_new_tokens: 4}\n", encoding="utf-8")
    view = queue.load(config.load(dict(os.environ)), has_gpu=True)
    ts = list(view.tasks)
    assert len(ts) == 2
    for t in ts:
        assert not t.eligible and t.why.startswith("model-bench needs {model: <hf id or path>}")
    assert queue.pick(view.tasks) is None


def test_a_model_bench_run_without_a_model_is_blocked_in_one_line_without_a_traceback(tmp_path):
    r = experiments.run("model-bench", {}, tmp_path, {})
    assert r.status == "blocked" and r.summary == "model-bench needs {model: <hf id or path>}"
    text = json.dumps(r.to_dict())
    assert "Traceback" not in text and 'File "' not in text


def test_an_experiment_that_crashes_gives_one_line_and_its_traceback_goes_to_stderr(tmp_path, monkeypatch, capsys):
    def boom(attrs, run_dir, snap, progress):
        raise RuntimeError("kaput\nsecond line")

    monkeypatch.setattr(experiments, "_impl", lambda name: boom)
    r = experiments.run("health", {}, tmp_path, {})
    assert r.status == "failed" and r.summary == "health failed: RuntimeError: kaput"
    assert "Traceback" not in json.dumps(r.to_dict())
    assert "Traceback" in capsys.readouterr().err


def test_a_wake_never_runs_a_model_bench_line_without_a_model(worklog):
    worklog.write_text("EXPERIMENT: model-bench\n", encoding="utf-8")
    p = agentd("wake", "--now")
    assert "Traceback" not in worklog.read_text() and "agentd entry" not in worklog.read_text()
    assert "Traceback" not in p.stdout + p.stderr


# -- issue 19: what a newcomer's first hour found -----------------------------------------------------

def _many_bad_lines(worklog, n=2000):
    long = "x" * 60
    worklog.write_text("".join(f"- [ ] task {i} {{value: {long}{i}, colour: red\n" for i in range(n)), encoding="utf-8")


def test_check_counts_every_unreadable_line_and_says_how_many_more_last(worklog):
    _many_bad_lines(worklog)
    p = agentd("check")
    assert p.returncode == 1, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1] == "2000 problems", lines[-3:]
    assert lines[-2].startswith(f"{worklog}: … and 1500 more unreadable lines"), lines[-3:]
    assert lines[0].startswith(f"{worklog}:1: ")
    data = json.loads(agentd("check", "--json").stdout)
    assert data["count"] == 2000


def test_check_keeps_its_exit_status_when_its_reader_leaves_after_one_line(worklog):
    _many_bad_lines(worklog)
    assert len(agentd("check").stdout) > 96 * 1024  # more than a pipe (64 KiB) and a read (8 KiB) hold: the writer meets the closed pipe
    p = subprocess.Popen([*AGENTD, "check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    first = p.stdout.readline()
    p.stdout.close()  # as `| head -1` does
    err = p.stderr.read()
    assert p.wait(timeout=60) == 1, err
    assert first.startswith(str(worklog).encode()) and b"Traceback" not in err and b"BrokenPipe" not in err


def test_an_unknown_experiment_says_which_name_was_meant():
    assert "did you mean health?" in experiments.problem("helth", {})
    assert "did you mean" not in experiments.problem("zzzzzz", {})
