"""One strict schema language for config files, task files and inline attrs.

A schema is a dict of ``Field``s.  ``validate`` checks a parsed mapping
against it and returns every problem at once, each naming the source file,
the line and the key path, e.g.::

    /home/me/.config/agentd/config.yaml:4: 'max_step': unknown key (did you mean 'max_steps'?)

YAML is parsed by ``yamlread.load_yaml``, which also records the line of every key,
so messages can point at the line a person has to fix.
"""

from __future__ import annotations

from agentd.lazyre import lazy

from agentd.recordtype import Record


class Field(Record):
    kind: str  # str int float bool path enum map ids strs time_range duration prices network count size checked
    default: object = None
    doc: str = ""
    choices: tuple = ()
    lo: float | None = None
    hi: float | None = None
    fields: dict | None = None  # sub-schema for kind == "map"
    required: bool = False
    # kind == "checked": ``check(value)`` -> (clean value, problem or None), for a field whose grammar
    # lives in a layer above config (an ``expect:`` gate, an ``every:`` interval: ``worklog.attrs``)
    check: object = None


_DURATION = lazy(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)\s*$")
_TIME_RANGE = lazy(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


def parse_duration(text: str) -> float:
    """'90s', '15m', '6h', '1d' -> seconds."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"not a duration like 30m, 6h or 1d: {text!r}")
    n, unit = float(m.group(1)), m.group(2)
    return n * {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}[unit]


def parse_time_range(text: str) -> tuple[int, int]:
    """'22:00-07:00' -> (start, end) in minutes after midnight."""
    m = _TIME_RANGE.match(str(text))
    if not m:
        raise ValueError(f"not a time range like 22:00-07:00: {text!r}")
    a, b, c, d = (int(x) for x in m.groups())
    return a * 60 + b, c * 60 + d


def _type_name(v: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", bytes: "binary data",
            list: "a list", dict: "a mapping", type(None): "null"}.get(type(v), type(v).__name__)


def _short(v: object, n: int = 80) -> str:
    """repr(v) for a message, cut to n characters (a value may be huge, or a list of lists)."""
    if isinstance(v, (list, dict)):
        if len(v) <= 8:
            r = repr(v)  # bounded: the loader caps how many values a document expands to
            if len(r) <= n + 2:
                return r
        return f"{_type_name(v)} of {len(v)}"
    if isinstance(v, str) and len(v) > n:
        return repr(v[:n]) + f"… ({len(v)} characters)"
    r = repr(v)
    return r if len(r) <= n + 2 else r[:n] + f"… ({len(r)} characters)"


_PRICE_KEYS = {"input", "output", "cache_read", "cache_write", "context"}


def _check(f: Field, v: object) -> tuple[object, str | None]:
    """Return (clean value, problem or None) for one scalar-ish field."""
    if v is None:
        if f.required:
            return None, "is required"
        return None, None
    k = f.kind
    if k == "path":
        if not isinstance(v, str) or not v.strip():
            return None, f"must be a path, not {_type_name(v)} {_short(v)}"
        return v, None
    if k == "str":
        if isinstance(v, (dict, list, bool, bytes, set)):
            return None, f"must be a string, not {_type_name(v)}"
        return str(v), None
    if k == "prices":  # model -> {input: X, output: Y[, cache_read, cache_write, context]}
        if not isinstance(v, dict):
            return None, f"must be a mapping of model -> {{input: X, output: Y}}, not {_type_name(v)}"
        bad = [f"{_short(model)}: not {_short(p)}" for model, p in v.items()
               if not (isinstance(p, dict) and {"input", "output"} <= set(p) <= _PRICE_KEYS
                       and all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < float("inf")
                               for x in p.values())
                       and (isinstance(p.get("context", 1), int) and p.get("context", 1) >= 1))]
        if bad:
            return None, ("each model must be {input: X, output: Y} in dollars per million tokens, numbers >= 0 "
                          "(optional cache_read, cache_write; context: its window in tokens); " + "; ".join(bad))
        return {str(m): dict(p) for m, p in v.items()}, None
    if k == "bool":
        if not isinstance(v, bool):
            return None, f"must be true or false, not {_type_name(v)} {_short(v)}"
        return v, None
    if k in ("int", "float"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (k == "int" and not isinstance(v, int)):
            want = "an integer" if k == "int" else "a number"
            return None, f"must be {want}, not {_type_name(v)} {_short(v)}"
        if v != v or v in (float("inf"), float("-inf")):
            return None, "must be a finite number"
        if f.lo is not None and v < f.lo or f.hi is not None and v > f.hi:
            return None, f"must be between {f.lo:g} and {f.hi:g}, not {_short(v)}" if f.hi is not None else f"must be at least {f.lo:g}, not {_short(v)}"
        return v, None
    if k == "enum":
        if v is False and "off" in f.choices:  # YAML 1.1 reads a bare `off` as false
            return "off", None
        if not isinstance(v, str) or v not in f.choices:
            import difflib  # lazy: difflib only for a misspelt value's hint; keeps queue's start-up

            close = difflib.get_close_matches(str(v), [str(c) for c in f.choices], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if isinstance(v, bool):  # YAML 1.1 reads yes/no/on/off/true/false as a yes or no
                return None, (f"must be one of {', '.join(f.choices)}, not a yes/no "
                              f"(YAML reads yes, no, on, off, true and false that way)")
            return None, f"must be one of {', '.join(f.choices)}, not {_short(v)}{hint}"
        return v, None
    if k == "ids":  # one id or a list of ids
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            return [str(v)], None
        if isinstance(v, list) and all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in v):
            return [str(x) for x in v], None
        return None, "must be an id or a list of ids"
    if k == "strs":  # one string or a list of strings
        if isinstance(v, str):
            return [v], None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return list(v), None
        return None, "must be a string or a list of strings"
    if k in ("count", "size"):  # resource limits: a number or size, or 0/none for no limit
        # lazy: only the resource-limit keys need it; keeps queue's start-up
        from agentd.config.limits import check_field

        return check_field(f, v)
    if k == "network":  # true, false, or a list of host names (the CLI agents' egress allowlist)
        return _network(v)
    if k == "checked":
        return f.check(v)
    if k in ("duration", "time_range"):  # kept as written, once its parse accepts it
        try:
            (parse_duration if k == "duration" else parse_time_range)(v)
        except ValueError as e:
            return None, str(e)
        return str(v).strip(), None
    raise AssertionError(f"unknown field kind {k}")


_HOST_LABEL = lazy(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_HOSTS = 100


def _network(v: object) -> tuple[object, str | None]:
    """``network``: true, false, or host names (``pypi.org`` also allows its subdomains; an IPv4 address
    only itself).  No schemes, ports, paths or wildcards."""
    if isinstance(v, bool):
        return v, None
    want = "must be true, false or a list of host names like [pypi.org, github.com]"
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        return None, f"{want}, not {_type_name(v)} {_short(v)}"
    if len(v) > MAX_HOSTS:
        return None, f"{want}, at most {MAX_HOSTS} of them, not {len(v)}"
    bad = [h for h in v if not _is_host(h)]
    if bad:
        return None, (f"{want} (no scheme, port, path or wildcard: a name allows its subdomains); "
                      f"not a host name: {', '.join(_short(h, 60) for h in bad[:5])}")
    return list(dict.fromkeys(h.lower().rstrip(".") for h in v)), None


def _is_host(h: object) -> bool:
    if not isinstance(h, str) or not h or len(h) > 253:
        return False
    h = h.lower().rstrip(".")
    labels = h.split(".")
    if all(x.isdigit() for x in labels):  # an IPv4 address, written whole
        return len(labels) == 4 and all(len(x) <= 3 and int(x) <= 255 for x in labels)
    return all(_HOST_LABEL.match(x) for x in labels) and not labels[-1].isdigit()


def in_line_order(problems: list[str], source: str) -> list[str]:
    """One file's problems (``<source>:<line>: ...``), from every check, in the order of their lines;
    those that name no line of it first, as they came."""
    def line(p: str) -> int:
        if not p.startswith(source + ":"):
            return 0
        n = p[len(source) + 1:].split(":", 1)[0]
        return int(n) if n.isdigit() else 0

    return sorted(problems, key=line)


def validate(data: object, fields: dict[str, Field], *, source: str, lines: dict | None = None,
             prefix: tuple = (), fill_defaults: bool = True) -> tuple[dict, list[str]]:
    """Check ``data`` against ``fields``.  Returns (clean, problems)."""
    lines = lines or {}
    problems: list[str] = []

    def where(path: tuple) -> str:
        line = lines.get(path) or lines.get(path[:-1]) or lines.get(())
        return f"{source}:{line}" if line else source

    if data is None:
        data = {}
    if not isinstance(data, dict):
        name = ".".join(prefix) or "top level"
        return {}, [f"{where(prefix)}: '{name}': must be a mapping of keys, not {_type_name(data)}"]
    clean: dict = {}
    for key, v in data.items():
        path = prefix + (str(key),)
        name = ".".join(path)
        f = fields.get(key) if isinstance(key, str) else None
        if f is None:
            import difflib  # lazy: difflib only for a misspelt key's hint; keeps queue's start-up

            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{where(path)}: '{name}': unknown key{hint}")
            continue
        if f.kind == "map":  # (an empty `budget:` is no settings of it: its defaults)
            sub, sub_problems = validate({} if v is None else v, f.fields or {}, source=source, lines=lines, prefix=path,
                                         fill_defaults=fill_defaults)
            problems += sub_problems
            clean[key] = sub
            continue
        value, problem = _check(f, v)
        if problem:
            problems.append(f"{where(path)}: '{name}': {problem}")
        else:
            clean[key] = f.default if value is None else value  # `key:` with no value means the default
    for key, f in fields.items():
        if key in clean:
            continue
        if f.required and key not in data:
            problems.append(f"{where(prefix)}: '{'.'.join(prefix + (key,))}': is required")
        elif fill_defaults:
            if f.kind == "map":
                clean[key], _ = validate({}, f.fields or {}, source=source, prefix=prefix + (key,))
            else:
                clean[key] = f.default
    return clean, problems
