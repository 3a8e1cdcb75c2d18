"""``Record``: a small stand-in for ``@dataclass`` on the CLI's start-up path.

Importing and applying ``dataclasses`` costs ~30 ms per process (it pulls in
``inspect`` and generates code with ``exec``), more than Python's own start-up.
A Record subclass lists its fields as annotations, with plain defaults or
``Factory(list)`` for mutable ones; it gets ``__init__``, ``__eq__`` and ``__repr__``.
"""

from __future__ import annotations


class Factory:
    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


class Record:
    _fields: tuple = ()
    _defaults: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        names: list = []
        defaults: dict = {}
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", {}):
                if name.startswith("_") or name in names:
                    continue
                names.append(name)
            for name in names:
                if name in klass.__dict__:
                    defaults[name] = klass.__dict__[name]
        cls._fields, cls._defaults = tuple(names), defaults

    def __init__(self, *args, **kw):
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._fields)} positional arguments")
        values = dict(zip(self._fields, args))
        for name in self._fields[len(args):]:
            if name in kw:
                values[name] = kw.pop(name)
            elif name in self._defaults:
                d = self._defaults[name]
                values[name] = d.make() if isinstance(d, Factory) else d
            else:
                raise TypeError(f"{type(self).__name__} missing argument {name!r}")
        if kw:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kw)}")
        self.__dict__.update(values)

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None

    def __repr__(self):
        inner = ", ".join(f"{k}={self.__dict__.get(k)!r}" for k in self._fields if k != "env")
        return f"{type(self).__name__}({inner})"
