"""When agentd first saw each task and each DONE/CANCEL/RETRY line (the store's ``first_seen``).

A directive's score grows from the time it was first seen, and a DONE/CANCEL/RETRY line first seen
after entries were written counts as newer than them (``taskstate.first_sight``).  Every task's
first sight is recorded, but a worklog of a million tasks must not cost a million lookups or writes
per `queue`: the store remembers which version of the worklog's task table (its parse index token)
it has recorded every id of, so only the tasks added since are written, and only the times that
matter now are looked up (directives, the lines, the tasks the lines name).
"""

from __future__ import annotations

from itertools import chain

from agentd.queue.taskstate import command_ids, first_sight, worklog_scope
from agentd.times import iso


def sight(cfg, store, state, defs: list, now: float) -> tuple[dict, dict]:
    """Record what is seen for the first time now, and answer (first seen: directive id -> when;
    cmd_seen: each DONE/CANCEL/RETRY line's key (``command_ids``) -> (when, seq))."""
    scope = worklog_scope(cfg.worklog_path)
    names = command_ids(state, scope)
    table = state.tasks
    directives = ([table.ids[i] for i in table.special if table.kinds[i] == "directive"]
                  + [d.id for d in defs if d.kind == "directive"])
    wl = f"wl:{scope}"
    recorded, token = store.tasks_seen(scope), table.token
    known = token is not None and recorded == token  # every id of the index's copy of the table is recorded
    before = store.seen([wl, *names.values(), *("cmd:" + n.split(":", 2)[2] for n in names.values()),
                         *(key[0] for key in names), *directives, *(d.id for d in defs),
                         *(table.changed if known else ())])
    fresh = wl not in before and not store.seen_legacy()
    when, seqs = first_sight(names, before, fresh, state.max_seq, now,
                             lambda at: store.last_seq_by(str(cfg.worklog_path), iso(at)))
    new = [(name, when[name], seqs[name]) for name in names.values() if name not in before]
    new += [(tid, now, None) for tid in (wl, *(d.id for d in defs)) if tid not in before]
    if known:  # only the tail the index keeps apart may be new: a few lines, looked up above
        new += [(tid, now, None) for tid in dict.fromkeys(table.changed) if tid not in before]
        if new:  # (a write only when something is seen for the first time)
            store.record_seen(new)
    else:
        if token is not None and table.parent is not None and recorded == table.parent[0] and recorded:
            ids = chain(table.parent[1], table.changed)  # recorded up to the copy this read grew from
        else:
            ids = table.ids
        store.record_seen(chain(new, ((tid, now, None) for tid in ids)), scope, token)
    first_seen = {tid: before[tid][0] if tid in before else now for tid in directives}
    cmd_seen = {key: before.get(name) or (when[name], seqs[name]) for key, name in names.items()}
    return first_seen, cmd_seen
