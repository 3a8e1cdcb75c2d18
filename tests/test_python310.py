"""agentd runs on Python 3.10, as pyproject's ``requires-python`` and the README say.

The suite runs on the venv's Python (3.11 where it was built).  Where a Python 3.10 is found (on PATH,
or a pyenv one), these tests build a 3.10 venv with agentd's dependencies (less the provider SDKs, which
are imported only when a provider is called) and, under 3.10: import every module, read a codex
config.toml (tomllib is 3.11+; 3.10 uses tomli, a 3.10-only dependency), and run the CLI through a
wake of a command task.  Without a 3.10 they skip, saying so (`make test PYTHON=python3.10 VENV=.venv/py310
TORCH=` runs the whole suite on one).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # this file runs on 3.10 too (the whole suite on a 3.10 venv)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SDKS = ("anthropic", "openai")


def _python310() -> str | None:
    cands = [os.path.join(d, "python3.10") for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    cands += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    for c in cands:
        if not os.access(c, os.X_OK):
            continue
        try:
            out = subprocess.run([c, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                                 capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if out.strip() == "True":
            return c
    return None


PY310 = _python310()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(PY310 is None, reason="no Python 3.10 here (python3.10 on PATH, or pyenv's)")]


@pytest.fixture(scope="module")
def py310(tmp_path_factory) -> Path:
    """A 3.10 venv with pyproject's dependencies for 3.10, less the SDKs; agentd itself from daemon/."""
    venv = tmp_path_factory.mktemp("py310") / "venv"
    subprocess.run([PY310, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    deps = [d for d in deps if not d.startswith(SDKS)]
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        "--disable-pip-version-check", *deps], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"pip could not install {deps} for Python 3.10:\n{r.stdout}{r.stderr}"
    return venv / "bin" / "python"


def _run(py: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "daemon"), **kw.pop("env", {}))
    return subprocess.run([str(py), *args], env=env, capture_output=True, text=True, timeout=120, **kw)


def test_every_module_imports_on_python_310(py310):
    code = ("import importlib, pkgutil, sys, agentd\n"
            "assert sys.version_info[:2] == (3, 10), sys.version\n"
            "names = [m.name for m in pkgutil.walk_packages(agentd.__path__, 'agentd.')"
            " if not m.name.endswith('__main__')]\n"
            "for n in names: importlib.import_module(n)\n"
            "print(len(names))\n")
    r = _run(py310, "-c", code)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) > 50


def test_a_codex_config_toml_is_read_on_python_310(py310, tmp_path):
    codex = tmp_path / "codex"
    codex.mkdir()
    (codex / "config.toml").write_text('model = "o4-mini"\nmodel_provider = "local"\n\n'
                                       '[model_providers.local]\nbase_url = "http://127.0.0.1:9/v1"\n')
    code = ("import sys; from agentd.sandbox import clihome\n"
            "login = clihome.login_for('codex-cli', {'CODEX_HOME': sys.argv[1]})\n"
            "print(login.model, login.upstream.base)\n")
    r = _run(py310, "-c", code, str(codex))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["o4-mini", "http://127.0.0.1:9/v1"]


def test_a_wake_runs_a_command_task_on_python_310(py310, home, tmp_path):
    wl = tmp_path / "wl" / "testhost_worklog.txt"
    wl.write_text('- [ ] say hi {id: hi, run: "echo hi from 3.10", value: 5}\n')
    r = _run(py310, "-m", "agentd", "wake", "--now", env={"AGENTD_PROVIDER": "none"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hi from 3.10" in wl.read_text()
