"""This host's history, as the queue learns from it (docs/scoring.md#learning-from-this-hosts-history).

One read of the store's ``runs`` table per queue load: this host's finished runs, grouped by task and
by kind (a kind names its runner: ``tasks.task.RUNNER_OF``).  What counts:

- an *attempt* is a run that ended ``done`` or ``failed``; a *success* is one that ended ``done``.
  Runs that ended ``blocked``, ``deferred``, ``waiting`` or ``cancelled`` say "not now" or "not this
  way", and an ``interrupted`` one was cut short (a killed wake, a power cut): none says whether the
  task can be done, so none is counted (the backoff and ``max_attempts`` still count interrupted
  runs); nor are runs still ``running``;
- a counted run's *duration* and *cost* (the cost matters for agent kinds only) are kept too.

The answer is plain numbers (``Stats``); ``tasks.scoring`` turns them into a posterior, a bonus and a
time, and writes where each came from.
"""

from __future__ import annotations

from math import comb

from agentd.recordtype import Factory, Record


def median(xs) -> float:
    """The median of a non-empty list of numbers (``statistics.median``, without importing statistics:
    it pulls in decimal, fractions and random, ~6 ms of every queue's start-up)."""
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2

ATTEMPTS = ("done", "failed")


class Stats(Record):
    """The counted runs of one task, or of one kind on this host."""
    done: int = 0
    attempts: int = 0
    durations: list = Factory(list)  # seconds, of the counted runs
    costs: list = Factory(list)  # dollars, of the counted runs

    def minutes(self) -> float | None:
        return median(self.durations) / 60 if self.durations else None

    def cost(self) -> float | None:
        return median(self.costs) if self.costs else None


class History(Record):
    tasks: dict = Factory(dict)  # task id -> Stats
    kinds: dict = Factory(dict)  # kind -> Stats
    runs: int = 0  # attempts on this host, all kinds


def gather(store, host: str | None) -> History:
    """This host's finished runs, counted (one query over the ``runs`` table)."""
    h = History()
    sql = ("SELECT task_id, kind, status, duration_s, cost_usd FROM runs WHERE status IN "
           "('done', 'failed')")
    args: tuple = ()
    if host is not None:
        sql, args = sql + " AND (host=? OR host IS NULL)", (host,)
    for task_id, kind, status, duration, cost in store.db.execute(sql + " ORDER BY rowid", args):
        for st in (h.tasks.setdefault(task_id, Stats()), h.kinds.setdefault(kind, Stats())):
            st.attempts += 1
            st.done += status == "done"
            if duration is not None and duration >= 0:
                st.durations.append(float(duration))
            if cost is not None:
                st.costs.append(float(cost))
        h.runs += 1
    return h


def pass_k(n: int, c: int, k: int = 3) -> float | None:
    """pass^k (τ-bench): the chance that k runs in a row all succeed, estimated from ``n`` runs with
    ``c`` successes as C(c, k) / C(n, k); None with fewer than k runs."""
    if n < k or k < 1:
        return None
    return comb(c, k) / comb(n, k)


def of_task(store, host: str | None, task_id: str, before: str | None = None) -> Stats:
    """The counted runs of one task on this host (``before``: leaving out that run, the one being recorded)."""
    st = Stats()
    for status, duration in store.db.execute(
            "SELECT status, duration_s FROM runs WHERE task_id=? AND status IN ('done', 'failed')"
            " AND (host=? OR host IS NULL OR ? IS NULL) AND run_id IS NOT ?", (task_id, host, host, before)):
        st.attempts += 1
        st.done += status == "done"
        if duration is not None and duration >= 0:
            st.durations.append(float(duration))
    return st


def reliability_line(st: Stats, k: int = 3) -> str:
    """A recurring task's reliability, as its finding entry says it: pass^k and the median duration."""
    p = pass_k(st.attempts, st.done, k)
    m = st.minutes()
    return (f"reliability: pass^{k} {'n/a (fewer than ' + str(k) + ' runs)' if p is None else f'{p:.2f}'} from "
            f"{st.done} of {st.attempts} runs done; median duration "
            f"{'n/a' if m is None else f'{m:.3g} min'}")
