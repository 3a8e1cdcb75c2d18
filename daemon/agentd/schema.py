"""One strict schema language for config files, task files and inline attrs.

A schema is a dict of ``Field``s.  ``validate`` checks a parsed mapping
against it and returns every problem at once, each naming the source file,
the line and the key path, e.g.::

    /home/me/.config/agentd/config.yaml:4: 'max_step': unknown key (did you mean 'max_steps'?)

YAML is parsed by ``load_yaml`` which also records the line of every key,
so messages can point at the line a person has to fix.
"""

from __future__ import annotations

from agentd.lazyre import lazy

from agentd.recordtype import Record


class Field(Record):
    kind: str  # str int float bool path enum map ids strs time_range duration prices
    default: object = None
    doc: str = ""
    choices: tuple = ()
    lo: float | None = None
    hi: float | None = None
    fields: dict | None = None  # sub-schema for kind == "map"
    required: bool = False


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
            import difflib

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
    if k == "duration":
        try:
            parse_duration(v)
        except ValueError as e:
            return None, str(e)
        return str(v).strip(), None
    if k == "time_range":
        try:
            parse_time_range(v)
        except ValueError as e:
            return None, str(e)
        return str(v).strip(), None
    raise AssertionError(f"unknown field kind {k}")


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
            import difflib

            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"{where(path)}: '{name}': unknown key{hint}")
            continue
        if f.kind == "map" and v is not None:
            sub, sub_problems = validate(v, f.fields or {}, source=source, lines=lines, prefix=path,
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


# Limits for every YAML agentd reads (config, task files, inline attrs): a file or a line
# is refused with a message naming it, never loaded into a hang or a traceback.
MAX_YAML_BYTES = 1 << 20  # a config or task file
MAX_YAML_DEPTH = 32  # nested mappings and lists
MAX_YAML_NODES = 20_000  # values, counting each use of an alias as a copy (an alias bomb has billions)
MAX_NUMBER_CHARS = 100  # a number written with more characters is refused, not converted
MAX_SCALAR_CHARS = 256 * 1024


def _limited_loader():
    """A SafeLoader that checks depth, alias expansion and scalar size while it composes.

    PyYAML composes an alias as a reference to the anchored node, so loading a bomb is
    cheap; what explodes is any walk over the result.  Each node's expanded size (an alias
    counting as the whole anchored node) is summed as it is composed, and composing stops
    at the first node past a limit, with that node's line.
    """
    import yaml
    from yaml.error import MarkedYAMLError

    class LimitError(MarkedYAMLError):
        pass

    class Loader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self._depth = 0

        def _limit(self, problem: str, mark):
            raise LimitError(None, None, problem, mark)

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                node = super().compose_node(parent, index)
                if not hasattr(node, "_agentd_size"):  # an alias inside its own anchor: a loop
                    self._limit(f"the alias *{event.anchor} is used inside its own anchor (a loop)",
                                event.start_mark)
                self._add(node._agentd_size, event.start_mark)
                return node
            self._depth += 1
            if self._depth > MAX_YAML_DEPTH:
                self._limit(f"nested too deep (more than {MAX_YAML_DEPTH} levels)", self.peek_event().start_mark)
            try:
                before = self._count
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            if isinstance(node, yaml.ScalarNode):
                self._add(1, node.start_mark)
                self._check_scalar(node)
            else:
                self._add(1, node.start_mark)
            node._agentd_size = self._count - before
            return node

        def compose_document(self):
            self._count = 0
            return super().compose_document()

        def _add(self, n: int, mark) -> None:
            self._count += n
            if self._count > MAX_YAML_NODES:
                self._limit(f"too many values: aliases (*name) expand it past {MAX_YAML_NODES} values "
                            "(an alias bomb?); write the values out, or use fewer aliases", mark)

        def _check_scalar(self, node) -> None:
            v = node.value
            if len(v) > MAX_SCALAR_CHARS:
                self._limit(f"a value {len(v)} characters long; at most {MAX_SCALAR_CHARS}", node.start_mark)
            if len(v) > MAX_NUMBER_CHARS and node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
                self._limit(f"a number {len(v)} digits long; at most {MAX_NUMBER_CHARS}", node.start_mark)

    return Loader, LimitError


_LOADER: tuple | None = None


def yaml_limited(text: str, source: str) -> tuple[object, object, list[str]]:
    """Parse YAML text within the limits above: (data, composed node, problems)."""
    global _LOADER
    import yaml

    if len(text) > MAX_YAML_BYTES:
        return None, None, [f"{source}: {len(text.encode('utf-8', 'replace'))} bytes; a YAML file may have at "
                            f"most {MAX_YAML_BYTES} bytes"]
    if _LOADER is None:
        _LOADER = _limited_loader()
    loader_cls, limit_error = _LOADER
    loader = None
    try:
        loader = loader_cls(text)  # the reader already refuses control characters here
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except limit_error as e:
        return None, None, [f"{source}:{e.problem_mark.line + 1}: {e.problem}"]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        return None, None, [f"{source}{line}: not valid YAML: {what}"]
    except (ValueError, TypeError, RecursionError, MemoryError) as e:  # what a constructor may still raise
        return None, None, [f"{source}: not valid YAML: {type(e).__name__}: {str(e)[:200]}"]
    finally:
        if loader is not None:
            loader.dispose()
    return data, node, []


def load_yaml(text: str, source: str) -> tuple[object, dict, list[str]]:
    """Parse YAML text (within ``yaml_limited``'s limits); return (data, {key path: line}, problems)."""
    import yaml

    data, node, problems = yaml_limited(text, source)
    if problems:
        return None, {}, problems
    lines: dict = {(): 1}

    def walk(n, path):  # bounded: depth and expanded size were checked while composing
        if isinstance(n, yaml.MappingNode):
            seen: dict = {}
            for k, sub in n.value:
                p = path + (str(k.value)[:200],)
                if p in seen:
                    problems.append(f"{source}:{k.start_mark.line + 1}: '{'.'.join(p)}': given twice (first on "
                                    f"line {seen[p]}); keep one")
                seen[p] = k.start_mark.line + 1
                lines[p] = k.start_mark.line + 1
                walk(sub, p)
        elif isinstance(n, yaml.SequenceNode):
            for i, sub in enumerate(n.value):
                p = path + (str(i),)
                lines[p] = sub.start_mark.line + 1
                walk(sub, p)

    if node is not None:
        walk(node, ())
    return data, lines, problems


def read_yaml_file(path, what: str = "file") -> tuple[object, dict, list[str]]:
    """Read and parse one YAML file (config or task file), refusing what is not a regular file
    (a directory, a FIFO that would block, a device) and reading at most ``MAX_YAML_BYTES``+1."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        return None, {}, [f"{path}: is a directory, not a {what}"]
    except OSError as e:
        return None, {}, [f"{path}: cannot read: {e.strerror}"]
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return None, {}, [f"{path}: is a directory, not a {what}"]
        if not stat.S_ISREG(st.st_mode):
            return None, {}, [f"{path}: is not a regular file (a FIFO, socket or device); the {what} must be one"]
        if st.st_size > MAX_YAML_BYTES:
            return None, {}, [f"{path}: {st.st_size} bytes; a YAML file may have at most {MAX_YAML_BYTES} bytes"]
        chunks, left = [], MAX_YAML_BYTES + 1
        while left > 0:
            b = os.read(fd, left)
            if not b:
                break
            chunks.append(b)
            left -= len(b)
    except OSError as e:
        return None, {}, [f"{path}: cannot read: {e.strerror}"]
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > MAX_YAML_BYTES:
        return None, {}, [f"{path}: more than {MAX_YAML_BYTES} bytes; a YAML file may have at most that"]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        return None, {}, [f"{path}:{line}: not valid UTF-8 (byte {e.start + 1})"]
    return load_yaml(text, str(path))


_INT = lazy(r"^[-+]?\d+$")
_FLOAT = lazy(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def yaml_scalar(text: str) -> object:
    """Read an environment value as YAML does, importing yaml only when needed."""
    t = text.strip()
    low = t.lower()
    if low in ("", "~", "null"):
        return None
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if len(t) > MAX_NUMBER_CHARS and (_INT.match(t) or _FLOAT.match(t)):
        return text  # the schema then says it must be a number; int() of 5000 digits raises
    if _INT.match(t):
        return int(t)
    if _FLOAT.match(t):
        return float(t)
    if t[0] in "{[!&*'\"|>%@`" or ": " in t or " #" in t:
        data, _, problems = yaml_limited(t, "value")
        return text if problems else data
    return text
