"""One record mechanism: every record in daemon/agentd is an ``agentd.recordtype.Record``, none a
``@dataclass`` (importing dataclasses costs ~30 ms of start-up; two mechanisms are one too many)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import ClassVar

from agentd.recordtype import Factory, Record

PACKAGE = Path(__file__).resolve().parent.parent / "daemon" / "agentd"


def dataclass_imports(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "dataclasses" or n.startswith("dataclasses.") for n in names):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_module_imports_dataclasses():
    assert dataclass_imports(PACKAGE) == [], "use agentd.recordtype.Record instead of @dataclass"


def test_the_walk_finds_a_planted_import(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.py").write_text("from dataclasses import dataclass\n")
    (tmp_path / "n.py").write_text("import json, dataclasses\n")
    assert dataclass_imports(tmp_path) == ["n.py:1", "sub/m.py:1"]


class Inner(Record):
    name: str
    args: dict


class Outer(Record):
    kind: ClassVar[str] = "outer"  # a class constant, not a field
    text: str
    inner: list[Inner] = Factory(list)
    extra: dict = Factory(dict)


def test_classvar_is_not_a_field():
    assert Outer._fields == ("text", "inner", "extra")
    o = Outer("hi")
    assert o.kind == "outer" and o.inner == [] and o.inner is not Outer("x").inner


def test_to_dict_is_deep_and_copies():
    o = Outer("hi", [Inner("a", {"x": [1, 2]})], {"k": (Inner("b", {}),)})
    d = o.to_dict()
    assert d == {"text": "hi", "inner": [{"name": "a", "args": {"x": [1, 2]}}],
                 "extra": {"k": ({"name": "b", "args": {}},)}}
    d["inner"][0]["args"]["x"].append(3)
    assert o.inner[0].args == {"x": [1, 2]}  # a copy, as dataclasses.asdict gives
    assert Outer(**{**d, "inner": [Inner(**i) for i in d["inner"]], "extra": {}}).inner[0].name == "a"
