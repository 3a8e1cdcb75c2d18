"""A task's ``slurm:`` attr, ``{slurm: {partition: gpu, gpus: 1, time: "2:00:00"}}``: its strict schema
(every problem names its key) and the ``sbatch`` options it becomes.

Each value goes to ``sbatch`` as one argv element, ``--option=value``, never through a shell, so a value
can't add an option or a command (``runners/slurm.py``).  An empty map (``slurm: {}``) submits with the
cluster's defaults.
"""

from __future__ import annotations

import re

# key -> (sbatch option, kind, what it is); kind: "name" (a word Slurm names things with), "int", "time", "mem"
KEYS: dict[str, tuple[str, str, str]] = {
    "partition": ("--partition", "name", "the partition (queue) it is submitted to"),
    "account": ("--account", "name", "the account it is charged to"),
    "qos": ("--qos", "name", "the quality of service"),
    "gpus": ("--gpus", "int", "GPUs for the job"),
    "cpus": ("--cpus-per-task", "int", "CPUs for its one task"),
    "nodes": ("--nodes", "int", "nodes"),
    "mem": ("--mem", "mem", "memory per node: 16G, 500M, a number of MB"),
    "time": ("--time", "time", "its time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
    "constraint": ("--constraint", "name", "node features it needs (Slurm's --constraint)"),
}
MAX_LEN = 200
MAX_INT = 100_000
_TIME = re.compile(r"^(?:\d{1,7}|\d{1,7}:\d{1,2}|\d{1,7}:\d{1,2}:\d{1,2}|\d{1,4}-\d{1,2}(?::\d{1,2}){0,2})$")
_MEM = re.compile(r"^\d{1,9}[KMGT]?$")


def check(v) -> tuple[dict | None, str | None]:
    """(the clean map, None) or (None, every problem, each naming its key)."""
    if v is None:
        return {}, None
    if not isinstance(v, dict):
        return None, f"must be a map like {{partition: gpu, gpus: 1, time: \"2:00:00\"}}, not {type(v).__name__}"
    clean, problems = {}, []
    for key, value in v.items():
        if key not in KEYS:
            problems.append(f"{str(key)[:40]!r} is not a Slurm setting agentd knows (one of {', '.join(KEYS)})")
            continue
        why = _problem(KEYS[key][1], value)
        if why:
            problems.append(f"{key}: {why}")
        else:
            clean[key] = value if KEYS[key][1] == "int" else str(value).strip()
    return (None, "; ".join(problems)) if problems else (clean, None)


def _problem(kind: str, value) -> str | None:
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number, not {value!r:.40}"
        return None if 1 <= value <= MAX_INT else f"must be 1..{MAX_INT}, not {value}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"must be a string, not {type(value).__name__}"
    text = str(value).strip()
    if not text:
        return "is empty"
    if len(text) > MAX_LEN:
        return f"is longer than {MAX_LEN} characters"
    if not text.isprintable():
        return "holds a character that is not printable"
    if kind == "time" and not _TIME.match(text):
        return f"{text[:40]!r} is not a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"
    if kind == "mem" and not _MEM.match(text):
        return f"{text[:40]!r} is not a Slurm memory size (a number of MB, or with K, M, G or T)"
    return None


def options(spec: dict) -> list[str]:
    """The sbatch options of a clean spec, one argv element each (``--partition=gpu``)."""
    return [f"{KEYS[k][0]}={spec[k]}" for k in KEYS if k in spec]
