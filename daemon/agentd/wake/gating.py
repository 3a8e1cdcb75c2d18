"""Whether a timer wake may run now, and which task it takes.

A person's ``--now`` skips the gates.  Without it (the timer's path) a wake
does nothing during quiet hours or above ``max_load``, and holds back gpu
tasks while the owner was active within ``min_idle``.  Outside quiet hours, a
task expected to run past their start (its typed ``minutes``, else the median of
its runs, or of its kind's, on this host) is passed over for one that fits, as
long as it would fit a whole free window (one longer than that never would: it
waits for nothing) and is not a critical directive passed over enough to go first.
Idleness has no known end, so only quiet hours bound a window.  Whatever the path, agent
tasks wait while the workspace's disk is (nearly) full: they would fill it again
(``diskuse.workspace_full``); command tasks still run.
"""

from __future__ import annotations

import time

from agentd.config.schema import parse_time_range
from agentd.errors import UsageError
from agentd.queue.learned import evidence
from agentd.recordtype import Factory, Record
from agentd.wake import diskuse


class Gate(Record):
    skip: str | None = None  # the whole wake does nothing
    hold_gpu: str | None = None  # gpu tasks wait
    hold_agents: str | None = None  # agent tasks wait (the disk is full)
    window: tuple | None = None  # (seconds until quiet hours start, seconds of a whole free window, quiet_hours)
    passed: list = Factory(list)  # (task id, why) of tasks passed over for running past the window


def check(cfg, snap: dict, forced: bool, local_now: time.struct_time | None = None) -> Gate:
    gate = Gate() if forced else _timer_gate(cfg, snap, local_now)
    if not gate.skip:
        gate.hold_agents = disk_hold(cfg)
    return gate


def disk_hold(cfg) -> str | None:
    """Why agent tasks wait for disk space, or None."""
    full = diskuse.workspace_full(cfg)
    if full is None:
        return None
    return (f"disk full ({full.workspace}, {diskuse.human(full.free)} free; "
            "`agentd status` says what fills it)")


def _timer_gate(cfg, snap: dict, local_now: time.struct_time | None) -> Gate:
    gate = Gate()
    if cfg["quiet_hours"]:
        start, end = parse_time_range(cfg["quiet_hours"])
        t = local_now or time.localtime()
        minute = t.tm_hour * 60 + t.tm_min
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if inside:
            gate.skip = f"quiet hours ({cfg['quiet_hours']}); `agentd wake --now` runs anyway"
            return gate
        # seconds to the start of quiet hours (to the minute's start: a little early, never late)
        left = ((start - minute) % 1440) * 60 - t.tm_sec
        gate.window = (left, ((start - end) % 1440) * 60, cfg["quiet_hours"])
    load = snap.get("load_per_cpu")
    if load is not None and cfg["max_load"] and load > cfg["max_load"]:
        gate.skip = (f"the machine is busy (load {load:.2f} per CPU > max_load {cfg['max_load']:g}); "
                     "`agentd wake --now` runs anyway")
        return gate
    idle = snap.get("idle_s")
    min_idle = cfg.duration("min_idle")
    if snap.get("users") and (idle is None or idle < min_idle):
        seen = "an unknown time ago" if idle is None else f"{idle / 60:.0f} min ago"
        gate.hold_gpu = f"the owner was active {seen} (gpu tasks need {cfg['min_idle']} idle)"
    return gate


def expected_minutes(t, history) -> tuple[float, str] | None:
    """(how long ``t`` is expected to take, from what): its typed ``minutes``, else the median of its
    runs (or of its kind's) on this host; None when nothing says."""
    typed = t.attrs.get("minutes")
    if typed:
        return float(typed), "its minutes"
    ev = evidence(history, t.id, t.kind)
    if ev is not None and ev.minutes:
        return ev.minutes, f"median of {ev.timed} {ev.timed_of}"
    return None


def past_window(t, gate: Gate, history) -> str | None:
    """Why ``t`` waits for a longer window: it would run past the start of quiet hours, and would fit a
    whole free window; None when it fits, nothing says how long it takes, or no window is set."""
    if gate.window is None or t.forced:  # (a critical directive past its passovers goes first all the same)
        return None
    left, whole, quiet = gate.window
    exp = expected_minutes(t, history)
    if exp is None or exp[0] * 60 <= left or exp[0] * 60 > whole:
        return None
    return (f"expected {exp[0]:.3g} min ({exp[1]}) would run past the start of quiet hours ({quiet}) in "
            f"{int(left // 60)} min; waits for the next window")


def choose(tasks, gate: Gate, task_id: str | None = None, history=None):
    """The task to run: ``task_id``, or the first eligible one (``tasks``: a ``TaskList``) that fits the
    time left before quiet hours (``history``: this host's, for how long a task takes)."""
    if task_id:
        t = tasks.get(task_id)
        if t is None:
            raise UsageError(f"no task {task_id!r}; `agentd queue` lists them")
        if not t.eligible and not t.only_waits:  # a person asking may skip a backoff or a deferral
            raise UsageError(f"task {task_id} can't run now: {t.held_by or t.why}")
        if gate.hold_agents and t.runner == "agent":
            raise UsageError(f"task {task_id} can't run now: agent tasks wait: {gate.hold_agents}")
        t.why = by_hand(t)
        return t
    for t in tasks:
        if not t.eligible:
            break
        if gate.hold_gpu and t.attrs.get("gpu"):
            continue
        if gate.hold_agents and t.runner == "agent":
            continue
        if (why := past_window(t, gate, history)) is not None:
            gate.passed.append((t.id, why))
            continue
        return t
    return None


def by_hand(t) -> str:
    """Why a task a person named with ``--task`` runs: they asked, and what it would do otherwise (wait,
    or its place in the queue), for its started entry and the log."""
    head = f"run by hand: agentd wake --task {t.id}; "
    if t.why.startswith(head):  # (the wake checks the task before settling, then chooses it)
        return t.why
    return head + (f"its score: {t.why}" if t.eligible else f"it would otherwise wait: {t.why}")


def nothing_line(tasks, gate: Gate) -> str:
    """Why ``choose`` found nothing (``tasks``: a ``TaskList``)."""
    if gate.passed:
        tid, why = gate.passed[0]
        more = f" (and {len(gate.passed) - 1} more)" if len(gate.passed) > 1 else ""
        return f"{tid}{more}: {why}"
    eligible = tasks.eligible_count() if gate.hold_gpu or gate.hold_agents else 0
    if eligible and gate.hold_agents:
        return f"agent tasks wait: {gate.hold_agents}"
    if eligible and gate.hold_gpu:
        return f"{eligible} gpu task(s) wait: {gate.hold_gpu}"
    counts = tasks.counts()
    waiting = sum(counts.get(s, 0) for s in ("open", "failed", "deferred", "interrupted"))
    if waiting:
        return f"no task is actionable ({waiting} waiting; `agentd queue` says why)"
    blocked = counts.get("blocked", 0)
    if blocked:
        return (f"{blocked} task(s) blocked and nothing else open; `agentd queue` says why "
                f"(RETRY: ID reopens one)")
    return "the queue is empty"
