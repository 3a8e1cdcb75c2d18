"""``safe``: text from a model, a tool or a file, made fit for a person to read: what is shown is there.

Every text agentd prints or appends that it did not write itself goes through one function,
``visible`` (``safe`` adds the cut; ``json_safe`` writes the same characters as JSON escapes).
It writes as an escape (``\\xNN`` below U+0100, ``\\uNNNN``, ``\\UNNNNNNNN``) each character that
moves the cursor, drives the terminal, reorders or hides text:

* C0 controls but the tab, DEL and the C1 controls (U+0080-U+009F: U+009B is a CSI), the
  newline too (a text of many lines is given a line at a time);
* format characters (category Cf): the bidi embeddings, overrides and isolates (U+202A-U+202E,
  U+2066-U+2069), the marks U+200E, U+200F and U+061C, the zero-width space and joiners
  (U+200B-U+200D), the word joiner U+2060, U+FEFF, U+180E, the soft hyphen, the tags, ...;
* the line and paragraph separators U+2028 and U+2029, lone surrogates, unassigned code points
  (a newer terminal may give them a meaning this Python does not know);
* characters that draw nothing although they are letters or marks: the Hangul fillers U+115F,
  U+1160, U+3164 and U+FFA0, the combining grapheme joiner U+034F, the Khmer vowels U+17B4 and
  U+17B5, the Mongolian variation selectors U+180B-U+180F, the braille blank U+2800 and the
  variation selectors U+FE00-U+FE0F and U+E0100-U+E01EF (they can carry a hidden message; an
  emoji's U+FE0F shows as ``\\ufe0f`` too).

Kept as they are: the tab, private-use characters (``runlines`` uses them as stand-ins) and
other spaces.  With ``spaces=True`` (a command or a path a person approves) the tab and every
space but U+0020 are escaped too, and a run of 4 or more spaces is written ``\\x20{N}``, so no
run of blanks pushes the rest of a command out of sight.

A backslash stays as it is, so ``visible`` is idempotent: text made visible once (an approval's
``what`` in the entry that asks, then in ``status``, ``queue`` and ``show``) is shown the same when
a later layer makes it visible again, never as ``\\\\x1b``.  The price: a model can write the text
``\\u202e``, which reads like an escape.  That only ever shows a character that is not there; no
escape, literal or not, can hide one that is (docs/security.md, "What a person reads").
"""

from __future__ import annotations

from agentd.lazyre import lazy

# characters that are letters or marks but draw nothing (see the docstring)
_INVISIBLE = ("\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0"
              "\U000e0100-\U000e01ef")
_HIDDEN = lazy(f"[{_INVISIBLE}]")
_SPACE_RUN = lazy(" {4,}")
_ESCAPING = frozenset(("Cc", "Cf", "Cs", "Cn", "Zl", "Zp"))


def _escape(c: int) -> str:
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


class _Table(dict):
    """code point -> what it is written as (itself, or its escape): ``str.translate``'s table, each
    entry worked out when first met."""

    def __init__(self, spaces: bool, form=_escape):
        super().__init__()
        self.spaces, self.form = spaces, form

    def __missing__(self, c: int) -> str:
        import unicodedata  # lazy: only for a character not met before; keeps status' start-up

        if len(self) > 65536:  # (a text of every code point must not keep them all)
            self.clear()
        ch = chr(c)
        cat = unicodedata.category(ch)
        hidden = (cat in _ESCAPING and c != 9 or c == 9 and self.spaces or cat == "Zs" and c != 32 and self.spaces
                  or _HIDDEN.match(ch) is not None)
        out = self[c] = self.form(c) if hidden else ch
        return out


_PLAIN, _SPACES = _Table(False), _Table(True)


def _space_run(m) -> str:
    return f"\\x20{{{len(m.group())}}}"


def visible(text: str, spaces: bool = False) -> str:
    """``text`` with every character the module docstring names written as an escape (idempotent)."""
    if not spaces:
        if text.isprintable() and _HIDDEN.search(text) is None:
            return text
        return text.translate(_PLAIN)
    text = text.translate(_SPACES)
    return _SPACE_RUN.sub(_space_run, text) if "    " in text else text


def safe(text: str, limit: int = 0, spaces: bool = False) -> str:
    """``visible(text, spaces)``, cut to ``limit`` characters (0: never cut; never give one for an
    approval's ``what``)."""
    text = text if type(text) is str else str(text)
    if spaces or not (text.isascii() and text.isprintable()):  # printable ASCII holds nothing to escape
        text = visible(text, spaces)
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _json_escape(c: int) -> str:
    if c < 0x10000:
        return f"\\u{c:04x}"
    c -= 0x10000
    return f"\\u{0xd800 + (c >> 10):04x}\\u{0xdc00 + (c & 0x3ff):04x}"


_JSON = _Table(False, _json_escape)


def json_safe(line: str) -> str:
    """A JSON text (``json.dumps(..., ensure_ascii=False)``) with the characters ``visible`` escapes
    written as JSON escapes: it reads back the same, and prints as what is there."""
    if line.isascii() and "\x7f" not in line:  # (json.dumps has escaped the rest of ASCII's controls)
        return line
    return line.translate(_JSON)
