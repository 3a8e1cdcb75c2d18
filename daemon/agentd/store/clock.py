"""Time that survives clock jumps: every deadline kept as a start plus a length.

A Jetson without a clock battery boots in 1970 (or with a stale or future clock) and NTP sets it
right later.  A deadline written as one wall time in the wrong year would then expire at once
(an approval asked seconds ago) or never (a backoff "until 2099").  So each deadline agentd sets is
also kept here as where it started (the wall time, and the boot's id and time since boot, which no
clock setting moves) and how long it is:

* **within one boot** the time since it started is the boot clock's (``CLOCK_BOOTTIME``, which
  counts suspend too): right whatever the wall clock did;
* **across a reboot** only the wall clock is left: the time since it started is the wall clocks'
  difference, never below 0 nor above the length.  An approval's expiry counts no time across a
  reboot at all: it expires only after its length of real time passed with this host up to see it;
* so no deadline is ever further away than its length.

``rebase`` (each wake's settling, before anything is chosen) works out every deadline again, and
where the wall time it was written as is off by more than a minute it rewrites the store's copy
(a run's ``defer_until``, a hold's ``until``, an approval's ``expires_at``), re-anchors it in this
boot, and notes what it changed; `agentd status` shows the notes.  Every reader then compares the
store's times with the wall clock as before.

Times with no length (a run's start, a failure's ``at``) are **suspect** when they lie more than a
day ahead of now, or before the store existed (or before this code was written): ``status`` says so; the queue waits on none of them.
"""

from __future__ import annotations

import time

from agentd.escapes import safe
from agentd.recordtype import Record
from agentd.times import iso, parse

SLACK_S = 60.0  # a deadline's wall time this far off is rewritten (and noted)
AHEAD_S = 86400.0  # a recorded time more than this ahead of now is suspect
# No run can have started before this code was written: a store made while the clock said 1970 has its
# own birth time wrong, so the earliest believable time is the later of the two.
WRITTEN = 1_764_547_200.0  # 2025-12-01T00:00:00Z
MAX_WAIT_S = 32 * 86400  # the furthest deferral agentd sets (a usage reset it believes: providers.base.MAX_RESET_AHEAD) and a day
MAX_NOTES = 50  # the notes kept (the newest)
KINDS = ("run", "hold", "approval", "failed")  # failed: a failed run's start of backoff (length 0)


class Now(Record):
    """This moment by every clock agentd reads."""
    wall: float  # epoch seconds, as the wall clock says (it may be wrong, and it may jump)
    boot_id: str  # the kernel's id for this boot ("" where unknown)
    boot: float  # seconds since this boot (CLOCK_BOOTTIME: suspend counted; no clock setting moves it)


def now() -> Now:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot_id = f.read(64).strip()
    except OSError:
        boot_id = ""
    try:
        boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        boot, boot_id = time.monotonic(), ""
    return Now(time.time(), boot_id, boot)


def elapsed(row: dict, at: Now, last: Now | None = None) -> float:
    """Seconds that passed since ``row`` (a deadline row) started, as far as can be known (``last``: the
    last wake's clocks, for an approval from an earlier boot)."""
    length = row["length"]
    if row["boot_id"] and row["boot_id"] == at.boot_id:
        return max(0.0, at.boot - row["boot"])
    if row["kind"] == "approval":  # only time this host was up to see counts: up to the last wake of its boot
        return max(0.0, last.boot - row["boot"]) if last and row["boot_id"] and last.boot_id == row["boot_id"] else 0.0
    return min(max(0.0, at.wall - row["start"]), length if length > 0 else float("inf"))


def remaining(row: dict, at: Now, last: Now | None = None) -> float:
    return max(0.0, row["length"] - elapsed(row, at, last))


def keep(db, kind: str, key: str, due: str | None, at: Now | None = None) -> None:
    """Keep the deadline ``due`` (a wall time just worked out from this moment) as a start plus a length;
    ``due`` None drops it.  ``kind`` ``failed`` keeps only a start (``due`` is the failure's time)."""
    if kind not in KINDS:
        raise ValueError(f"unknown deadline kind {kind!r}")
    if due is None:
        db.execute("DELETE FROM deadlines WHERE kind=? AND key=?", (kind, key))
        return
    at = at or now()
    t = parse(due)
    length = 0.0 if kind == "failed" or t is None else max(0.0, t - at.wall)
    db.execute("INSERT OR REPLACE INTO deadlines VALUES (?,?,?,?,?,?,?)",
               (kind, key, at.wall, length, at.boot_id, at.boot, iso(at.wall + length)))


def since(db, kind: str, key: str, at: Now | None = None) -> float | None:
    """Seconds since the deadline ``(kind, key)`` started, or None if agentd keeps none."""
    row = db.execute("SELECT * FROM deadlines WHERE kind=? AND key=?", (kind, key)).fetchone()
    return None if row is None else elapsed(dict(row), at or now())


_WHERE = {"run": ("runs", "defer_until", "run_id", "run {key} waits until"),
          "hold": ("holds", "until", "backend", "provider {key} is held until"),
          "approval": ("approvals", "expires_at", "id", "approval request {key} expires at")}


_PENDING = ("DELETE FROM deadlines WHERE kind='run' AND key NOT IN"
            " (SELECT run_id FROM runs WHERE status IN ('waiting', 'deferred'))",
            "DELETE FROM deadlines WHERE kind='approval' AND key NOT IN (SELECT id FROM approvals WHERE answer IS NULL)",
            "DELETE FROM deadlines WHERE kind='hold' AND key NOT IN (SELECT backend FROM holds WHERE until IS NOT NULL)",
            "DELETE FROM deadlines WHERE kind='failed' AND rowid NOT IN"
            " (SELECT rowid FROM deadlines WHERE kind='failed' ORDER BY start DESC LIMIT 1000)")


def rebase(db, at: Now | None = None) -> list[str]:
    """Work every deadline out again from its start and length; rewrite those whose wall time is off
    (the clock jumped, or was wrong when it was set), anchored in this boot.  Deadlines that have passed
    are dropped (their wall time then says so by any clock).  Returns the notes it made."""
    at = at or now()
    last = db.execute("SELECT wall, boot_id, boot FROM clock_seen WHERE id=1").fetchone()
    last = Now(*last) if last is not None else None
    notes = _jumped(last, at)
    for sql in _PENDING:  # only what still waits keeps a deadline
        db.execute(sql)
    for r in db.execute("SELECT * FROM deadlines WHERE kind != 'failed'").fetchall():
        row = dict(r)
        left = remaining(row, at, last)
        was = parse(row["due"])
        due = at.wall + left
        past = left <= 0 and was is not None and was <= at.wall + SLACK_S  # over, by every clock
        moved = not past and (was is None or abs(due - was) > SLACK_S)
        if moved:
            table, col, keycol, what = _WHERE[row["kind"]]
            db.execute(f"UPDATE {table} SET {col}=? WHERE {keycol}=?", (iso(due), row["key"]))
            notes.append(f"re-based: {what.format(key=row['key'])} {iso(due)}, not {row['due']}"
                         f" ({_span(left)} of its {_span(row['length'])} left)")
        if left <= 0:
            db.execute("DELETE FROM deadlines WHERE kind=? AND key=?", (row["kind"], row["key"]))
        elif row["boot_id"] != at.boot_id or moved:  # anchored in this boot from now on
            db.execute("UPDATE deadlines SET start=?, length=?, boot_id=?, boot=?, due=? WHERE kind=? AND key=?",
                       (at.wall, left, at.boot_id, at.boot, iso(due), row["kind"], row["key"]))
    for r in db.execute("SELECT * FROM deadlines WHERE kind = 'failed' AND boot_id != ?", (at.boot_id,)).fetchall():
        row = dict(r)  # a failure from an earlier boot: its start anchored in this one
        start = at.wall - elapsed(row, at)
        db.execute("UPDATE deadlines SET start=?, boot_id=?, boot=?, due=? WHERE kind=? AND key=?",
                   (start, at.boot_id, at.boot - (at.wall - start), iso(start), row["kind"], row["key"]))
    db.execute("INSERT OR REPLACE INTO clock_seen VALUES (1, ?, ?, ?)", (at.wall, at.boot_id, at.boot))
    for n in notes:
        db.execute("INSERT INTO clock_notes (at, text) VALUES (?, ?)", (iso(at.wall), n))
    if notes:
        db.execute("DELETE FROM clock_notes WHERE id NOT IN (SELECT id FROM clock_notes ORDER BY id DESC LIMIT ?)",
                   (MAX_NOTES,))
    return notes


def for_queue(db, at: Now | None = None) -> dict:
    """What the queue needs after ``rebase``: {("run", run id): when its deferral ends (epoch, this clock),
    ("failed", run id): seconds since that run failed}."""
    at = at or now()
    out = {}
    for r in db.execute("SELECT * FROM deadlines WHERE kind IN ('run', 'failed')"):
        row = dict(r)
        out[(row["kind"], row["key"])] = (elapsed(row, at) if row["kind"] == "failed"
                                          else at.wall + remaining(row, at))
    return out


def backoff_left(times: dict, run_id: str | None, failed_at: str | None, wall: float, wait: float) -> float:
    """Seconds a failed run's retry still waits: from the start kept for it, else from the entry's time
    (none when that time is suspect: a day or more ahead of this clock)."""
    since = times.get(("failed", run_id)) if run_id else None
    if since is None:
        t = parse(failed_at)
        if t is None or t > wall + AHEAD_S:
            return 0.0
        since = wall - t
    return max(0.0, wait - since)


def defer_ends(times: dict, run_id: str | None, until: str | None, wall: float) -> float | None:
    """When a deferral ends by this clock: the start and length kept for its run, else the entry's time
    unless that is further away than any deferral agentd sets (then it is suspect, and over)."""
    due = times.get(("run", run_id)) if run_id else None
    if due is not None:
        return due
    t = parse(until)
    return None if t is None or t > wall + MAX_WAIT_S else t


def _jumped(last: Now | None, at: Now) -> list[str]:
    """A note when the wall clock moved unlike the boot clock since the last wake in this boot."""
    if last is None or not last.boot_id or last.boot_id != at.boot_id:
        return []
    jump = (at.wall - last.wall) - (at.boot - last.boot)
    if abs(jump) <= SLACK_S:
        return []
    return [f"the clock jumped {'forward' if jump > 0 else 'back'} by {_span(abs(jump))} since the wake at "
            f"{iso(last.wall)} (this boot's own clock counted {_span(max(0.0, at.boot - last.boot))})"]


def notes(db, limit: int = 5) -> list[tuple[str, str]]:
    """The newest notes ``rebase`` left, (when, text), newest last."""
    rows = db.execute("SELECT at, text FROM clock_notes ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [(r[0], r[1]) for r in reversed(rows)]


def seen(db, wall: float | None = None) -> dict:
    """For `agentd status`: the newest re-basing notes, and recorded run times this clock can't believe."""
    wall = time.time() if wall is None else wall
    born = parse(db.execute("SELECT MIN(applied_at) FROM migrations").fetchone()[0])
    born = min(max(born or WRITTEN, WRITTEN), wall)  # made while the clock was behind, or ahead
    ahead = db.execute("SELECT COUNT(*), MAX(started_at) FROM runs WHERE started_at > ?",
                       (iso(wall + AHEAD_S),)).fetchone()
    before = db.execute("SELECT COUNT(*), MIN(started_at) FROM runs WHERE started_at < ?",
                        (iso(born - AHEAD_S),)).fetchone()
    return {"notes": [{"at": at, "text": text} for at, text in notes(db)], "now_before_written": wall < WRITTEN,
            "now": iso(wall),
            "runs_ahead": ahead[0], "latest_ahead": ahead[1], "runs_before_store": before[0],
            "earliest_before_store": before[1]}


def status_lines(info: dict) -> list[str]:
    out = []
    if info.get("now_before_written"):
        out.append(f"clock:     this host's clock says {safe(info['now'])}, before agentd was written: it is wrong "
                   "(no clock battery? NTP not synced yet?); deadlines count on the boot clock meanwhile")
    if info.get("runs_ahead"):
        out.append(f"clock:     {info['runs_ahead']} run(s) recorded as started more than a day ahead of this clock "
                   f"(latest {safe(info['latest_ahead'])}): the clock was wrong when they ran; nothing waits on them")
    if info.get("runs_before_store"):
        out.append(f"clock:     {info['runs_before_store']} run(s) recorded as started before agentd's store (or agentd) existed "
                   f"(earliest {safe(info['earliest_before_store'])}): the clock was wrong when they ran")
    for n in info.get("notes") or []:
        out.append(f"clock:     {safe(n['at'])}: {safe(n['text'], 300)}")
    return out


def _span(seconds: float) -> str:
    s = abs(seconds)
    for unit, n in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if s >= 2 * n if unit in ("years", "days") else s >= n:
            return f"{s / n:.1f} {unit}" if unit in ("years", "days") else f"{s / n:.0f} {unit}"
    return f"{s:.0f} s"
