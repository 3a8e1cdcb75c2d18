"""``scoring.Plain`` (how the task table's plain rows are scored and explained, from their numbers)
is ``scoring.score`` for every shape and every number a line may give."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from agentd.tasks import scoring
from agentd.worklog.attrs import PRIORITIES
from agentd.worklog.maketask import KINDS

PLAIN_KINDS = [k for k in KINDS if k != "directive"]


def _number(lo: float, hi: float | None):
    floats = st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)
    ints = st.integers(min_value=int(lo), max_value=int(hi) if hi is not None else 10**100)
    return st.one_of(st.none(), floats, ints, st.sampled_from([0, 0.0, -0.0, lo, hi or 1e300]))


@settings(max_examples=2000, deadline=None)
@given(kind=st.sampled_from(PLAIN_KINDS), priority=st.sampled_from(PRIORITIES), value=_number(0, 10),
       certainty=_number(0, 1), minutes=_number(0, None))
def test_plain_is_score(kind, priority, value, certainty, minutes):
    attrs = {"value": value, "certainty": certainty, "minutes": minutes}
    want = scoring.score(kind, priority, attrs)
    plain = scoring.Plain(*scoring.Plain.shape(kind, priority, attrs))
    got = plain.score(*plain.numbers(attrs))
    assert got == want
    assert got.explain() == want.explain()
    assert repr(got.total) == repr(want.total)  # -0.0 stays -0.0


def test_plain_parts_take_stand_ins():
    """The views put their own stand-ins in the numbers' places to make a template once per shape."""
    plain = scoring.Plain("task", "high", True, False, True)
    marks = tuple(f"<{n}>" for n in range(len(scoring.Plain.SPECS)))
    assert plain.parts(marks) == [("value", "<0>"), ("certainty (default)", "× 0.7"), ("high priority", "× 1.2"),
                                  ("cost (<2> min)", "× <3>")]
    assert plain.explain(marks) == "<0> value · × 0.7 certainty (default) · × 1.2 high priority · × <3> cost (<2> min) = <4>"
