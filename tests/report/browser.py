"""Headless Chromium (Debian's ``chromium``) for the report's tests: open a page from a file, through a
loopback proxy that records every request the browser makes, and read back what it drew.

- ``open_page(path)``: the DOM after the page ran (``--dump-dom``), the console messages Chromium logged
  (``--enable-logging=stderr``), and every request the proxy saw.  ``--proxy-bypass-list=<-loopback>``
  sends loopback addresses through the proxy too, so nothing can leave the page unseen; the browser's
  own traffic (updates, sync, ...) is switched off by flags, and what is left is none of the page's.
- ``screenshot(path)``: a PNG of the page, decoded with zlib (stdlib) into rows of RGB pixels.
- ``Dom``: the dumped DOM parsed (html.parser) into a small tree to count and read elements.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import zlib
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium; "
                                                             "`make test` installs it, tests/sysdeps.sh)")
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
         "--disable-client-side-phishing-detection", "--metrics-recording-only", "--mute-audio", "--no-pings",
         "--disable-preconnect", "--hide-scrollbars",
         # the browser's own calls home (time, sign-in, search preconnects), none of them the page's: sent nowhere
         "--gaia-url=http://127.0.0.1:9", "--google-base-url=http://127.0.0.1:9", "--lso-url=http://127.0.0.1:9",
         # Chromium 156 asks update.googleapis.com for components even with --disable-component-update
         "--component-updater=url-source=http://127.0.0.1:9/",
         "--disable-features=" + ",".join([
             "Translate", "OptimizationHints", "MediaRouter", "AutofillServerCommunication",
             "NetworkTimeServiceQuerying", "PreconnectToSearch", "SearchPrefetchServicePrefetching", "DnsOverHttps",
             "PrivacySandboxSettings4", "InterestFeedContentSuggestions", "CertificateTransparencyComponentUpdater",
             "AccountConsistency", "MirroringService", "GlobalMediaControls", "LensOverlay", "OnDeviceModelService",
             "OptimizationGuideModelDownloading"])]
CONSOLE = re.compile(r":INFO:CONSOLE[^\]]*\] (.*)")


class Proxy:
    """A loopback HTTP proxy that answers every request 403 and records it ("METHOD target")."""

    def __init__(self):
        self.seen: list[str] = []
        proxy = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _any(self):
                proxy.seen.append(f"{self.command} {self.path}")
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            do_GET = do_POST = do_HEAD = do_CONNECT = do_PUT = do_OPTIONS = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Opened:
    def __init__(self, dom: str, console: list[str], requests: list[str]):
        self.dom, self.console, self.requests = dom, console, requests


def _chromium(args: list[str], profile: str, proxy: Proxy) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": profile}
    return subprocess.run([CHROMIUM, *QUIET, f"--user-data-dir={profile}", f"--proxy-server=http://127.0.0.1:{proxy.port}",
                           "--proxy-bypass-list=<-loopback>", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def open_page(path: Path) -> Opened:
    """``path`` opened in headless Chromium: the DOM it ends with, its console messages, the requests made."""
    proxy = Proxy()
    try:
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            r = _chromium(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", "--dump-dom",
                           path.resolve().as_uri()], profile, proxy)
        assert r.returncode == 0, r.stderr[-3000:]
        return Opened(r.stdout, [m.group(1) for m in CONSOLE.finditer(r.stderr)], list(proxy.seen))
    finally:
        proxy.close()


def screenshot(path: Path, out: Path, width: int = 1200, height: int = 3000, scale: float = 0.5) -> Path:
    """A PNG of ``path``'s first ``width`` x ``height`` CSS pixels, drawn at ``scale`` (fewer pixels to decode)."""
    proxy = Proxy()
    try:
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            r = _chromium([f"--screenshot={out}", f"--window-size={width},{height}",
                           f"--force-device-scale-factor={scale}", path.resolve().as_uri()], profile, proxy)
        assert r.returncode == 0 and out.exists(), r.stderr[-3000:]
        return out
    finally:
        proxy.close()


def pixels(png: Path) -> list[bytes]:
    """The rows of an 8-bit RGB or RGBA PNG (not interlaced), unfiltered: what the screen showed."""
    b = png.read_bytes()
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, [], 0
    while pos < len(b):
        n, kind = struct.unpack(">I4s", b[pos:pos + 8])
        chunk = b[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + n
    raw, stride, rows = zlib.decompress(b"".join(idat)), w * bpp, []
    prev = bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray(bytes(a + b & 255 for a, b in zip(line, prev)))
        elif f == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif f == 4:
            for i in range(stride):
                a, up = line[i - bpp] if i >= bpp else 0, prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + up - c
                pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(x for i, x in enumerate(line) if i % 4 != 3))
        prev = line
    return rows


def colours(rows: list[bytes]) -> dict[bytes, int]:
    """How many pixels of each colour."""
    seen: dict[bytes, int] = {}
    for row in rows:
        for i in range(0, len(row), 3):
            px = row[i:i + 3]
            seen[px] = seen.get(px, 0) + 1
    return seen


# -- reading what the page drew ---------------------------------------------------------------------

def marks(node) -> list:
    """The drawn marks in ``node``: each rect, circle, path or polyline of class ``mark``."""
    return [n for tag in ("rect", "circle", "path", "polyline") for n in node.all(tag)
            if "mark" in n.attrs.get("class", "").split()]


def blank(rows: list[bytes]) -> bool:
    """A screenshot nearly all one colour, or of very few colours."""
    c = colours(rows)
    return len(c) < 16 or max(c.values()) > 0.995 * sum(c.values())


def read_table(dom, name: str) -> list[dict]:
    """A page table as rows of {column: value}: a cell's ``data-v`` read as JSON, else its text."""
    (t,) = dom.all("table", data_table=name)
    cols = [th.attrs["data-col"] for th in t.all("th")]
    return [{c: json.loads(td.attrs["data-v"]) if "data-v" in td.attrs else td.text()
             for c, td in zip(cols, tr.all("td"))} for tr in t.all("tbody")[0].all("tr")]


def get(row: dict, key: str):
    """``row[a][b]`` for the key ``a.b``."""
    for part in key.split("."):
        row = row[part]
    return row


def same(dom, name: str, rows: list[dict], skip: tuple = ()) -> None:
    """The page table ``name`` shows ``rows``, cell by cell (a number by its data-v; None as a dash)."""
    shown = read_table(dom, name)
    assert len(shown) == len(rows), name
    for s, r in zip(shown, rows):
        for col, v in s.items():
            want = get(r, col)
            if col not in skip:
                assert v == want or v == "—" and want is None, (name, col, v, want)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: "Node | None"):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, **attrs) -> list["Node"]:
        out = []
        for c in self.children:
            if isinstance(c, Node):
                if (tag is None or c.tag == tag) and all(c.attrs.get(k.replace("_", "-")) == v if v is not True
                                                         else k.replace("_", "-") in c.attrs for k, v in attrs.items()):
                    out.append(c)
                out += c.all(tag, **attrs)
        return out


class Dom(HTMLParser):
    """The dumped DOM as a tree of ``Node``s (``root``)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", {}, None)
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        n = Node(tag, {k: v if v is not None else "" for k, v in attrs}, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)
