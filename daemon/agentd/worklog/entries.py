"""agentd's own worklog entries: rendering them inert, and reading their markers.

An entry is a fenced block that agentd appends::

    === agentd entry seq=12 run=r20261122-124501-3f2a task=bench-qwen status=done at=2026-11-22T12:45:09Z lines=4 bytes=187 ===
    > **done** · command `./bench.sh` · exit 0 · 41.2 s
    > tokens/s 35.1, peak memory 1.2 GiB
    > full output: ~/.local/state/agentd/runs/r20261122-124501-3f2a/
    === agentd end seq=12 run=r20261122-124501-3f2a ===

Every body line starts with ``> ``, so no reader that splits lines (grep,
``str.splitlines()``, an editor) ever sees a body line that begins with a
keyword or a checkbox.  Every Unicode line break in the text becomes a real
newline followed by ``> ``; the other characters ``escapes.visible`` names (control characters,
bidi overrides, zero-width and other invisible characters) are written as its escapes
(``\\xNN``, ``\\uNNNN``), so an editor shows no terminal or bidi trick in agentd's entries.
``lines`` and ``bytes`` count the body plus the end marker, which lets the
reader skip a whole entry at once and tell a torn one from a whole one.
"""

from __future__ import annotations

from agentd import statuses
from agentd.lazyre import lazy

from agentd.recordtype import Factory, Record

BEGIN = "=== agentd entry "
END = "=== agentd end "
QUOTE = "> "
MAX_BODY_CHARS = 16_000

# str.splitlines() boundaries, minus \n which we split on ourselves.
_BREAKS = lazy("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_SAFE_FIELD = lazy(r"[^A-Za-z0-9._:+\-]")

HEADER_RE = lazy(
    rb"=== agentd entry seq=(\d+) run=(\S+) task=(\S+) status=([a-z]+) at=(\S+)"
    rb"((?: [a-z_]+=\S+)*) ===\r?$")
END_RE = lazy(rb"=== agentd end seq=(\d+) run=(\S+) ===\r?$")

STATUSES = statuses.ENTRY


def inert_lines(text: str) -> list[str]:
    """Split text into body lines that are safe to write after the quote marker."""
    from agentd.escapes import visible

    return [visible(line) for line in _BREAKS.sub("\n", text).split("\n")]


def field(value: str) -> str:
    """Make a value safe for the space-separated header."""
    return _SAFE_FIELD.sub("_", str(value))[:120] or "-"


class Header(Record):
    """An entry's begin marker: what agentd writes (``Entry``) and what every reader gets back."""
    seq: int
    run_id: str
    task_id: str
    status: str
    at: str
    extra: dict = Factory(dict)  # e.g. {"until": ISO, "restored": "1"}
    lines: int = -1  # body lines plus the end marker; -1 when a marker does not say
    bytes: int = -1


class Entry(Header):
    body: str = ""

    def render(self) -> str:
        body = self.body
        if len(body) > MAX_BODY_CHARS:
            body = body[:MAX_BODY_CHARS] + f"\n… ({len(self.body) - MAX_BODY_CHARS} more characters in the run directory)"
        lines = [QUOTE + line if line else ">" for line in inert_lines(body)]
        end = f"{END}seq={self.seq} run={field(self.run_id)} ==="
        rest = "\n".join(lines + [end]) + "\n"
        extras = "".join(f" {field(k)}={field(v)}" for k, v in self.extra.items())
        header = (f"{BEGIN}seq={self.seq} run={field(self.run_id)} task={field(self.task_id)} "
                  f"status={self.status} at={field(self.at)}{extras} "
                  f"lines={len(lines) + 1} bytes={len(rest.encode('utf-8'))} ===")
        return header + "\n" + rest


# agentd numbers its entries below this (15 digits; exact as a float, so seq + 0.5 stays exact).
# A header with a larger seq is a bad line: reported, ignored, never adopted (store.next_seq).
MAX_SEQ = 10**15


def parse_header(line: bytes) -> Header | None:
    """A begin marker line as a Header, or None if it is not a whole, sane one."""
    m = HEADER_RE.match(line)
    if not m:
        return None
    try:
        extra = dict(kv.split("=", 1) for kv in m.group(6).decode("ascii").split())
        h = Header(int(m.group(1)), m.group(2).decode("ascii"), m.group(3).decode("ascii"),
                   m.group(4).decode("ascii"), m.group(5).decode("ascii"), extra,
                   int(extra.pop("lines", "-1")), int(extra.pop("bytes", "-1")))
    except (UnicodeDecodeError, ValueError):
        return None
    return h if 0 < h.seq < MAX_SEQ and h.status in STATUSES else None


def end_marker(seq: int, run_id: str) -> bytes:
    return f"{END}seq={seq} run={run_id} ===".encode("ascii")
