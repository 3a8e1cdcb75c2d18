"""``Record``: a small stand-in for ``@dataclass`` on the CLI's start-up path.

Importing and applying ``dataclasses`` costs ~30 ms per process (it pulls in
``inspect`` and generates code with ``exec``), more than Python's own start-up.
A Record subclass lists its fields as annotations, with plain defaults or
``Factory(list)`` for mutable ones (a ``ClassVar[...]`` annotation is a class constant,
not a field); it gets ``__init__``, ``__eq__``, ``__repr__`` and ``to_dict()`` (what
``dataclasses.asdict`` gives).  It is agentd's one record mechanism: no module imports
``dataclasses`` (tests/test_records.py).
"""

from __future__ import annotations


class Factory:
    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


_MISSING = object()


class Record:
    _fields: tuple = ()
    _defaults: dict = {}
    _template: dict = {}  # every field in order: its default, the Factory, or _MISSING
    _special: tuple = ()  # the fields whose template is a Factory or _MISSING

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        names: list = []
        defaults: dict = {}
        for klass in reversed(cls.__mro__):
            for name, kind in klass.__dict__.get("__annotations__", {}).items():
                if name.startswith("_") or name in names or _classvar(kind):
                    continue
                names.append(name)
            for name in names:
                if name in klass.__dict__:
                    defaults[name] = klass.__dict__[name]
        cls._fields, cls._defaults = tuple(names), defaults
        cls._template = {n: defaults.get(n, _MISSING) for n in names}
        cls._special = tuple(n for n, d in cls._template.items() if d is _MISSING or isinstance(d, Factory))

    def __init__(self, *args, **kw):
        # {**template, **kw} keeps the fields in order and overwrites the defaults given; only the
        # fields without a plain default are looked at one by one (records are made per task).
        fields = self._fields
        if args:
            if len(args) > len(fields):
                raise TypeError(f"{type(self).__name__} takes at most {len(fields)} positional arguments")
            given = dict(zip(fields, args))
            if not given.keys().isdisjoint(kw):
                raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(given.keys() & kw.keys())}")
            kw = {**given, **kw}
        values = {**self._template, **kw}
        for name in self._special:
            v = values[name]
            if v is _MISSING:
                raise TypeError(f"{type(self).__name__} missing argument {name!r}")
            if type(v) is Factory and name not in kw:
                values[name] = v.make()
        if len(values) != len(fields):
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(set(kw) - set(fields))}")
        self.__dict__.update(values)

    def to_dict(self) -> dict:
        """The fields as a dict, records inside lists, tuples and dicts turned into dicts too (a copy)."""
        return {k: _plain(self.__dict__[k]) for k in self._fields}

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None

    def __repr__(self):
        inner = ", ".join(f"{k}={self.__dict__.get(k)!r}" for k in self._fields if k != "env")
        return f"{type(self).__name__}({inner})"


def _classvar(annotation) -> bool:
    return str(annotation).startswith(("ClassVar", "typing.ClassVar"))


def _plain(value):
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
