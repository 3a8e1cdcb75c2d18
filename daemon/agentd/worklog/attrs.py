"""A line's attrs: the trailing ``{key: value, ...}`` of a task or keyword line, their schema (shared
with task files) and reading them, without YAML for the plain ones (``fast_flow_mapping``)."""

from __future__ import annotations

from agentd.config.schema import Field, validate
from agentd.config.yamlread import MAX_NUMBER_CHARS, yaml_limited
from agentd.lazyre import lazy
from agentd.worklog.lineerror import LineError

PRIORITIES = ("critical", "high", "normal", "low")


def _expect(v) -> tuple[object, str | None]:
    """``expect:``: metric name -> condition, each read by ``metrics.gates`` (every problem, each naming
    its key; a map of more than ``gates.MAX_GATES`` keys is refused before any is read)."""
    # lazy: only a line with this attr needs the metrics grammar; keeps the queue's start-up free of it
    from agentd.metrics import gates

    _, problems = gates.parse_expect(v)
    if problems:
        return None, "; ".join(p.removeprefix("expect: ") for p in problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    return {str(k): c for k, c in v.items()}, None


def _every(v) -> tuple[object, str | None]:
    # lazy: only a line with this attr needs the metrics grammar; keeps the queue's start-up free of it
    from agentd.metrics import every

    try:
        every.seconds(v)
    except ValueError as e:
        return None, str(e).removeprefix("every: ")
    return v.strip(), None


def _metrics_file(v) -> tuple[object, str | None]:
    # lazy: only a line with this attr needs the metrics grammar; keeps the queue's start-up free of it
    from agentd.metrics.extract import attr_problem

    why = attr_problem(v)
    return (None, why.removeprefix("metrics: ")) if why else (v, None)


def _slurm(v) -> tuple[object, str | None]:
    from agentd.tasks import slurmspec  # lazy: only a line with this attr

    return slurmspec.check(v)


HOST_NAME = lazy(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_HOSTS = 100


def _hosts(v) -> tuple[object, str | None]:
    """``hosts:``: the fleet's hosts that may take a ``fleet_worklog.txt`` task, a list of host names."""
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        return None, "a list of host names, like [thor, pod1]"
    if len(v) > MAX_HOSTS:
        return None, f"at most {MAX_HOSTS} hosts, not {len(v)}"
    bad = [x for x in v if not isinstance(x, str) or not HOST_NAME.fullmatch(x) or x == "fleet"]
    if bad:
        return None, (f"{str(bad[0])[:80]!r} is no host name (letters, digits, '.', '_', '-', at most 64; "
                      "not 'fleet')")
    return list(dict.fromkeys(v)), None


def _window(v) -> tuple[object, str | None]:
    # lazy: only a line with this attr needs the metrics grammar; keeps the queue's start-up free of it
    from agentd.metrics import gates

    why = gates.window_problem(v)
    return (None, why.removeprefix("baseline_window: ")) if why else (v, None)

# The attrs of a line (inline ``{...}``) and of a YAML task file share this schema.
ATTR_FIELDS: dict[str, Field] = {
    "id": Field("str", None, "stable id; letters, digits, . _ : -"),
    "value": Field("float", None, "how much it is worth, 0-10", lo=0, hi=10),
    "certainty": Field("float", None, "how likely it succeeds, 0-1", lo=0, hi=1),
    "run": Field("str", None, "shell command: makes it a command task"),
    "gpu": Field("bool", None, "needs a GPU"),
    "network": Field("network", None, "agent tasks: the network (true), or only these hosts (through agentd's proxy)"),
    "limit_waits": Field("int", None, "agent tasks: usage-limit windows a run may wait through", lo=0, hi=1000),
    "repo": Field("path", None, "agent tasks: work in a new git worktree of this repository, on a branch of its own"),
    "cwd": Field("path", None, "command tasks: the directory it runs in (default: the worklog's; never an agent's)"),
    "after": Field("ids", None, "id or list of ids it depends on"),
    "minutes": Field("float", None, "estimated minutes", lo=0),
    "priority": Field("enum", None, "critical, high, normal or low", choices=PRIORITIES),
    "model": Field("strs", None, "model-bench: model id, local path, or a list of them"),
    "max_new_tokens": Field("int", None, "model-bench: tokens to generate", lo=1, hi=100_000),
    "dtype": Field("enum", None, "cuda-probe: matmul dtype", choices=("bf16", "fp16", "fp32")),
    "size": Field("int", None, "cuda-probe: matrix size", lo=16, hi=65536),
    "prompt": Field("str", None, "model-bench: prompt text"),
    "device": Field("enum", None, "model-bench: auto, cuda or cpu", choices=("auto", "cuda", "cpu")),
    "trust_remote_code": Field("bool", None, "model-bench: let transformers run the model's own code"),
    "expect": Field("checked", None, "QC gates: metric -> condition, like {tflops: \">= 100\"}", check=_expect),
    "metrics": Field("checked", None, "a JSON file of metrics the command writes (relative to its directory)",
                     check=_metrics_file),
    "baseline_window": Field("checked", None, "passing runs a gate's baseline is the median of (3..1000, 10)",
                             check=_window),
    "every": Field("checked", None, "a recurring task: run again this long after its last run (30m, 6h, 1d, 2w)",
                   check=_every),
    "accept_claimed": Field("bool", None, "gates may decide on metrics an agent only claimed"),
    "hosts": Field("checked", None, "fleet_worklog.txt tasks: only these hosts may take it, like [thor, pod1] "
                   "(docs/fleet.md#shared-directives)", check=_hosts),
    "slurm": Field("checked", None, "command and experiment tasks: submit to Slurm, like {partition: gpu, gpus: 1, "
                   "time: \"2:00:00\"} (docs/slurm.md)", check=_slurm),
}
FILE_FIELDS: dict[str, Field] = {
    **ATTR_FIELDS,
    "title": Field("str", None, "what to do", required=True),
    "kind": Field("enum", "task", "task, directive, blocker or experiment",
                  choices=("task", "directive", "blocker", "experiment")),
    "done": Field("bool", False, "already done"),
}

# attrs begun but never closed: '{key: ...' with no '}' after it
_OPEN_ATTRS = lazy(r"\{[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*:(?:[ \t]|$)[^}]*$")


def split_attrs(text: str) -> tuple[str, str | None]:
    """'title {a: 1}' -> ('title', '{a: 1}'); the attrs are a trailing balanced {...}."""
    t = text.rstrip()
    if not t.endswith("}"):
        return t, None
    i = t.rfind("{")
    if i != -1 and t.find("}", i) == len(t) - 1:  # no brace inside them: the last "{" opens them (the common case)
        return t[:i].rstrip(), t[i:]
    depth = 0
    for i in range(len(t) - 1, -1, -1):
        c = t[i]
        if c == "}":
            depth += 1
        elif c == "{":
            depth -= 1
            if depth == 0:
                return t[:i].rstrip(), t[i:]
    return t, None


def unclosed_attrs(title: str) -> str | None:
    """The text of attrs a line begins and never closes (``{value: 1, colour: red``), or None.
    A brace in a title in any other form (``fix {foo} parsing``, ``a { in JSON``) is left alone."""
    if "{" not in title:
        return None
    m = _OPEN_ATTRS.search(title)
    return None if m is None else m.group(0)


def parse_attrs(raw: str | None, where: str) -> dict:
    if raw is None:
        return {}
    data = fast_flow_mapping(raw)
    if data is not None:
        return _check_attrs(data, where)
    data, node, problems = yaml_limited(raw, "attrs")  # bounded: depth, aliases, number length
    keys = [k.value for k, _ in node.value] if not problems and isinstance(getattr(node, "value", None), list) \
        and all(isinstance(p, tuple) for p in node.value) else []
    dup = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if dup is not None:  # the last would win silently; for network or gpu that changes the sandbox
        raise LineError(f"attrs: {dup!r} is given twice; keep one")
    if problems:
        what = problems[0].split(": ", 1)[1]
        if what.startswith("not valid YAML: "):
            raise LineError(f"attrs {raw[:80]!r} are not a YAML flow mapping ({what[16:]})")
        raise LineError(f"attrs {raw[:80]!r}…: {what}" if len(raw) > 80 else f"attrs {raw!r}: {what}")
    if not isinstance(data, dict):
        raise LineError(f"attrs {raw[:80]!r} are not a mapping")
    return _check_attrs(data, where)


def _check_attrs(data: dict, where: str) -> dict:
    clean, problems = validate(data, ATTR_FIELDS, source=where, fill_defaults=False)
    if problems:
        raise LineError("; ".join(p.split(": ", 1)[1] for p in problems))
    return clean


_SIMPLE_KEY = lazy(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_SIMPLE = lazy(r"['\"\[\]{}#&*!|>%@`?]")


def _lift_quoted(inner: str) -> tuple[str, list[str]] | None:
    """``inner`` with each quoted value ('…' or "…", the whole value after ``key: ``) replaced by a
    placeholder (NUL and its number), and the values; None when a quote stands anywhere else,
    or a value is not one YAML reads literally (a backslash escape, a character that is not
    printable).  ``'it''s'`` is ``it's``, as in YAML."""
    if "\0" in inner:
        return None
    out: list = []
    values: list = []
    i, n = 0, len(inner)
    while i < n:
        q1, q2 = inner.find("'", i), inner.find('"', i)
        j = q1 if q2 == -1 or (q1 != -1 and q1 < q2) else q2
        if j == -1:
            out.append(inner[i:])
            break
        before = inner[i:j]
        key_end = before.rstrip(" ")
        if not key_end.endswith(":") or key_end == before:  # not the value of a key
            return None
        q = inner[j]
        if q == "'":
            pieces, k = [], j + 1
            while True:
                e = inner.find("'", k)
                if e == -1:
                    return None
                if inner.startswith("'", e + 1):  # '' is one quote
                    pieces.append(inner[k:e + 1])
                    k = e + 2
                    continue
                pieces.append(inner[k:e])
                break
            value = "".join(pieces)
        else:
            e = inner.find('"', j + 1)
            if e == -1:
                return None
            value = inner[j + 1:e]
            if "\\" in value:
                return None
        if value and not value.isprintable():
            return None
        after = inner[e + 1:].lstrip(" ")
        if after and after[0] != ",":
            return None
        out.append(f"{before}\0{len(values)}")
        values.append(value)
        i = e + 1
    return "".join(out), values


def fast_flow_mapping(raw: str) -> dict | None:
    """Parse '{a: 1, b: x y, c: 'quoted, anything'}' without yaml when it only holds plain
    scalars and quoted values without escapes.

    Returns None when the text needs the real YAML parser.  For the text it
    accepts, the result equals ``yaml.safe_load`` (checked by a property test).
    """
    inner = raw[1:-1]
    quoted: list = []
    if "'" in inner or '"' in inner:  # a quoted command is common: {run: "make test && make bench"}
        lifted = _lift_quoted(inner)
        if lifted is None:
            return None
        inner, quoted = lifted
    if _NOT_SIMPLE.search(inner) or "\t" in inner:
        return None
    out: dict = {}
    parts = inner.split(",")
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()  # one trailing comma is fine
    for part in parts:
        if not part.strip():
            return None
        key, sep, value = part.partition(":")
        key = key.strip()
        if (not sep or not _SIMPLE_KEY.match(key) or key in out or key.lower() in _YAML_SPECIAL
                or (value and not value[0].isspace())):
            return None
        value = value.strip()
        if value.startswith("\0"):
            if not value[1:].isdigit():
                return None
            out[key] = quoted[int(value[1:])]
            continue
        if ": " in value or value.endswith(":") or value.startswith(("-", "?")) and len(value) > 1 and value[1] == " ":
            return None
        if not value:
            out[key] = None
        elif len(value) > MAX_NUMBER_CHARS and value[-1:].isdigit():
            return None  # maybe a number too long to convert: the careful parser says so
        elif _PLAIN_INT.match(value):
            out[key] = int(value)
        elif _PLAIN_FLOAT.match(value):
            out[key] = float(value)
        elif value in _WORDS:
            out[key] = _WORDS[value]
        elif value[0] in "0123456789+-~=<:,?" or value.lower() in _YAML_SPECIAL or _DOT_NUM.match(value):
            return None
        else:
            out[key] = value
    return out


_YAML_SPECIAL = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_DOT_NUM = lazy(r"^\.(?:[0-9]|inf|Inf|INF|nan|NaN|NAN)")
_PLAIN_INT = lazy(r"^-?(?:0|[1-9][0-9]*)$")
_PLAIN_FLOAT = lazy(r"^-?(?:0|[1-9][0-9]*)\.[0-9]+$")
_WORDS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
          "yes": True, "Yes": True, "YES": True, "no": False, "No": False, "NO": False,
          "on": True, "On": True, "ON": True, "off": False, "Off": False, "OFF": False,
          "null": None, "Null": None, "NULL": None}
