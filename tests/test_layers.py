"""The folders depend one way, cli on top and the shared leaves at the bottom: pyproject.toml's
import-linter `layers` contract, checked by the real `lint-imports` (imports inside functions count),
and shown to break when an import runs upward."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "daemon" / "agentd"
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the checkout at ``root``, with its own daemon/ first on the path."""
    assert LINT.exists(), f"{LINT} is missing: `pip install -e '.[test]'` installs import-linter"
    env = dict(os.environ, PYTHONPATH=str(root / "daemon"))
    return subprocess.run([str(LINT), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)


def layers() -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (contract,) = config["contracts"]
    assert contract["type"] == "layers" and contract["containers"] == ["agentd"]
    return contract["layers"]


def test_the_folders_depend_one_way():
    r = lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout


def test_every_folder_and_top_level_module_has_its_place_in_the_layers():
    named = [n.strip() for layer in layers() for n in re.split(r"[|:]", layer)]
    present = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    present |= {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert sorted(named) == sorted(present)
    assert named[0] == "cli" and "errors" in layers()[-1]


UPWARD = {
    # inside a function, where a third of agentd's imports sit: the store reaching up to the wake
    "lazy": ("store/clock.py", "\n\ndef _planted():\n    from agentd.wake import wake\n\n    return wake\n",
             "agentd.store is not allowed to import agentd.wake", "agentd.store.clock -> agentd.wake.wake"),
    # at a leaf's top: the errors reaching up to the config
    "top": ("errors.py", "\nfrom agentd.config import config  # noqa: E402,F401\n",
            "agentd.errors is not allowed to import agentd.config", "agentd.errors -> agentd.config.config"),
}


@pytest.mark.parametrize("where", sorted(UPWARD))
def test_an_import_that_runs_upward_breaks_the_contract(tmp_path, where):
    """The protection off: the same check on a copy of the package with one upward import planted."""
    module, planted, broken, chain = UPWARD[where]
    shutil.copytree(PACKAGE, tmp_path / "daemon" / "agentd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint(tmp_path).returncode == 0  # the copy keeps the contract, as the package does

    target = tmp_path / "daemon" / "agentd" / module
    target.write_text(target.read_text(encoding="utf-8") + planted, encoding="utf-8")
    r = lint(tmp_path)
    assert r.returncode != 0, r.stdout
    assert "1 broken" in r.stdout and broken in r.stdout and chain in r.stdout, r.stdout


def test_the_architecture_page_names_every_folder_and_module():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    folders = text[text.index("## Folders"):text.index("## Control flow")]
    modules = text[text.index("## Modules"):]
    for p in sorted(PACKAGE.iterdir()):
        if (p / "__init__.py").is_file():
            assert f"`{p.name}/`" in folders, p.name
            for m in sorted(p.glob("*.py")):
                named = f"`{p.name}/{m.name}`" in modules or f"`{p.name}/`" in modules
                assert m.name.startswith("__") or named, f"{p.name}/{m.name}"
        elif p.suffix == ".py" and not p.name.startswith("__"):
            assert f"`{p.name}`" in folders and f"`{p.name}`" in modules, p.name
