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
from agentd.escapes import visible
from agentd.lazyre import lazy
from agentd.recordtype import Factory, Record

BEGIN = "=== agentd entry "
END = "=== agentd end "
QUOTE = "> "
MAX_BODY_CHARS = 16_000

# str.splitlines() boundaries, minus \n which we split on ourselves.
_BREAKS = lazy("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_SAFE_FIELD = lazy(r"[^A-Za-z0-9._:+\-]")

END_RE = lazy(rb"=== agentd end seq=(\d+) run=(\S+) ===\r?$")

STATUSES = statuses.ENTRY

# agentd numbers its entries below this (15 digits; exact as a float, so seq + 0.5 stays exact).
# A header with a larger seq is a bad line: reported, ignored, never adopted (store.next_seq).
MAX_SEQ = 10**15

# The begin marker's grammar, the one definition that ``Entry.render``, ``parse_header`` (``HEADER_RE``)
# and the parse's fast path (``markers.HEAD``) are built from.  Its fields in the order agentd writes
# them, each as (name in the marker, ``Header`` attribute, its type, the exact value pattern, the
# careful one).  The exact patterns are what agentd writes (``field`` makes a value printable ASCII;
# seq stays below MAX_SEQ); the careful ones also take what an edit may leave, and ``parse_header``
# checks the values.  After them: extras (``key=value``), then ``SIZES``.
_PRINTABLE = rb"[!-~]+"
GRAMMAR = (
    ("seq", "seq", int, rb"[1-9][0-9]{0,%d}" % (len(str(MAX_SEQ - 1)) - 1), rb"\d+"),
    ("run", "run_id", str, _PRINTABLE, rb"\S+"),
    ("task", "task_id", str, _PRINTABLE, rb"\S+"),
    ("status", "status", str, b"|".join(s.encode() for s in STATUSES), rb"[a-z]+"),
    ("at", "at", str, _PRINTABLE, rb"\S+"),
)
# Written last: the body lines plus the end marker, and their bytes (the fast path keeps only bytes).
SIZES = (("lines", rb"[0-9]{1,12}"), ("bytes", rb"[0-9]{1,12}"))
EXTRA = rb"[a-z_]+=\S+"  # the careful way reads the sizes as extras too, in any order


def header_pattern(exact: bool, grammar: tuple = GRAMMAR, sizes: tuple = SIZES) -> bytes:
    """The begin marker's regex, built from ``grammar``: ``exact``, the fast path's (exactly as
    agentd writes it, no extras, ending in its newline; a group per field, then one for the last
    size); else the careful one (a group per field, then one for the extras and sizes)."""
    head = BEGIN.encode() + b" ".join(b"%s=(%s)" % (name.encode(), sure if exact else loose)
                                      for name, _, _, sure, loose in grammar)
    if not exact:
        return head + rb"((?: %s)*) ===\r?$" % EXTRA
    *rest, (last, pattern) = sizes
    return head + b"".join(b" %s=%s" % (n.encode(), p) for n, p in rest) + b" %s=(%s) ===\n" % (last.encode(), pattern)


HEADER_RE = lazy(header_pattern(exact=False))


def inert_lines(text: str) -> list[str]:
    """Split text into body lines that are safe to write after the quote marker."""
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

    def as_latest(self) -> dict:
        """This entry as its task's latest (``State.latest``)."""
        return latest_entry(self.seq, self.status, self.run_id, self.at, self.extra.get("until"))


class Entry(Header):
    body: str = ""

    def render(self) -> str:
        body = self.body
        if len(body) > MAX_BODY_CHARS:
            body = body[:MAX_BODY_CHARS] + f"\n… ({len(self.body) - MAX_BODY_CHARS} more characters in the run directory)"
        lines = [QUOTE + line if line else ">" for line in inert_lines(body)]
        end = f"{END}seq={self.seq} run={field(self.run_id)} ==="
        rest = "\n".join(lines + [end]) + "\n"
        fields = [f"{name}={field(getattr(self, attr))}" for name, attr, *_ in GRAMMAR]
        fields += [f"{field(k)}={field(v)}" for k, v in self.extra.items()]
        counts = (len(lines) + 1, len(rest.encode("utf-8")))  # lines, bytes
        fields += [f"{name}={n}" for (name, _), n in zip(SIZES, counts)]
        return BEGIN + " ".join(fields) + " ===\n" + rest


def parse_header(line: bytes) -> Header | None:
    """A begin marker line as a Header, or None if it is not a whole, sane one."""
    m = HEADER_RE.match(line)
    if not m:
        return None
    g = m.groups()
    try:
        values = {attr: kind(v.decode("ascii")) for (_, attr, kind, _, _), v in zip(GRAMMAR, g)}
        extra = dict(kv.split("=", 1) for kv in g[-1].decode("ascii").split())
        h = Header(**values, extra=extra, **{name: int(extra.pop(name, "-1")) for name, _ in SIZES})
    except (UnicodeDecodeError, ValueError):
        return None
    return h if 0 < h.seq < MAX_SEQ and h.status in STATUSES else None


def latest_entry(seq: int, status: str, run: str, at: str, until: str | None = None) -> dict:
    """A task's latest entry as the parse keeps it (``State.latest``), its one shape: a dict (``marshal``
    keeps it in the parse index) of the header's ``seq``, ``status``, ``run`` and ``at``, and the
    ``until`` a deferred entry names (its extra), or None."""
    return {"seq": seq, "status": status, "run": run, "at": at, "until": until}


def end_marker(seq: int, run_id: str) -> bytes:
    return f"{END}seq={seq} run={run_id} ===".encode("ascii")
