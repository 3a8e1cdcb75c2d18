"""Metrics through the whole wake (wake/results.py): real CLI wakes in subprocesses on tmp worklogs.

A run's METRIC lines, its ``metrics:`` file and an agent's record_metric calls are collected, kept in the
store, and judged by the task's ``expect:`` gates: a done run that fails one (or whose metric is missing,
or only claimed) ends ``failed`` for QC and a task ``after:`` it does not run.  Each gate decision is run
once more with its check switched off (a sitecustomize in the wake's process patches it away), as a
strict xfail, to show the test can fail.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentd.metrics.metric import MEASURED, Metric
from agentd.store import metrics as sm
from agentd.store.store import Store
from agentd.worklog.parse import parse_bytes

from conftest import run_cli
from fake_llm import finish, reply

# What switching a check off means, in the wake's own process (its sitecustomize runs before agentd's code).
COMPARE_OFF = "import agentd.metrics.gates as g\ng.compare = lambda op, value, threshold: True\n"
BLOCKING_OFF = "import agentd.wake.results as r\nr.BLOCKING = ()\n"


def wake(tmp_path, off: str | None = None, env: dict | None = None):
    env = dict(env or {})
    if off:
        site = tmp_path / "off"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(off, encoding="utf-8")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return run_cli("wake", "--now", env=env)


def status(worklog: Path, task: str) -> str | None:
    return (parse_bytes(worklog.read_bytes()).latest.get(task) or {}).get("status")


def finding(worklog: Path, task: str) -> str:
    """The task's last entry, header and body."""
    return [e for e in worklog.read_text().split("=== agentd entry ") if f"task={task} " in e][-1]


def state(tmp_path) -> Path:
    return tmp_path / "home" / ".local" / "state" / "agentd" / "agentd.sqlite3"


def kept(tmp_path, run_id: str) -> list[dict]:
    """The metrics the store kept for a run."""
    s = Store(state(tmp_path))
    try:
        return sm.of_run(s, run_id)
    finally:
        s.close()


def run_row(task: str) -> dict:
    return next(r for r in json.loads(run_cli("runs", "--json").stdout) if r["task_id"] == task)


PILOT = ("- [ ] pilot {{id: pilot, run: 'echo METRIC tflops={v} TFLOP/s', expect: {{tflops: \">= 100\"}}}}\n"
         "- [ ] scale up {{id: scale, run: 'echo scaled', after: pilot, value: 1}}\n")


def test_a_command_below_its_gate_fails_for_qc_and_the_task_after_it_waits(worklog, tmp_path):
    worklog.write_text(PILOT.format(v=80))
    r = wake(tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert status(worklog, "pilot") == "failed"
    body = finding(worklog, "pilot")
    assert "tflops 80 >= 100: FAIL" in body
    assert "metrics: tflops=80 TFLOP/s" in body
    row = run_row("pilot")
    assert row["reason"].startswith("QC: tflops 80 >= 100: FAIL")
    r = wake(tmp_path)
    assert "scale" not in parse_bytes(worklog.read_bytes()).latest  # gated progression: the scale-up never ran
    q = json.loads(run_cli("queue", "--json").stdout)
    assert not next(t for t in q["tasks"] if t["id"] == "scale")["eligible"]
    values = {m["name"]: m["value"] for m in kept(tmp_path, row["run_id"])}
    assert values["tflops"] == 80 and "run.duration_s" in values and values["run.exit_code"] == 0


@pytest.mark.xfail(strict=True, reason="the gate's comparison switched off: 80 passes '>= 100'")
def test_the_failing_gate_with_its_comparison_switched_off_lets_the_pilot_pass(worklog, tmp_path):
    worklog.write_text(PILOT.format(v=80))
    wake(tmp_path, COMPARE_OFF)
    assert status(worklog, "pilot") == "failed"


def test_a_command_that_meets_its_gate_is_done_and_the_next_task_runs(worklog, tmp_path):
    worklog.write_text(PILOT.format(v=120))
    r = wake(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "pilot") == "done"
    assert "tflops 120 >= 100: pass" in finding(worklog, "pilot")
    assert run_row("pilot")["reason"] is None
    r = wake(tmp_path)
    assert r.returncode == 0 and status(worklog, "scale") == "done"


# -- seed 001's qc_summary.json -----------------------------------------------------------------------------

QC = {"n_samples": 200, "runaway_rate": 0.02, "token_limit_rate": 0.05, "delimiter_leakage": 0,
      "median_tokens": 31, "critic_acceptance": 0.62, "model": "pilot-0.5b", "by_bucket": {"short": 0.01}}
EXPECT = ('{runaway_rate: "< 0.05", token_limit_rate: "< 0.10", delimiter_leakage: "== 0", median_tokens: "< 40", '
          'critic_acceptance: ">= 0.5"}')
BAD = {"runaway_rate": 0.05, "token_limit_rate": 0.12, "delimiter_leakage": 1, "median_tokens": 40,
       "critic_acceptance": 0.49}


def seed_pilot(worklog: Path, qc: dict) -> None:
    """A pilot in its own cwd whose script writes qc_summary.json there, and the scale-up after it."""
    work = worklog.parent / "pilot"
    (work / "out").mkdir(parents=True)
    (work / "qc.json").write_text(json.dumps(qc))
    worklog.write_text(f"- [ ] pilot {{id: pilot, run: 'cp qc.json out/qc_summary.json', cwd: {work}, "
                       f"metrics: out/qc_summary.json, expect: {EXPECT}}}\n"
                       "- [ ] scale up {id: scale, run: 'echo scaled', after: pilot, value: 1}\n")


def test_a_seed_pilot_whose_qc_summary_meets_every_threshold_passes_and_the_scale_up_runs(worklog, tmp_path):
    seed_pilot(worklog, QC)
    r = wake(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    body = finding(worklog, "pilot")
    for line in ("runaway_rate 0.02 < 0.05: pass", "token_limit_rate 0.05 < 0.10: pass",
                 "delimiter_leakage 0 == 0: pass", "median_tokens 31 < 40: pass", "critic_acceptance 0.62 >= 0.5: pass"):
        assert line in body
    assert "n_samples=200" in body and "by_bucket" not in body  # top-level numbers only
    wake(tmp_path)
    assert status(worklog, "scale") == "done"


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_seed_pilot_fails_on_each_threshold_alone(worklog, tmp_path, name):
    seed_pilot(worklog, {**QC, name: BAD[name]})
    r = wake(tmp_path)
    assert r.returncode == 1
    assert status(worklog, "pilot") == "failed"
    body = finding(worklog, "pilot")
    fails = [line[2:] for line in body.splitlines() if line.startswith("> gate: ") and line.endswith(": FAIL")]
    assert len(fails) == 1 and fails[0].startswith(f"gate: {name} ")
    assert run_row("pilot")["reason"] == "QC: " + fails[0][len("gate: "):]


def test_a_missing_metrics_file_is_said_and_its_gates_fail_the_run(worklog, tmp_path):
    worklog.write_text("- [ ] pilot {id: pilot, run: 'true', metrics: out/qc_summary.json, "
                       f"expect: {EXPECT}}}\n")
    assert wake(tmp_path).returncode == 1
    body = finding(worklog, "pilot")
    assert "metrics note: metrics file out/qc_summary.json: not found" in body
    assert "runaway_rate < 0.05: inconclusive (no value: the run did not measure it)" in body


# -- inconclusive: missing, claimed ---------------------------------------------------------------------------

MISSING = "- [ ] probe {id: probe, run: 'echo measured nothing', expect: {tflops: \">= 100\"}}\n"


def test_a_missing_metric_is_inconclusive_and_fails_the_run(worklog, tmp_path):
    worklog.write_text(MISSING)
    assert wake(tmp_path).returncode == 1
    assert status(worklog, "probe") == "failed"
    assert "tflops >= 100: inconclusive" in finding(worklog, "probe")
    assert run_row("probe")["reason"].startswith("QC: tflops >= 100: inconclusive")


@pytest.mark.xfail(strict=True, reason="inconclusive gates switched off: a missing metric no longer fails the run")
def test_a_missing_metric_with_the_inconclusive_check_switched_off_passes(worklog, tmp_path):
    worklog.write_text(MISSING)
    wake(tmp_path, BLOCKING_OFF)
    assert status(worklog, "probe") == "failed"


def anthropic_env(fake) -> dict:
    return {"ANTHROPIC_API_KEY": "sk-ant-test-" + "k" * 24, "ANTHROPIC_BASE_URL": fake.url,
            "AGENTD_CALL_TIMEOUT": "20s"}


def claiming_agent(worklog: Path, fake, accept: bool) -> None:
    extra = ", accept_claimed: true" if accept else ""
    worklog.write_text(f"DIRECTIVE: benchmark the GPU {{id: bench, expect: {{tflops: \">= 100\"}}{extra}}}\n")
    fake.script(reply(tools=[("record_metric", {"name": "tflops", "value": 150, "unit": "TFLOP/s"}),
                             ("record_metric", {"name": "bad name!", "value": 1})]),
                finish("done", "Measured 150 TFLOP/s with a 8192 matmul."))


def test_an_agents_claimed_metric_does_not_pass_a_gate(worklog, tmp_path, fake):
    claiming_agent(worklog, fake, accept=False)
    r = wake(tmp_path, env=anthropic_env(fake))
    assert r.returncode == 1, r.stdout + r.stderr
    assert status(worklog, "bench") == "failed"
    body = finding(worklog, "bench")
    assert "tflops >= 100: inconclusive (only an agent claimed it" in body
    assert "tflops=150 TFLOP/s (claimed)" in body
    tool_results = [json.dumps(r["body"]) for r in fake.requests[1:]]
    assert any("is not a metric name" in t for t in tool_results)  # the bad call went back to the model
    rows = [(m["name"], m["source"]) for m in kept(tmp_path, run_row("bench")["run_id"])]
    assert ("tflops", "claimed") in rows and not any(n == "bad name!" for n, _ in rows)


@pytest.mark.xfail(strict=True, reason="inconclusive gates switched off: a claimed value alone passes")
def test_a_claimed_metric_with_the_inconclusive_check_switched_off_passes(worklog, tmp_path, fake):
    claiming_agent(worklog, fake, accept=False)
    wake(tmp_path, BLOCKING_OFF, env=anthropic_env(fake))
    assert status(worklog, "bench") == "failed"


def test_a_claimed_metric_passes_a_gate_when_the_task_accepts_claimed_ones(worklog, tmp_path, fake):
    claiming_agent(worklog, fake, accept=True)
    r = wake(tmp_path, env=anthropic_env(fake))
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "bench") == "done"
    assert "tflops 150 >= 100: pass" in finding(worklog, "bench")


# -- bounds, quiet runs, change flags ---------------------------------------------------------------------------

def test_a_hundred_thousand_metric_lines_are_capped_said_and_the_entry_is_whole(worklog, tmp_path):
    cmd = "echo METRIC tflops=120; awk 'BEGIN{for(i=0;i<100000;i++) print \"METRIC m\" i \"=\" i}'; echo tail-line"
    worklog.write_text(f"- [ ] flood {{id: flood, run: {json.dumps(cmd)}, expect: {{tflops: \">= 100\"}}}}\n")
    r = wake(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    body = finding(worklog, "flood")
    assert "tflops 120 >= 100: pass" in body
    assert body.count("metric(s) past the cap of 1000 per run were not kept") == 1
    assert "> metrics note: 99003 more metric(s) past the cap" in body  # 2 figures + 998 of 100,001 kept
    assert "and 978 more (agentd metrics --task flood)" in body  # 20 of the 998 shown
    assert "> tail-line" in body and "full record: agentd show" in body
    names = {m["name"] for m in kept(tmp_path, run_row("flood")["run_id"])}
    assert len(names) == 1000 and {"tflops", "run.duration_s", "run.exit_code"} <= names
    assert len(body) < 20_000


def test_a_run_without_metrics_or_expect_adds_nothing_to_its_entry(worklog, tmp_path):
    worklog.write_text("- [ ] hi {id: hi, run: echo hello}\n")
    assert wake(tmp_path).returncode == 0
    body = finding(worklog, "hi")
    assert "metrics:" not in body and "metrics note:" not in body and "gate:" not in body and "change:" not in body
    assert {m["name"] for m in kept(tmp_path, run_row("hi")["run_id"])} == {"run.duration_s", "run.exit_code"}


def history(tmp_path, values) -> None:
    """Ten earlier runs of task ``bench`` on this host, in the store the wake uses."""
    state(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    s = Store(state(tmp_path))
    try:
        for i, v in enumerate(values):
            sm.add(s, f"r{i:02d}", "bench", "testhost", [Metric("tflops", v, "TFLOP/s", MEASURED)],
                   at=f"2026-01-01T00:{i:02d}:00Z")
    finally:
        s.close()


STEADY = [100.0, 101.0, 99.5, 100.4, 100.8, 99.7, 100.2, 100.9, 99.9, 100.3]


@pytest.mark.parametrize("value, flagged", [(80, True), (100.1, False), (120, False)])
def test_a_drop_beyond_the_series_noise_is_flagged_the_worse_way_and_a_steady_run_or_a_rise_is_not(
        worklog, tmp_path, value, flagged):
    history(tmp_path, STEADY)
    worklog.write_text(f"- [ ] bench {{id: bench, run: 'echo METRIC tflops={value}'}}\n")
    assert wake(tmp_path).returncode == 0
    body = finding(worklog, "bench")
    assert ("change: tflops 80 is 20.2% below the median 100.25 of the 10 runs before it" in body) is flagged
    assert ("a step, the worse way" in body) is flagged
