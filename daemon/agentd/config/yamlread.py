"""YAML as agentd reads it (config, task files, inline attrs): bounded in size, depth, values
(aliases counted as copies) and number length, each value with the line it was written on."""

from __future__ import annotations

import os
import stat

from agentd.lazyre import lazy


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
    import yaml  # lazy: yaml stays off the start-up path (tests/test_records.py)
    from yaml.error import MarkedYAMLError  # lazy: yaml stays off the start-up path (tests/test_records.py)

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
                self._aliased = True
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
            self._count, self._aliased = 0, False
            return super().compose_document()

        def _add(self, n: int, mark) -> None:
            self._count += n
            if self._count > MAX_YAML_NODES and not self._aliased:
                self._limit(f"too many values: more than {MAX_YAML_NODES}", mark)
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
    import yaml  # lazy: yaml stays off the start-up path (tests/test_records.py)

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
    import yaml  # lazy: yaml stays off the start-up path (tests/test_records.py)

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
