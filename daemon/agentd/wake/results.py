"""A finished run's results: its metrics collected, kept, gated and watched for change (issue 20).

Called by ``recording`` after the runner, next to the disk verdict::

    rec.outcome = results.judge(rec, rec.outcome)

- **collected**: the outcome's own (an experiment's results, measured; an agent's ``record_metric`` calls,
  claimed), the ``METRIC`` lines of a command's or an experiment's ``stdout.txt``, the file a command
  task's ``metrics:`` names (relative to the command's cwd), and the run's figures (``run.duration_s``,
  ``run.exit_code``, an agent's tokens and cost).  A model's output is never read as measured.
- **kept**: in the store's ``metrics`` table, in one transaction; a write the full disk refuses is tried
  again after freeing agentd's reserve, and if it still can't be made the entry says so and goes on.
- **gated**: the task's ``expect:`` (``metrics/gates.py``), the baseline from this task's last passing
  runs on this host (``baseline_window``), claimed values only with ``accept_claimed: true``.  A ``done``
  run with a FAIL, or with a gate inconclusive because its metric is missing or only claimed, becomes
  ``failed`` with the reason ``QC: <each such gate>`` and the cause ``Cause.QC``; a baseline still too
  short or an unknown peak is said but fails nothing (a recurring task builds its baseline so).
- **watched**: each series of this task the run added to (its figures only where a gate names them)
  against its history on this host (``metrics/change.py``): a step or a drift the worse way is flagged.

A run with no metric of its own, no notes and no ``expect:`` adds nothing to its entry (its figures
are kept quietly).  Runs that have not ended (waiting, deferred, interrupted) are not judged.
"""

from __future__ import annotations

import time

from agentd import statuses
from agentd.escapes import safe
from agentd.metrics import change, extract, gates
from agentd.metrics.metric import CLAIMED, MEASURED
from agentd.runners.command import retry_hint
from agentd.statuses import Cause
from agentd.store import metrics as kept
from agentd.wake import reserve

JUDGED = (statuses.DONE, statuses.FAILED, statuses.BLOCKED)  # runs that ended
READS_STDOUT = ("command", "experiment")  # runners whose stdout a person's program wrote, not a model
BLOCKING = ("missing", "claimed")  # an inconclusive gate with one of these causes fails a done run
MAX_SHOWN = 20  # metrics listed in the entry (all are kept; `agentd metrics` lists them)
MAX_FLAGS = 10  # change flags written in the entry
HISTORY = 40  # the points of a series change detection reads (its step and drift windows fit in it)
MAX_REASON = 400  # characters of a QC reason kept in the runs row


class Judged:
    """What ``judge`` worked out, for the entry."""

    def __init__(self):
        self.read = extract.Extracted()  # the measured metrics, and the notes on what could not be read
        self.claimed: list = []
        self.verdicts: list = []
        self.problems: list = []  # expect: conditions that can't be read
        self.flags: list = []
        self.stored: str | None = None  # why the metrics could not be kept, or None


def judge(rec, o):
    """The outcome, with its run's metrics kept, its gates decided and its entry lines added."""
    if o is None or o.status not in JUDGED:
        return o
    task, attrs = rec.task, rec.task.attrs
    j = Judged()
    collect(rec, o, j)
    expect = attrs.get("expect")
    gate_list = []
    if expect is not None:
        gate_list, j.problems = gates.parse_expect(expect)
    ops = {g.name: g.op for g in gate_list}
    own = [m for m in j.read.metrics if not m.name.startswith("run.") or m.name in ops]
    j.flags = flags(rec, own, ops)
    window = attrs.get("baseline_window") or gates.WINDOW
    history = {g.name: kept.baseline_values(rec.store, task.id, rec.cfg.host, g.name, window, before_run=rec.run_id)
               for g in gate_list if g.ref == "baseline"}
    store(rec, j)
    if gate_list:
        j.verdicts = gates.evaluate(gate_list, [*j.read.metrics, *j.claimed], history, o.peaks, window,
                                    allow_claimed=bool(attrs.get("accept_claimed")))
    decide(rec, o, j)
    o.lines = [*o.lines, *entry_lines(rec, j, own, expect is not None)]
    if attrs.get("every"):  # a recurring task: pass^3 and the median duration, this run counted
        from agentd.store.history import of_task, reliability_line  # lazy: only for a recurring task

        st = of_task(rec.store, rec.cfg.host, task.id, before=rec.run_id)
        st.attempts, st.done = st.attempts + (o.status in ("done", "failed")), st.done + (o.status == "done")
        o.lines = [*o.lines, reliability_line(st)]
    return o


def collect(rec, o, j: Judged) -> None:
    """Every source of the run's metrics into ``j`` (measured ones deduplicated by name, capped; the
    names a gate uses are kept past the cap)."""
    j.read.keep = frozenset(str(k) for k in (rec.task.attrs.get("expect") or {}))
    for m in o.metrics:
        if m.source == MEASURED:
            j.read.add(m)
        elif m.source == CLAIMED and len(j.claimed) < extract.MAX_CLAIMED:
            j.claimed.append(m)
    runner = rec.task.runner
    took = o.duration_s if o.duration_s is not None else time.monotonic() - rec.t0  # (a Slurm job's own)
    figures = {"duration_s": round(took, 3), "exit_code": o.exit_code}
    if runner == "agent" or o.provider:
        figures.update(input_tokens=o.input_tokens, output_tokens=o.output_tokens, cost_usd=o.cost_usd)
    extract.from_run(figures, j.read)
    if runner == "command" and rec.task.attrs.get("metrics") and rec.job.workspace is not None:
        extract.from_file(rec.task.attrs["metrics"], rec.job.workspace, j.read)
    if runner in READS_STDOUT:  # last: a flood of METRIC lines can't crowd out the rest
        out = rec.run_dir.path / "stdout.txt"
        if out.exists():
            extract.from_stdout(out, j.read)


def flags(rec, metrics, ops: dict) -> list[str]:
    """Each series (of ``metrics``) that this run's value moved beyond its noise, the worse way."""
    out = []
    for m in metrics:
        points = kept.series(rec.store, m.name, task=rec.task.id, host=rec.cfg.host, limit=HISTORY + 1,
                             source=MEASURED)
        history = [p["value"] for p in points if p["run"] != rec.run_id][-HISTORY:]
        found = change.detect(history, m.value, change.better(m.name, ops.get(m.name)), m.name)
        if found is not None:
            out.append(found.text)
    return out


def store(rec, j: Judged) -> None:
    """Keep the run's metrics; a full disk costs them, never the entry (``j.stored`` says so)."""
    rows = [*j.read.metrics, *j.claimed]
    try:
        reserve.retry(rec.cfg, kept.add, rec.store, rec.run_id, rec.task.id, rec.cfg.host, rows)
    except Exception as e:
        if not reserve.full_error(e):
            raise
        j.stored = f"not kept: the disk is full ({safe(str(e), 200)})"


def decide(rec, o, j: Judged) -> None:
    """A done run whose gates did not all hold is failed, for QC."""
    blocking = [v.line for v in j.verdicts
                if v.result == gates.FAIL or (v.result == gates.INCONCLUSIVE and v.cause in BLOCKING)]
    blocking += [f"{p} (a condition that can't be read never passes)" for p in j.problems]
    if o.status != statuses.DONE or not blocking:
        return
    reason = "QC: " + "; ".join(blocking)
    o.status, o.cause = statuses.FAILED, Cause.QC
    o.reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "..."
    o.summary = f"QC failed ({len(blocking)} of {len(j.verdicts) + len(j.problems)} gates): {o.summary}"
    o.next_step = f"see the gates above; {retry_hint(rec.cfg, rec.task)}"


def entry_lines(rec, j: Judged, own, gated: bool) -> list[str]:
    """The entry's lines: each gate's working, the metrics read (capped), the notes, the change flags."""
    lines = [f"gate: {safe(v.line, 300)}" for v in j.verdicts]
    lines += [f"gate: {safe(p, 300)}" for p in j.problems]
    shown = [f"{m.name}={gates.plain(m.value)}{(' ' + m.unit) if m.unit else ''}" for m in own]
    shown += [f"{m.name}={gates.plain(m.value)}{(' ' + m.unit) if m.unit else ''} (claimed)" for m in j.claimed]
    if shown:
        more = len(shown) - MAX_SHOWN
        lines.append("metrics: " + ", ".join(shown[:MAX_SHOWN])
                     + (f" and {more} more (agentd metrics --task {rec.task.id})" if more > 0 else ""))
    elif gated:
        lines.append("metrics: none read")
    lines += [f"metrics note: {n}" for n in j.read.notes]
    if j.stored:
        lines.append(f"metrics: {j.stored}")
    lines += [f"change: {f}" for f in j.flags[:MAX_FLAGS]]
    if len(j.flags) > MAX_FLAGS:
        lines.append(f"change: and {len(j.flags) - MAX_FLAGS} more series changed")
    return lines
