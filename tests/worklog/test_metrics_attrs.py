"""The issue-20 attrs (expect, metrics, baseline_window, every, accept_claimed): read from a line or a task
file, and a bad one is a clear line naming the task's line, the attr and the key, in `agentd queue` and
`agentd check`, before any run; the task can't run while its attrs are bad."""

from __future__ import annotations

import json

import pytest

from agentd.worklog.lines import parse_line

from conftest import run_cli

BAD = [
    ('{run: "true", expect: {tflops: "=> 100"}}', "'expect': tflops: '=> 100': unknown operator '=>'",
     "did you mean >=?"),
    ('{run: "true", expect: {tflops: ">= 0.9 baselin"}}', "'expect': tflops:", "did you mean baseline?"),
    ('{run: "true", expect: {tflops: 100}}', "'expect': tflops: 100 is not a condition", ""),
    ('{run: "true", expect: [tflops]}', "'expect': must be a mapping of metric to condition", ""),
    ('{run: "true", every: 6s}', "'every': '6s': 's' is not a unit", "seconds are too short"),
    ('{run: "true", every: 2min}', "'every': '2min'", ""),
    ('{run: "true", every: 1m}', "'every': '1m' is less than 5 minutes", ""),
    ('{run: "true", baseline_window: 1}', "'baseline_window': must be a whole number of runs, 3..1000", ""),
    ('{run: "true", metrics: ""}', "'metrics': must be a path", ""),
    ('{run: "true", accept_claimed: maybe}', "'accept_claimed': must be true or false", ""),
]


@pytest.mark.parametrize("attrs,said,hint", BAD)
def test_a_bad_attr_is_a_line_in_queue_and_check_and_the_task_never_runs(worklog, attrs, said, hint):
    worklog.write_text(f"# notes\n- [ ] gated {attrs}\n", encoding="utf-8")
    q = run_cli("queue")
    assert q.returncode == 0 and "Traceback" not in q.stderr
    assert "line 2: the line is not read: " + said in " ".join(q.stdout.split())
    assert hint in " ".join(q.stdout.split())
    c = run_cli("check")
    assert c.returncode != 0 and "Traceback" not in c.stderr
    assert f"{worklog}:2: the line is not read: {said}" in c.stdout
    assert json.loads(run_cli("queue", "--json").stdout)["tasks"] == []  # not a task until fixed
    w = run_cli("wake", "--now")
    assert "Traceback" not in w.stderr and "agentd entry" not in worklog.read_text()


def test_good_attrs_are_read_as_written():
    t = parse_line('- [ ] bench {run: "make bench", expect: {tflops: ">= 0.5 peak", t: "< 3"}, '
                   'metrics: out/m.json, baseline_window: 20, every: 6h, accept_claimed: true}', 1)
    assert t.attrs == {"run": "make bench", "expect": {"tflops": ">= 0.5 peak", "t": "< 3"},
                       "metrics": "out/m.json", "baseline_window": 20, "every": "6h", "accept_claimed": True}


def test_a_task_file_with_a_bad_gate_names_its_file_line_and_key(worklog, tmp_path):
    tasks = worklog.parent / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    (tasks / "bench.yaml").write_text('title: bench\nrun: "true"\nexpect:\n  tflops: ">= 100"\n  ttft: "~ 3"\n')
    worklog.write_text("# notes\n", encoding="utf-8")
    c = run_cli("check")
    assert c.returncode != 0 and "Traceback" not in c.stderr
    assert f"{tasks / 'bench.yaml'}:" in c.stdout and "'expect': ttft: '~ 3': unknown operator '~'" in c.stdout
    q = run_cli("queue")
    assert "'expect': ttft:" in q.stdout + q.stderr


def test_an_expect_of_10000_keys_or_a_1_mb_condition_is_refused(worklog, tmp_path):
    tasks = worklog.parent / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    many = "".join(f"  m{i}: \">= 1\"\n" for i in range(10_000))
    (tasks / "many.yaml").write_text(f'title: many\nrun: "true"\nexpect:\n{many}')
    (tasks / "huge.yaml").write_text(f'title: huge\nrun: "true"\nexpect:\n  m: ">= {"9" * 1_000_000}"\n')
    worklog.write_text("# notes\n", encoding="utf-8")
    c = run_cli("check")
    assert c.returncode != 0 and "Traceback" not in c.stderr
    assert "many.yaml:10001: too many values: more than 20000" in c.stdout  # the YAML loader's bound
    assert "huge.yaml:4: a value 1000003 characters long" in c.stdout
    assert "alias" not in c.stdout  # (it names aliases only where there are some)
    assert json.loads(run_cli("queue", "--json").stdout)["tasks"] == []


def test_an_expect_of_more_gates_than_agentd_takes_is_refused_by_the_gates_bound(worklog):
    tasks = worklog.parent / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    many = "".join(f"  m{i}: \">= 1\"\n" for i in range(5_000))
    (tasks / "many.yaml").write_text(f'title: many\nrun: "true"\nexpect:\n{many}')
    worklog.write_text("# notes\n", encoding="utf-8")
    c = run_cli("check")
    assert c.returncode != 0 and "Traceback" not in c.stderr
    assert "'expect': has 5000 conditions, more than the 100 agentd takes" in c.stdout
