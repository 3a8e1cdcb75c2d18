"""The names in the worklog dir, as every part of agentd spells them: a host's worklog, the fleet's shared
one, and whether the dir is a fleet clone (docs/fleet.md).  One definition, below every part that reads
them (the queue's shared tasks, the fleet's git, the fleet budget).
"""

from __future__ import annotations

from pathlib import Path

WORKLOG_SUFFIX = "_worklog.txt"  # a host's worklog is <host>_worklog.txt
FLEET_WORKLOG = "fleet_worklog.txt"  # the worklog every host of a fleet reads (issue 23, part 3): not a host's own


def is_fleet(worklog_dir) -> bool:
    """Whether ``worklog_dir`` is a fleet clone (it has a ``.git`` directory, not a link or a file)."""
    git_dir = Path(worklog_dir) / ".git"
    return git_dir.is_dir() and not git_dir.is_symlink()
