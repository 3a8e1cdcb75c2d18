"""Run one experiment in a child process: ``python -m agentd.experiments`` with a JSON job on stdin.

The wake runs experiments here so that a wall-clock limit (and SIGTERM) can stop
a model load or a benchmark that hangs, the way it stops a command.  Each phase
is printed as ``PHASE <name>``; the result is the run directory's result.json.
"""

import json
import sys
from pathlib import Path

from agentd.experiments import run


def _phase(name: str) -> None:
    print(f"PHASE {name}", flush=True)


job = json.load(sys.stdin)
result = run(job["name"], job["attrs"], Path(job["run_dir"]), job["snapshot"], _phase)
sys.exit(0)
