"""`agentd report -o FILE`: where the page goes.  A symlink is followed (the page is written to its target,
the link stays); a FIFO or a character device is written to as it is, never replaced by a regular file
(as root, `-o /dev/null` once turned /dev/null into a 44 KB file); any other path that is not a regular
file is a usage error; `-o -` is standard output; an existing file keeps its mode, a new one is 0600; the
temporary file's name stays short whatever the page's.  Stand-ins in a temp dir, never the real /dev."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading
from pathlib import Path

from agentd.cli import report
from conftest import run_cli


def page_to(out: Path, *args: str) -> subprocess.CompletedProcess:
    r = run_cli("report", "--since", "2d", "-o", str(out), *args)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_a_symlink_is_followed_and_stays_a_link(home, tmp_path):
    target = tmp_path / "pages" / "week.html"
    target.parent.mkdir()
    target.write_text("old")
    os.chmod(target, 0o644)
    link = tmp_path / "link.html"
    link.symlink_to(target)
    r = page_to(link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("<!doctype html>")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # an existing file keeps its mode
    assert sorted(p.name for p in target.parent.iterdir()) == ["week.html"]  # no temporary file left
    dangling = tmp_path / "dangling.html"
    dangling.symlink_to(tmp_path / "pages" / "new.html")
    assert page_to(dangling).returncode == 0
    assert dangling.is_symlink() and (tmp_path / "pages" / "new.html").read_text().startswith("<!doctype html>")
    assert stat.S_IMODE((tmp_path / "pages" / "new.html").stat().st_mode) == 0o600  # a new file: 0600


def _read_fifo(path: Path) -> tuple[threading.Thread, list]:
    got: list = []

    def read():
        with open(path, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t, got


def test_a_fifo_is_written_to_never_replaced(home, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    t, got = _read_fifo(fifo)
    r = page_to(fifo)
    t.join(30)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, as /dev/null stays a device
    assert got and got[0].startswith(b"<!doctype html>")


def test_the_fifo_would_be_replaced_with_following_off(home, tmp_path, monkeypatch):
    """The twin: without ``report.target``'s look at what the path is, the page replaces the FIFO."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    monkeypatch.setattr(report, "target", lambda path: ("file", path, None))
    report.write(fifo, "<!doctype html>")
    assert stat.S_ISREG(os.lstat(fifo).st_mode)


def test_another_kind_of_file_is_a_usage_error(home, tmp_path):
    sock_path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))
    try:
        r = page_to(sock_path)
    finally:
        s.close()
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "not a regular file" in r.stderr and stat.S_ISSOCK(os.lstat(sock_path).st_mode)


def test_dash_writes_the_page_to_stdout(home, tmp_path):
    r = run_cli("report", "--since", "2d", "-o", "-", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("<!doctype html>") and r.stdout.rstrip().endswith("</html>")
    assert not (tmp_path / "-").exists()


def test_a_new_file_is_0600_and_a_long_name_works(home, tmp_path):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / ("r" * 245 + ".html")  # 250 characters: a temp name built on it would pass 255
    r = page_to(out)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text().startswith("<!doctype html>")
    assert [p.name for p in out.parent.iterdir()] == [out.name]
