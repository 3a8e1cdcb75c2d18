"""The fleet budget (docs/fleet.md#fleet-budget): today's spend of every host of a fleet against
``fleet_budget_usd`` from the fleet's config, ``fleet.yaml`` at the root of the fleet clone.

Each host records its own day in ``hosts/<host>.json`` in the clone at each sync (``fleet/hostfile.py``
writes it); this module only reads: the other hosts' files as the last pull left them (no git, no network,
no server) and this host's live figure from its store's ledger.  It sits with the daily budget (the queue
asks it through ``backends.agents_wait``), below the fleet's git: it reads plain files.

Another host's file is read with limits: at most ``MAX_HOST_FILE`` bytes, a regular file (never through a
link), JSON of the expected shape, every string cut; one that breaks them is left out with a warning that
names it.  So is a negative or absurd spend: a host can't hide the others' spend behind its own.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path

from agentd.agent.budget import utc_day
from agentd.config.worklogdir import WORKLOG_SUFFIX, is_fleet
from agentd.errors import ConfigError
from agentd.recordtype import Record
from agentd.times import next_utc_day

HOSTS_DIR = "hosts"  # hosts/<host>.json in the clone: each host's own record
CONFIG_FILE = "fleet.yaml"
CONFIG_KEYS = {"fleet_budget_usd": "the dollars all hosts of the fleet together may spend on agent runs per UTC day"}
MAX_HOST_FILE = 64 * 1024  # bytes of one host's file
MAX_HOSTS = 500  # host files read (in name order); more are left out with a warning
MAX_USD = 1e9  # a day's spend above it is no figure but a hostile file
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CUT = {"id": 100, "task": 100, "status": 40, "at": 40, "title": 200, "why": 300, "day": 10, "host": 64, "kind": 40}


# -- the fleet's config ---------------------------------------------------------------------------------
def read_config(worklog_dir) -> dict:
    """``fleet.yaml`` at the clone's root: {} when there is none.  Raises ConfigError naming the file (and the
    key and its line) for anything but a mapping of the known keys with good values."""
    from agentd.config.yamlread import read_yaml_file  # lazy: yaml only where a fleet config exists

    path = Path(worklog_dir) / CONFIG_FILE
    if not os.path.lexists(path):
        return {}
    if path.is_symlink():
        raise ConfigError(f"{path}: is a link; the fleet config must be a plain file")
    data, lines, problems = read_yaml_file(path, "fleet config")
    if problems:
        raise ConfigError(problems)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of keys ({', '.join(CONFIG_KEYS)}), not a {type(data).__name__}")
    out, problems = {}, []
    for key, value in data.items():
        where = f"{path}:{lines.get((str(key)[:200],), 1)}"
        if key not in CONFIG_KEYS:
            problems.append(f"{where}: unknown key {str(key)[:100]!r}; the fleet config may set: {', '.join(CONFIG_KEYS)}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0 <= value <= MAX_USD:
            problems.append(f"{where}: {key}: must be a number of dollars, 0 or more (got {str(value)[:60]!r})")
        else:
            out[key] = float(value)
    if problems:
        raise ConfigError(problems)
    return out


# -- the hosts' own files -------------------------------------------------------------------------------
def _cut(value, n: int) -> tuple[str, bool]:
    s = value if isinstance(value, str) else ("" if value is None else str(value))
    s = " ".join(s.split())
    return (s[:n], True) if len(s) > n else (s, False)


def _part(d, keys: tuple[str, ...]) -> dict | None:
    """A sub-record of strings, each cut (``cut`` true where one was)."""
    if not isinstance(d, dict):
        return None
    out, cut = {}, False
    for k in keys:
        out[k], c = _cut(d.get(k), CUT.get(k, 100))
        cut |= c
    if cut or d.get("cut") is True:
        out["cut"] = True
    return out


def _count(v) -> int:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**15 else 0


def normal(host: str, data) -> tuple[dict | None, str]:
    """A host's file as agentd shows and counts it (every string cut, figures checked), and a warning."""
    if not isinstance(data, dict):
        return None, "not a JSON object"
    if data.get("host") != host:
        return None, f"names host {_cut(data.get('host'), 64)[0]!r}, not {host!r}"
    spend, warn = data.get("spend") if isinstance(data.get("spend"), dict) else {}, ""
    usd = spend.get("usd", 0)
    if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not math.isfinite(usd) or not 0 <= usd <= MAX_USD:
        warn, usd = f"its spend {_cut(usd, 40)[0]!r} is no figure of dollars: left out of the fleet's sum", 0.0
    running = data.get("running") if isinstance(data.get("running"), list) else []
    out = {"host": host, "synced_at": _cut(data.get("synced_at"), 40)[0],
           "wake": _part(data.get("wake"), ("at", "kind")),
           "last_run": _part(data.get("last_run"), ("id", "task", "status", "at")),
           "running": [p for p in (_part(r, ("id", "task", "at")) for r in running[:5]) if p],
           "queue_top": _part(data.get("queue_top"), ("id", "title", "why")),
           "spend": {"day": _cut(spend.get("day"), 10)[0], "usd": float(usd),
                     "input_tokens": _count(spend.get("input_tokens")), "output_tokens": _count(spend.get("output_tokens"))}}
    return out, warn


def read_host_file(path: Path, host: str) -> tuple[dict | None, str]:
    """One host's file (None and why when it can't be used)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        return None, f"cannot read: {e.strerror or e}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        if st.st_size > MAX_HOST_FILE:
            return None, f"{st.st_size} bytes, more than the {MAX_HOST_FILE} a host's file may have"
        raw = os.read(fd, MAX_HOST_FILE + 1)
    except OSError as e:
        return None, f"cannot read: {e.strerror or e}"
    finally:
        os.close(fd)
    if len(raw) > MAX_HOST_FILE:
        return None, f"more than the {MAX_HOST_FILE} bytes a host's file may have"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        return None, f"not JSON ({str(e)[:100]})"
    return normal(host, data)


def read_hosts(worklog_dir, skip: str | None = None) -> tuple[dict[str, dict], list[str]]:
    """Every other host's file in the clone: host -> its record, and a warning for each one left out.  Only
    the fleet's hosts count, as for claims: those with a worklog in the clone (``<host>_worklog.txt``); a
    ``hosts/ghost.json`` of no such host is left out (it would stop every agent run of the fleet)."""
    d = Path(worklog_dir) / HOSTS_DIR
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return {}, []
    out, warnings = {}, []
    names = [n for n in names if n.endswith(".json") and not n.startswith(".")]
    if len(names) > MAX_HOSTS:
        warnings.append(f"{d}: {len(names)} host files; only the first {MAX_HOSTS} are read")
        names = names[:MAX_HOSTS]
    for name in names:
        host = name[:-len(".json")]
        if host == skip:
            continue
        if not HOST_NAME.fullmatch(host):
            warnings.append(f"{HOSTS_DIR}/{_cut(name, 80)[0]!r}: not a host's name: left out")
            continue
        worklog = Path(worklog_dir) / f"{host}{WORKLOG_SUFFIX}"
        if not worklog.is_file() or worklog.is_symlink():
            warnings.append(f"{HOSTS_DIR}/{name}: host {host!r} has no worklog in the fleet ({worklog.name}): "
                            "left out of the fleet's sum")
            continue
        rec, warn = read_host_file(d / name, host)
        if warn:
            warnings.append(f"{HOSTS_DIR}/{name}: {warn}" + ("" if rec else ": left out"))
        if rec:
            out[host] = rec
    return out, warnings


# -- the budget -------------------------------------------------------------------------------------------
class FleetSpend(Record):
    """Today's spend (UTC ``day``) of each host, this one's live; ``budget``: fleet_budget_usd (None: none set)."""
    day: str
    budget: float | None
    hosts: dict
    warnings: list

    @property
    def total(self) -> float:
        return sum(self.hosts.values())

    @property
    def spent(self) -> bool:
        return self.budget is not None and self.total >= self.budget

    def figures(self, most: int = 8) -> str:
        """"$1.02 of $1.00 today (thor $0.70, pod1 $0.32), UTC"."""
        top = sorted(self.hosts.items(), key=lambda kv: (-kv[1], kv[0]))
        parts = [f"{h} ${usd:.2f}" for h, usd in top[:most]] + ([f"{len(top) - most} more"] if len(top) > most else [])
        of = f" of ${self.budget:.2f}" if self.budget is not None else ""
        return f"${self.total:.2f}{of} today ({', '.join(parts)}), UTC"


def fleet_spend(cfg, store, now: float) -> FleetSpend | None:
    """The fleet's spend today, or None where the worklog dir is no fleet clone.  Raises ConfigError for a
    bad ``fleet.yaml``."""
    if not is_fleet(cfg.worklog_dir):
        return None
    conf = read_config(cfg.worklog_dir)
    day = utc_day(now)
    hosts = {cfg.host: float(store.ledger_day(day)[1]) if store is not None else 0.0}
    others, warnings = read_hosts(cfg.worklog_dir, skip=cfg.host)
    for host, rec in others.items():
        hosts[host] = rec["spend"]["usd"] if rec["spend"]["day"] == day else 0.0
    return FleetSpend(day, conf.get("fleet_budget_usd"), hosts, warnings)


def wait(cfg, store, now: float) -> tuple[None, str] | None:
    """(None, why) when the fleet's spend today reached fleet_budget_usd, or its config is bad (the budget
    can't be known: agent tasks wait until it is fixed); None otherwise."""
    try:
        got = fleet_spend(cfg, store, now)
    except ConfigError as e:
        return None, f"the fleet config is bad: {' '.join(str(e).split())[:500]}; agent tasks wait until it is fixed"
    if got is None or not got.spent:
        return None
    return None, (f"the fleet budget is spent: {got.figures()}; agent tasks wait until {next_utc_day(now)} "
                  "(fleet_budget_usd in fleet.yaml)")
