"""What is where in a fleet clone: the other hosts' worklogs, the attributes that merge them, the refs agentd
keeps of the remote (docs/fleet.md).  The file names themselves are ``config/worklogdir.py``'s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from agentd.config.worklogdir import FLEET_WORKLOG, WORKLOG_SUFFIX

ATTRIBUTES = "*_worklog.txt merge=union\n"
# ``.git/info/attributes`` (which outranks every ``.gitattributes``): no attribute a pushed file sets changes
# the bytes git writes or reads (no re-encoding, line-end conversion, filter, keyword expansion), no diff or
# merge driver it names counts; then the worklogs' union merge.  Written at init and join, re-asserted at
# each sync (a clone made before it).
GUARD = ("* -text -ident -filter -export-subst !eol !working-tree-encoding !diff !merge !crlf\n" + ATTRIBUTES)
SEEN = "refs/agentd/remote"  # the remote's head as agentd last saw it: a new head must descend from it
FETCHED = "refs/agentd/fetched"  # what the last fetch brought


def host_of(path: str) -> str | None:
    """The host whose worklog ``path`` (relative to the clone) is, or None (not a worklog; the fleet's)."""
    if "/" in path or not path.endswith(WORKLOG_SUFFIX) or path == FLEET_WORKLOG:
        return None
    return path[:-len(WORKLOG_SUFFIX)] or None


def other_worklogs(cfg) -> dict[str, Path]:
    """The other hosts' worklogs in the clone: host -> path (regular files only; agentd reads them through
    ``worklog.read``, with the limits of its own)."""
    out = {}
    try:
        names = sorted(os.listdir(cfg.worklog_dir))
    except OSError:
        return out
    for name in names:
        host = host_of(name)
        p = cfg.worklog_dir / name
        if host and name != cfg.worklog_path.name and p.is_file() and not p.is_symlink():
            out[host] = p
    return out


def redacted_url(url: str) -> str:
    """A remote's URL without a user's password or token in it (``https://user:tok@host`` -> ``https://***@host``)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1***@", url.strip(), flags=re.I)


def guard_attributes(dir: Path) -> None:
    """``.git/info/attributes`` as ``GUARD`` says (rewritten only when it differs)."""
    info = dir / ".git" / "info"
    info.mkdir(exist_ok=True)
    p = info / "attributes"
    try:
        if p.read_text(encoding="utf-8", errors="replace") == GUARD:
            return
    except OSError:
        pass
    if p.is_symlink():
        p.unlink()
    p.write_text(GUARD, encoding="utf-8")
