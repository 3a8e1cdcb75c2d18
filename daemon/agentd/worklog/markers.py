"""agentd's entry markers in a worklog's bytes: finding whole entries without reading their bodies,
and what a line that only looks like a marker is (``parse`` reads the rest)."""

from __future__ import annotations

from agentd import statuses
from agentd.worklog import entries
from agentd.lazyre import lazy
from agentd.worklog.lines import FIRST_BYTES

BEGIN = entries.BEGIN.encode()
BLEN = len(BEGIN)
NL_BEGIN = b"\n" + BEGIN
END = entries.END.encode()
# A begin marker exactly as agentd writes it (no extras), built from entries.GRAMMAR; anything else
# goes the careful way (entries.parse_header).  Its groups: the grammar's fields, then the bytes.
HEAD = lazy(entries.header_pattern(exact=True))
FIELDS = len(entries.GRAMMAR) + 1
SEQ, RUN, TASK, STATUS, AT = (next(i for i, f in enumerate(entries.GRAMMAR) if f[0] == name)
                              for name in ("seq", "run", "task", "status", "at"))
BYTES = FIELDS - 1
END_SEQ, END_RUN, END_CLOSE = END + b"seq=", b" run=", b" ===\n"
ATTEMPTS = frozenset(s.encode() for s in statuses.ATTEMPTS)  # attempts that did not finish
BOM = b"\xef\xbb\xbf"


def suspects(parts: list[bytes]) -> dict[int, tuple[str, int]]:
    """Lines right above an orphan end marker's quoted lines: maybe a cut-off entry start.

    Maps the line's index to the (run, seq) of that end marker.
    """
    out = {}
    for i, raw in enumerate(parts):
        m = entries.END_RE.match(raw) if raw.startswith(END) else None
        if m:
            j = i - 1
            while j >= 0 and parts[j].startswith(b">"):
                j -= 1
            if j >= 0:
                out[j] = (m.group(2).decode("ascii", "replace"), int(m.group(1)))
    return out


SEQ_FIELD = lazy(rb"=== agentd entry seq=([0-9]+) ")


def damaged(header: bytes) -> str:
    """Why a begin marker line was not read: a seq out of agentd's range, or damage."""
    m = SEQ_FIELD.match(header)
    if m and (len(m.group(1)) > 15 or not 0 < int(m.group(1)) < entries.MAX_SEQ):
        seq = m.group(1).decode()
        seq = seq if len(seq) <= 20 else f"{seq[:12]}… ({len(seq)} digits)"
        return (f"damaged agentd entry marker: seq={seq} is out of agentd's range (1 to {entries.MAX_SEQ - 1}); "
                "the entry is ignored")
    return "damaged agentd entry marker; the entry is ignored"


def hold_back(data: bytes, cut: int) -> int:
    """Where a feed that is not final should stop, at or before ``cut``.

    A person's line followed only by quoted ``>`` lines up to ``cut`` may be the
    cut-off start of an entry whose end marker comes later (see ``suspects``), so
    it is left for the next feed, which then sees all of it.
    """
    k = cut
    while k > 0:
        s = data.rfind(b"\n", 0, k - 1) + 1  # the start of the line that ends at k
        if not data.startswith(b">", s):
            first = data[s + 3:s + 4] if data.startswith(BOM, s) else data[s:s + 1]
            return s if first and first[0] in FIRST_BYTES else k  # only a line that could be read waits
        k = s
    return k


def scan(data: bytes, pos: int, n: int, heads: list, regions: list) -> int:
    """Walk data[pos:n] over whole entries exactly as agentd writes them (no extra
    fields) and the human regions between them, without looking inside a body.

    Appends each entry's header fields (``HEAD``'s ``FIELDS`` groups) to the flat list
    ``heads`` and each human region as (len(heads) before it, start, end) to ``regions``.  Returns where
    it stopped: ``n``, or the start of an entry it cannot take whole in one step.
    """
    find, match, add = data.find, HEAD.match, heads.extend
    while pos < n:
        m = match(data, pos, n)
        if m is None:
            if data.startswith(BEGIN, pos):
                return pos
            j = find(NL_BEGIN, pos, n)
            nxt = n if j == -1 else j + 1
            regions.append((len(heads), pos, nxt))
            pos = nxt
            continue
        g = m.groups()
        body = m.end()
        stop = body + int(g[BYTES])
        endm = b"".join((END_SEQ, g[SEQ], END_RUN, g[RUN], END_CLOSE))
        if stop > n or stop - len(endm) < body or data[stop - len(endm):stop] != endm:
            return pos
        add(g)
        pos = stop
    return pos
