"""A module's imports sit at its top, so its first lines say what it depends on (issue 19).

An import inside a function is allowed only for a heavy library (the SDKs, torch, transformers,
structlog: each costs 0.1-2 s of start-up that most commands never need) or where the line says
why with a ``# lazy: <reason>`` comment (e.g. a command module the CLI loads only for its command).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "daemon" / "agentd"
HEAVY = frozenset(("anthropic", "openai", "torch", "transformers", "structlog", "huggingface_hub", "accelerate",
                   "numpy", "httpx"))


def nested_imports(tree: ast.Module, lines: list[str]) -> list[tuple[int, str]]:
    """(line, text) of each import inside a function or class that is neither heavy nor says why."""
    out = []

    def visit(node, nested: bool):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)) and nested:
                names = [child.module or ""] if isinstance(child, ast.ImportFrom) else [a.name for a in child.names]
                if getattr(child, "level", 0) == 0 and all(n.split(".")[0] in HEAVY for n in names):
                    continue
                text = lines[child.lineno - 1]
                before = lines[child.lineno - 2] if child.lineno > 1 else ""
                if "# lazy:" in text or before.strip().startswith("# lazy:"):
                    continue
                out.append((child.lineno, text.strip()))
            visit(child, inner)

    visit(tree, False)
    return out


def offenders(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for line, src in nested_imports(ast.parse(text), text.splitlines()):
            found.append(f"{path.relative_to(root.parent)}:{line}: {src}")
    return found


def test_every_import_inside_a_function_is_heavy_or_says_why():
    found = offenders(PACKAGE)
    assert not found, f"{len(found)} imports inside functions (move them to the top, or say `# lazy: why`):\n" \
        + "\n".join(found[:60])


def test_the_check_finds_a_planted_nested_import(tmp_path):
    """The same walk on a planted module: a nested stdlib import is found, a heavy one or one that
    says why is not."""
    pkg = tmp_path / "agentd"
    pkg.mkdir()
    (pkg / "m.py").write_text("import os\n\n\ndef f():\n    import json\n    import torch\n"
                              "    import shutil  # lazy: only the cleanup needs it\n    return json\n",
                              encoding="utf-8")
    assert offenders(pkg) == ["agentd/m.py:5: import json"]
