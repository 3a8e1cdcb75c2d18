"""Every test gets its own HOME, XDG dirs and host name; nothing touches the real ones."""

from __future__ import annotations

import os
import time
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
REPO = Path(__file__).resolve().parent.parent
AGENTD = [sys.executable, "-m", "agentd"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    for k in list(os.environ):
        if k.startswith("AGENTD_") or k in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL",
                                            "OPENAI_BASE_URL", "JOURNAL_STREAM", "INVOCATION_ID"):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("AGENTD_HOST", "testhost")
    monkeypatch.setenv("AGENTD_WORKLOG_DIR", str(tmp_path / "wl"))
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "wl").mkdir()
    return home


@pytest.fixture(autouse=True)
def _drop_reserve(home):
    """agentd's 64 MiB reserve in the default state dir (reserve.py) goes after each test: kept tmp dirs add up."""
    yield
    (home / ".local" / "state" / "agentd" / "reserve").unlink(missing_ok=True)


@pytest.fixture
def fake():
    """The loopback fake model server (tests/fake_llm.py): scripted replies, every request kept."""
    from fake_llm import FakeLLM

    f = FakeLLM()
    yield f
    f.close()


class Site:
    """A plain HTTP server on a loopback address of its own: a stand-in for a host on the internet, or for
    a loopback-only service a name could resolve to.  ``addr`` defaults to a random 127.x.y.z (parallel
    runs don't meet), ``port`` to any (80 needs root); it answers every GET with ``body`` (default
    ``hello from <addr>``) and records the paths it was asked for."""

    def __init__(self, addr: str | None = None, port: int = 0, body: bytes | None = None):
        import random
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.addr = addr or f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        self.paths: list[str] = []
        site, data = self, body if body is not None else f"hello from {self.addr}\n".encode()

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                site.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        try:
            self.server = ThreadingHTTPServer((self.addr, port), H)
        except PermissionError:
            pytest.skip(f"a loopback stand-in on port {port} needs root")
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sites():
    """Two stand-ins for hosts on the internet: 127.0.0.2 (the one a test allows) and 127.0.0.3."""
    a, b = Site("127.0.0.2"), Site("127.0.0.3")
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def worklog(tmp_path) -> Path:
    """Path of this test host's worklog (not created)."""
    return tmp_path / "wl" / "testhost_worklog.txt"


def run_cli(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 120,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess with the test's environment."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([*AGENTD, *args], capture_output=True, text=True, env=e, input=input,
                          timeout=timeout, cwd=cwd)


@pytest.fixture
def cli():
    return run_cli


def still(path: Path, seconds: float = 60) -> None:
    """Make ``path`` look untouched for ``seconds`` (its mtime set back): a wake restores lost entries
    only into a worklog that has been still for a while (``settle.RESTORE_QUIET_S``)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _bwrap_usable() -> str | None:
    from agentd.sandbox import bwrap  # lazy: only the tests that need bwrap ask

    st = bwrap.status(dict(os.environ))
    return None if st.ok else st.message()


def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root, outside a container that forbids it): the tests
    that fill or freeze a real file system need it."""
    import tempfile  # lazy: only the mounting tests ask

    if os.geteuid() != 0:
        return False
    d = tempfile.mkdtemp()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", d])
    os.rmdir(d)
    return ok


# The stand-ins for the claude and codex CLIs, and the captures of the real ones they replay
# (tests/agent/test_agent.py, tests/wake/test_wake_agent.py): put first on PATH.  The stand-ins read
# their captures beside them (tests/captures/<cli>/). A checkout under /tmp is hidden inside the
# sandbox but for the PATH dirs, which are bound one by one: the captures ride on PATH too.
FAKE_PATH = ":".join(map(str, [Path(__file__).resolve().parent / "fakebin_agents",
                               *sorted((Path(__file__).resolve().parent / "captures").glob("*-*.*"))]))


@pytest.fixture
def fresh_bwrap_probe():
    """bwrap's cached probe forgotten before and after a test (the sandbox tests switch it)."""
    from agentd.sandbox import bwrap  # lazy: only the sandbox tests ask

    bwrap.reset_cache()
    yield
    bwrap.reset_cache()


@pytest.fixture
def base():
    """A scratch dir outside /tmp (the sandbox's private /tmp would hide it), removed after."""
    import shutil  # lazy: only the sandbox tests ask
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="agentd-sbx-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None))
    yield d
    shutil.rmtree(d, ignore_errors=True)
