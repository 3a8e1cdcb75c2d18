"""The entries the worklog lost (an editor saved an old buffer over them), from agentd's copy in the
store: found by the parse cache's list of what a read saw, and by the store's latest entry per task
(``newer_in_store``: the store is the record of what ran), then folded into the read so the queue
counts them as there until ``settle.restore`` appends them again.
"""

from __future__ import annotations

import sqlite3

from agentd.worklog import entries
from agentd.worklog.index import Index
from agentd.worklog.parse import State


def folded_in(cfg, store, r):
    """The read, with agentd's own copies of the entries the worklog lost folded in.

    An editor that saved an old buffer over the file dropped them; the next wake appends
    them again (``settle.restore``).  Until then the queue counts them as if they
    were there, so ``queue``, ``status`` and ``wake --dry-run`` say what the wake will do.
    """
    # the answer is kept for this version of the worklog (as read, so it matches the index's list of
    # the entries that read saw) and of the store; a read that was not cached is not kept either
    stamp = f"{r.stamp}:{store.last_seq()}" if r.stamp else ""
    lost = Index(cfg.index_path).lost(cfg.worklog_path, stamp, lambda: store.entry_keys(str(cfg.worklog_path)))
    lost = lost + newer_in_store(store, str(cfg.worklog_path), r.state, set(lost))
    if not lost:
        return r, lost
    state = r.state.fork()
    for run_id, seq in sorted(lost, key=lambda k: k[1]):
        text = store.entry_text(run_id, seq) or ""
        h = entries.parse_header(text.partition("\n")[0].encode("utf-8", "replace"))
        if h is not None:
            state._entry(h)
    return type(r)(r.path, r.exists, state, r.size, r.mode, r.bytes_read), lost


def newer_in_store(store, worklog: str, state: State, known: set) -> list[tuple[str, int]]:
    """(run id, seq) of each task's latest entry in agentd's copy when the worklog has no entry that
    new for the task: the worklog lost it, whatever the parse cache could tell.

    The store is the record of what ran (an entry is kept there before it is appended), so a task
    whose finished run the worklog lost is never picked again: its entry counts as if it were there,
    and the wake appends it again once the file is still.  The parse cache's list of what was lost
    only answers for a read it recorded (an editor saving while the worklog is read, or a cache that
    can't be written, leaves it none); this asks the store, by seq, and needs no cache."""
    try:
        rows = store.latest_entries(worklog)
    except sqlite3.Error:
        return []
    latest = state.latest
    out = []
    for tid, run_id, seq in rows:
        have = latest.get(tid)
        if (have is None or have["seq"] < seq) and (run_id, seq) not in known:
            out.append((run_id, seq))
    return out
