"""A recurring task's interval: `{every: 6h}` in seconds, bounded, and a clear error otherwise."""

from __future__ import annotations

import pytest

from agentd.metrics import every
from agentd.metrics.every import seconds


@pytest.mark.parametrize("text, s", [("30m", 1800), ("5m", 300), ("6h", 21600), ("1d", 86400), ("7d", 604800),
                                     ("2w", 1209600), ("365d", 365 * 86400), (" 6 h ", 21600), ("52w", 52 * 604800)])
def test_intervals_in_seconds(text, s):
    assert seconds(text) == s


@pytest.mark.parametrize("text, says", [
    ("4m", "less than 5 minutes, the shortest interval"), ("0m", "less than 5 minutes"),
    ("366d", "more than 365 days, the longest interval"), ("53w", "more than 365 days"),
    ("999999999w", "more than 365 days"),
    ("6hours", "'hours' is not a unit (did you mean 6h?)"), ("6H", "(did you mean 6h?)"),
    ("1M", "(minutes are m; months are too vague)"), ("10s", "seconds are too short"), ("1y", "months and years too vague"),
    ("6", "is not an interval"), ("h", "is not an interval"), ("-1h", "is not an interval"), ("1.5h", "is not an interval"),
    ("1e3h", "is not an interval"), ("", "is not an interval"), ("x" * 10_000, "is not an interval"),
    (6, "is not an interval"), (None, "is not an interval"), (True, "is not an interval"),
])
def test_a_bad_interval_says_what_is_wrong(text, says):
    with pytest.raises(ValueError) as e:
        seconds(text)
    assert str(e.value).startswith("every: ") and says in str(e.value), str(e.value)
    assert len(str(e.value)) < 300


@pytest.mark.xfail(strict=True, reason="the lower bound switched off: a task could run every minute")
def test_the_bound_test_fails_with_the_lower_bound_switched_off(monkeypatch):
    monkeypatch.setattr(every, "LEAST", 0)
    with pytest.raises(ValueError):
        seconds("1m")
