"""Issue 20 end to end, as a person would see it: a recurring benchmark task run by real wakes (hours
apart, under libfaketime) builds a series that `agentd metrics NAME --json` returns; after ten steady
runs a 20 % drop is flagged in its own entry and in no other."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import AGENTD

FAKETIME = shutil.which("faketime")
needs_faketime = pytest.mark.skipif(FAKETIME is None, reason="needs libfaketime (apt-get install faketime)")
STEADY = [100.0, 101.0, 99.0, 100.5, 99.5, 100.0, 101.0, 99.0, 100.0, 100.5]


def later(hours: float, *args: str) -> subprocess.CompletedProcess:
    """The real CLI with its clocks ``hours`` ahead (the boot clock too: libfaketime's sleeps fail when
    only the wall clock moves)."""
    return subprocess.run([FAKETIME, "-f", f"+{hours}h", *AGENTD, *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def findings(worklog) -> list[str]:
    """The bodies of the benchmark's finding entries, in order."""
    text = worklog.read_text(encoding="utf-8")
    return [m.group(1) for m in re.finditer(r"^=== agentd entry [^\n]* task=gemm status=(?:done|failed) [^\n]*\n"
                                            r"((?:>[^\n]*\n)*)", text, re.M)]


@needs_faketime
def test_a_recurring_benchmark_keeps_its_series_and_flags_the_drop_only(worklog, tmp_path):
    value = tmp_path / "tflops.txt"
    worklog.write_text(f"- [ ] nightly gemm {{id: gemm, run: 'echo METRIC tflops=$(cat {value}) TFLOP/s', "
                       "every: 6h}\n", encoding="utf-8")
    for k, v in enumerate([*STEADY, 80.0]):
        value.write_text(f"{v}\n", encoding="utf-8")
        r = later(7 * k, "wake", "--now")  # each 7 h after the last: the task is due again
        assert r.returncode == 0 and "gemm: done" in r.stdout, (k, r.stdout, r.stderr)
    r = later(7 * 11, "metrics", "tflops", "--json")
    assert r.returncode == 0, r.stderr
    series = json.loads(r.stdout)
    assert [p["value"] for p in series] == [*STEADY, 80.0]
    assert {p["task"] for p in series} == {"gemm"} and {p["unit"] for p in series} == {"TFLOP/s"}
    assert len({p["run"] for p in series}) == 11  # a point per run, each naming its run
    bodies = findings(worklog)
    assert len(bodies) == 11
    flagged = ["change: tflops" in b for b in bodies]
    assert flagged == [False] * 10 + [True], bodies[-1]
    assert "below the median" in bodies[-1]
