"""QC gates: the `expect:` grammar (a small parser, never eval), and each gate's verdict and working,
each check run once switched off to show the test can fail."""

from __future__ import annotations

import pytest

from agentd.metrics import gates
from agentd.metrics.gates import FAIL, INCONCLUSIVE, PASS, GateError, evaluate, parse, parse_expect, qc_reason
from agentd.metrics.metric import CLAIMED, MEASURED, Metric


@pytest.mark.parametrize("text, op, ref, factor", [
    (">= 100", ">=", "", 100.0), ("< 0.05", "<", "", 0.05), ("<= -3", "<=", "", -3.0), ("> 1e3", ">", "", 1000.0),
    ("== 0", "==", "", 0.0), (">=100", ">=", "", 100.0), ("  >=  100  ", ">=", "", 100.0),
    (">= baseline", ">=", "baseline", 1.0), (">= 0.9 baseline", ">=", "baseline", 0.9),
    (">= 0.9 × baseline", ">=", "baseline", 0.9), (">= 0.9×baseline", ">=", "baseline", 0.9),
    (">= 0.9 x baseline", ">=", "baseline", 0.9), (">= 0.9x baseline", ">=", "baseline", 0.9),
    ("<= 1.1 * baseline", "<=", "baseline", 1.1), (">= 0.5 peak", ">=", "peak", 0.5), ("< peak", "<", "peak", 1.0),
])
def test_conditions_in_the_grammar_are_read(text, op, ref, factor):
    g = parse("m", text)
    assert (g.name, g.op, g.ref, g.factor) == ("m", op, ref, factor)


@pytest.mark.parametrize("text, says", [
    ("=> 3", "unknown operator '=>' (use < <= > >= ==): did you mean >=?"),
    ("=< 3", "did you mean <=?"),
    ("≥ 3", "did you mean >=?"),
    ("= 3", "unknown operator '=' (use < <= > >= ==): did you mean ==?"),
    ("!= 3", "unknown operator '!='"),
    ("<< 3", "unknown operator '<<'"),
    ("100", "it must start with an operator"),
    ("__import__('os').system('x')", "it must start with an operator"),
    (">= __import__('os')", "'__import__' is not a number, baseline or peak"),
    (">= os.system", "'os' is not a number, baseline or peak"),
    (">= 1 / 2", "'/' is not part of a condition"),
    (">= 1 + 1", "'+' is not a number"),
    (">=", "nothing after >="),
    ("", "the condition is empty"),
    (">= abc", "'abc' is not a number, baseline or peak"),
    (">= 0.9 base", "'base' is not a number, baseline or peak (did you mean baseline?)"),
    (">= Baseline", "(did you mean baseline?)"),
    (">= 0.9 peek", "(did you mean peak?)"),
    (">= nan", "'nan' is not a number, baseline or peak"),
    (">= 1e400", "'1e400' is infinite"),
    (">= 1 2", "after >= comes a number, or [<factor> ×] baseline or peak"),
    (">= × baseline", "after >= comes a number"),
    (">= 0 baseline", "the factor must be more than 0"),
    (">= -0.5 peak", "the factor must be more than 0"),
    (">= 5%", "'%' is not part of a condition"),
    (">= 1.5.3", "'1.5.3' is not a number"),
    (">= " + "1" * 300, "longer than 200 characters"),
])
def test_a_bad_condition_names_its_key_and_says_what_is_wrong(text, says):
    with pytest.raises(GateError) as e:
        parse("tflops", text)
    assert str(e.value).startswith(f"expect: tflops: ") and says in str(e.value), str(e.value)


@pytest.mark.parametrize("value", [100, 0.5, True, None, [">= 1"], {"op": ">="}])
def test_a_condition_that_is_not_a_string_is_refused(value):
    with pytest.raises(GateError, match=r"^expect: tflops: .* is not a condition: write it as a quoted string"):
        parse("tflops", value)


def test_parse_expect_gives_every_problem_each_naming_its_key():
    gs, problems = parse_expect({"tflops": ">= 100", "runaway_rate": "=< 0.05", "bad name": ">= 1", "x": "> y"})
    assert [g.name for g in gs] == ["tflops"]
    assert [p.split(":")[1].strip() for p in problems] == ["runaway_rate", "'bad name' is not a metric name (a letter or _, then letters, digits, _ or ., at most 64 characters)", "x"]


@pytest.mark.parametrize("expect, says", [
    ("tflops >= 100", "expect: must be a mapping"), ([">= 1"], "expect: must be a mapping"), ({}, "names no metric"),
    ({f"m{i}": ">= 1" for i in range(101)}, "more than the 100"),
])
def test_an_expect_that_is_not_a_mapping_of_conditions_is_one_problem(expect, says):
    gs, problems = parse_expect(expect)
    assert gs == [] and len(problems) == 1 and says in problems[0]


@pytest.mark.parametrize("value, ok", [(3, True), (10, True), (1000, True), (2, False), (1001, False), (True, False),
                                       ("10", False), (5.0, False)])
def test_baseline_window_bounds(value, ok):
    assert (gates.window_problem(value) is None) is ok


# -- verdicts ------------------------------------------------------------------------------------------------

def verdicts(expect: dict, metrics: dict, history=None, peaks=None, claimed=(), **kw):
    gs, problems = parse_expect(expect)
    assert not problems
    ms = [Metric(k, v, "", MEASURED) for k, v in metrics.items()] + [Metric(k, v, "", CLAIMED) for k, v in claimed]
    return evaluate(gs, ms, history, peaks, **kw)


def test_a_number_gate_that_fails_shows_its_working():
    (v,) = verdicts({"tflops": ">= 100"}, {"tflops": 80})
    assert (v.result, v.line, v.value, v.threshold) == (FAIL, "tflops 80 >= 100: FAIL", 80.0, 100.0)


def test_a_number_gate_that_passes():
    (v,) = verdicts({"tflops": ">= 100"}, {"tflops": 120})
    assert (v.result, v.line) == (PASS, "tflops 120 >= 100: pass")


def test_a_baseline_gate_that_fails_shows_its_working_as_the_issue_writes_it():
    (v,) = verdicts({"tokens_per_s": ">= 0.9 × baseline"}, {"tokens_per_s": 41.2},
                    history={"tokens_per_s": [46.0, 47.0, 48.0, 47.0, 47.5]})
    assert v.line == "tokens_per_s 41.2 >= 0.9 × baseline 47.0 = 42.3: FAIL" and v.result == FAIL


def test_a_baseline_gate_that_passes_and_one_without_a_factor():
    hist = {"tokens_per_s": [46.0, 47.0, 48.0]}
    (v,) = verdicts({"tokens_per_s": ">= 0.9 baseline"}, {"tokens_per_s": 45.0}, history=hist)
    assert v.line == "tokens_per_s 45 >= 0.9 × baseline 47.0 = 42.3: pass"
    (v,) = verdicts({"tokens_per_s": ">= baseline"}, {"tokens_per_s": 45.0}, history=hist)
    assert v.line == "tokens_per_s 45 >= baseline 47.0: FAIL"


def test_the_baseline_is_the_median_of_the_last_window_runs_only():
    hist = {"t": [1000.0] * 20 + [10.0, 11.0, 12.0]}  # old runs far above: outside a window of 3
    (v,) = verdicts({"t": ">= baseline"}, {"t": 11.5}, history=hist, window=3)
    assert v.line == "t 11.5 >= baseline 11.0: pass"
    (v,) = verdicts({"t": ">= baseline"}, {"t": 11.5}, history=hist)  # window 10: 7 of 1000
    assert v.result == FAIL and "baseline 1000.0" in v.line


def test_a_baseline_with_too_few_runs_is_inconclusive_and_says_how_many_of_how_many():
    (v,) = verdicts({"t": ">= 0.9 baseline"}, {"t": 1.0}, history={"t": [1.0, 2.0]})
    assert (v.result, v.cause) == (INCONCLUSIVE, "baseline")
    assert v.line == "t 1 >= 0.9 × baseline: inconclusive (a baseline needs at least 3 passing runs, has 2 of 3)"


def test_a_peak_gate_uses_the_devices_peak_and_is_inconclusive_without_one():
    (v,) = verdicts({"tflops": ">= 0.5 peak"}, {"tflops": 400}, peaks={"tflops": 989})
    assert v.line == "tflops 400 >= 0.5 × peak 989 = 494.5: FAIL"
    (v,) = verdicts({"tflops": ">= 0.5 peak"}, {"tflops": 400})
    assert (v.result, v.cause) == (INCONCLUSIVE, "peak") and "knows no peak for tflops" in v.line


def test_a_missing_metric_is_inconclusive_never_pass():
    (v,) = verdicts({"runaway_rate": "< 0.05"}, {})
    assert (v.result, v.cause) == (INCONCLUSIVE, "missing")
    assert v.line == "runaway_rate < 0.05: inconclusive (no value: the run did not measure it)"


def test_a_claimed_value_is_not_decided_on_unless_the_task_allows_it():
    (v,) = verdicts({"tflops": ">= 100"}, {}, claimed=[("tflops", 150)])
    assert (v.result, v.cause) == (INCONCLUSIVE, "claimed")
    (v,) = verdicts({"tflops": ">= 100"}, {}, claimed=[("tflops", 150)], allow_claimed=True)
    assert v.result == PASS
    (v,) = verdicts({"tflops": ">= 100"}, {"tflops": 80}, claimed=[("tflops", 150)], allow_claimed=True)
    assert v.result == FAIL  # a measured value wins over a claim


@pytest.mark.parametrize("op, value, result", [
    ("<", 0.04, PASS), ("<", 0.05, FAIL), ("<", 0.06, FAIL), ("<=", 0.05, PASS), ("<=", 0.06, FAIL),
    (">", 0.05, FAIL), (">", 0.06, PASS), (">=", 0.05, PASS), (">=", 0.04, FAIL), ("==", 0.05, PASS),
    ("==", 0.0500000000001, PASS), ("==", 0.051, FAIL),
])
def test_each_operator(op, value, result):
    (v,) = verdicts({"m": f"{op} 0.05"}, {"m": value})
    assert v.result == result, v.line


def test_a_threshold_worked_out_in_floats_compares_as_written():
    # 0.9 * 47.0 is 42.300000000000004: a value of 42.3 is at the threshold, not below it
    (v,) = verdicts({"t": ">= 0.9 baseline"}, {"t": 42.3}, history={"t": [47.0, 47.0, 47.0]})
    assert v.result == PASS, v.line


def test_seed_001s_pilot_thresholds_pass_and_fail_on_its_qc_summary():
    expect = {"runaway_rate": "< 0.05", "token_limit_rate": "< 0.10", "delimiter_leakage": "== 0",
              "median_tokens": "< 40", "critic_acceptance": ">= 0.5"}
    good = {"runaway_rate": 0.0, "token_limit_rate": 0.09, "delimiter_leakage": 0, "median_tokens": 32,
            "critic_acceptance": 0.818}
    assert {v.result for v in verdicts(expect, good)} == {PASS} and qc_reason(verdicts(expect, good)) is None
    bad = {**good, "token_limit_rate": 0.1, "delimiter_leakage": 2}
    assert qc_reason(verdicts(expect, bad)) == ("QC: token_limit_rate 0.1 < 0.10: FAIL; "
                                                "delimiter_leakage 2 == 0: FAIL")


# -- each check switched off once: the tests above are able to fail ----------------------------------------

_real_baseline_of, _real_pick = gates.baseline_of, gates.pick
SWITCHED_OFF = [  # (what is switched off, (attribute, stand-in), the test that must then fail)
    ("the comparison: every gate passes", ("compare", lambda op, value, threshold: True),
     "test_a_number_gate_that_fails_shows_its_working"),
    ("the comparison: every baseline gate passes", ("compare", lambda op, value, threshold: True),
     "test_a_baseline_gate_that_fails_shows_its_working_as_the_issue_writes_it"),
    ("the minimum of runs: a baseline of 2 runs decides", ("MIN_BASELINE", 1),
     "test_a_baseline_with_too_few_runs_is_inconclusive_and_says_how_many_of_how_many"),
    ("the window: every earlier run counts in the baseline",
     ("baseline_of", lambda values, window=10: _real_baseline_of(values, 10**6)),
     "test_the_baseline_is_the_median_of_the_last_window_runs_only"),
    ("measured-only: a claim decides",
     ("pick", lambda name, metrics, allow_claimed=False: _real_pick(name, metrics, True)),
     "test_a_claimed_value_is_not_decided_on_unless_the_task_allows_it"),
    ("a missing value read as 0: the gate passes",
     ("pick", lambda name, metrics, allow_claimed=False: (_real_pick(name, metrics, allow_claimed)[0] or 0.0, "")),
     "test_a_missing_metric_is_inconclusive_never_pass"),
    ("the peak check: an unknown peak reads as 0", ("peak_of", lambda peaks, name: peaks.get(name, 0.0)),
     "test_a_peak_gate_uses_the_devices_peak_and_is_inconclusive_without_one"),
]


@pytest.mark.parametrize("off, patch, test", [
    pytest.param(off, patch, test, id=test.removeprefix("test_")[:40],
                 marks=pytest.mark.xfail(strict=True, reason=f"switched off: {off}")) for off, patch, test in SWITCHED_OFF])
def test_each_gate_test_fails_with_its_check_switched_off(monkeypatch, off, patch, test):
    monkeypatch.setattr(gates, *patch)
    globals()[test]()


def test_a_value_is_shown_with_every_digit_it_was_read_with():
    assert gates.plain(123456789.0) == "123456789" and gates.plain(100000.4) == "100000.4"
    assert gates.plain(80.0) == "80" and gates.plain(0.05) == "0.05"
