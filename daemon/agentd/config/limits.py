"""The resource limits of the agent's tools as the config sets them: ``limit_pids``, ``limit_memory``,
``limit_cpu_weight`` (the schema's ``count`` and ``size`` kinds), each 0 or none for no limit.
``cgroups.py`` enforces them."""

from __future__ import annotations

import re

from agentd.recordtype import Record

AUTO_MEMORY_CAP = 8 * 2**30  # limit_memory: auto is half the RAM, at most this
MIN_MEMORY = 16 * 2**20
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.I)
_OFF = ("none", "off", "no", "false")


def check_field(f, v) -> tuple[object, str | None]:
    """schema kinds ``count`` (a whole number; 0 or none: no limit) and ``size`` (bytes, ``512M``,
    ``4G``, ``25%`` of the RAM, ``auto``; 0 or none: no limit): (clean value, problem or None)."""
    if v is False or (isinstance(v, str) and v.strip().lower() in _OFF):
        return 0, None
    if f.kind == "count":
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (f.hi is not None and v > f.hi):
            top = f" up to {f.hi:g}" if f.hi is not None else ""
            return None, f"must be a whole number{top}, or 0 or none for no limit, not {v!r}"
        if v and f.lo is not None and v < f.lo:
            return None, f"must be at least {f.lo:g} (or 0 or none for no limit), not {v!r}"
        return v, None
    try:
        n = parse_size(v, ram=1 << 40)
    except ValueError:
        return None, (f"must be a size like 512M, 4G or 25% (of the RAM), auto (half the RAM, at most 8G), "
                      f"or 0 or none for no limit, not {v!r}")
    if 0 < n < MIN_MEMORY:
        return None, f"must be at least 16M (or 0 or none for no limit), not {v!r}"
    return (v.strip() if isinstance(v, str) else v), None


def parse_size(v, ram: int | None = None) -> int:
    """Bytes of a ``size`` value (0: no limit).  ``ram``: MemTotal in bytes (read when needed)."""
    if v is None or v is False or (isinstance(v, str) and v.strip().lower() in _OFF):
        return 0
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if v < 0:
            raise ValueError(v)
        return int(v)
    if not isinstance(v, str):
        raise ValueError(v)
    s = v.strip().lower()
    if s == "auto" or s.endswith("%"):
        ram = ram if ram is not None else mem_total()
        if s == "auto":
            return min(ram // 2, AUTO_MEMORY_CAP)
        pct = float(s[:-1])
        if not 0 < pct <= 100:
            raise ValueError(v)
        return int(ram * pct / 100)
    m = _SIZE.match(s)
    if not m:
        raise ValueError(v)
    return int(float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_"))


def mem_total() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 2 * AUTO_MEMORY_CAP


class Limits(Record):
    pids: int = 0
    memory: int = 0
    cpu_weight: int = 0

    def wanted(self) -> dict[str, int]:
        return {k: v for k, v in (("pids", self.pids), ("memory", self.memory), ("cpu", self.cpu_weight)) if v}


def limits(cfg) -> Limits:
    v = cfg.values
    return Limits(pids=int(v.get("limit_pids") or 0), memory=parse_size(v.get("limit_memory")),
                  cpu_weight=int(v.get("limit_cpu_weight") or 0))


def size_text(n: int) -> str:
    for unit, p in (("G", 3), ("M", 2), ("K", 1)):
        if n >= 1024 ** p:
            return f"{n / 1024 ** p:.3g}{unit}"
    return f"{n}B"
