"""``safe``: worklog text made fit for a terminal (control characters escaped, long text cut)."""

from __future__ import annotations

from agentd.lazyre import lazy

# control characters but the tab (a newline too: a title with one would print a line of its own, one
# that looks like agentd's; a text of many lines is given a line at a time)
_UNSAFE = lazy("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(m) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 256 else f"\\u{c:04x}"


def safe(text: str, limit: int = 0) -> str:
    """Escape control characters so worklog text can't drive the terminal."""
    text = text if type(text) is str else str(text)
    if not (text.isascii() and text.isprintable()):  # printable ASCII holds nothing to escape
        text = _UNSAFE.sub(_escape, text)
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
