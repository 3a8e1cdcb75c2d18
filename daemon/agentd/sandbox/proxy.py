"""The loopback proxy a CLI agent reaches the world through: it adds the key, and it is the egress allowlist.

agentd runs one ``Proxy`` outside the sandbox for the length of a CLI run (stdlib only: ``socketserver``
threads and ``http.client``; no proxy library is installed and this one is small enough to read).  It
listens on a unix socket that is bound into the sandbox, where ``relay.py`` forwards the CLI's loopback
TCP connections to it; with full network (``{network: true}``) or ``sandbox: off`` it also listens on
127.0.0.1 outside, which the CLI then reaches directly.  It serves three kinds of request:

- **the provider** (origin-form, ``POST /v1/messages``): only with the run's placeholder key in
  ``x-api-key`` or ``Authorization`` (so no other local process can spend the person's key through an
  outside listener), and only to an inference endpoint of the run's CLI (``ENDPOINTS``, below); the
  placeholder is dropped, the real key added, and the request sent to the provider's API base and
  nowhere else, the response (SSE included) streamed back as it comes;
- **CONNECT host:port** (HTTPS through ``HTTPS_PROXY``): a tunnel, only to a host on the allowlist;
- **absolute-URI HTTP** (``GET http://host/...`` through ``HTTP_PROXY``): forwarded, only to a host on
  the allowlist.

The provider path forwards these and nothing else (path relative to the configured API base, any
query string kept; what claude 2.1.332 and codex 0.171.0 call, tests/captures/ and tests/fake_llm.py):

=============  ======  ===========================================================
CLI            method  path
=============  ======  ===========================================================
claude-cli     POST    ``/v1/messages``, ``/v1/messages/count_tokens``
claude-cli     GET     ``/v1/models``, ``/v1/models/<id>``
codex-cli      POST    ``/responses``
codex-cli      GET     ``/models``
=============  ======  ===========================================================

The login's other endpoints (``/api/oauth/...``: minting an API key that outlives the run, the
organization, the account; files, batches, skills) get ``403``, as does a path with a ``.`` or ``..``
segment, ``//``, a backslash or a percent-encoded dot, slash or backslash (``%2e``, ``%2f``, ``%5c``).

Where an allowed host goes: the proxy runs in the host's network namespace, so it resolves a name once
(``getaddrinfo``) and refuses it when any address is not global (loopback, private, link-local such as
the cloud metadata address 169.254.169.254, multicast, reserved, unspecified; an IPv4-mapped IPv6
address is judged as its IPv4), unless that address is listed exactly; it then connects to the address
it checked, not to the name again.  A name is reached on ports 80 and 443 only (the allowlist has no
ports); an IP address listed exactly, on any port.

An egress-only proxy (the API agents' shell, ``tools.Egress``) has no provider: ``upstream`` and
``token`` are None, and an origin-form request is refused like any other.

Everything else gets ``403`` and is logged (``refused``); a malformed or oversized body, ``400`` or ``413``.  A host is allowed when it is a listed name
or a subdomain of one (``pypi.org`` allows ``files.pypi.org``, not ``evilpypi.org``); an IP literal only
when listed exactly.  The provider's host is not on it by itself: the provider is reached through the
key-adding path only, so a tool can't use the provider's API with a key of its own (an exfiltration
channel to an account the attacker owns).
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from agentd.sandbox import egress
from agentd.sandbox.relay import pipe


HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te",
       "trailer", "transfer-encoding", "upgrade", "host", "content-length"}
AUTH = {"x-api-key", "authorization"}
MAX_BODY = 64 * 2**20
CHUNK = 64 * 1024
MAX_TRAILERS = 64
class BadRequest(Exception):
    """A request the proxy can't read: ``status`` (400, 413) and a message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Upstream:
    """Where the provider path goes and how it authenticates: ``base`` (scheme://host[:port][/path]) and
    the headers that carry the real key."""

    def __init__(self, base: str, headers: dict[str, str]):
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) API base: {base!r}")
        self.base, self.scheme, self.host = base, parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path.rstrip("/")
        self.headers = headers

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def chunk_size(line: bytes) -> int:
    """A chunk's size from its line (hex digits, then maybe ``;ext``), else ``BadRequest``."""
    digits = line.split(b";", 1)[0].strip()
    if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", digits):
        raise BadRequest(400, "malformed chunked body (a chunk size)")
    return int(digits, 16)


def content_length(value: str) -> int:
    """A Content-Length (decimal digits only), else ``BadRequest``."""
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) < 20):
        raise BadRequest(400, "malformed Content-Length")
    return int(value)


def placeholder(real: str, prefix: str = "") -> str:
    """The stand-in for a real key that the CLI inside is given: random per run, worthless outside the
    proxy, shaped like the real one (``sk-ant-api03-``...) so the CLI takes it."""
    return f"{prefix}agentd-proxy-{secrets.token_hex(16)}"


def _pinned(conn: http.client.HTTPConnection, addr: str) -> http.client.HTTPConnection:
    """``conn`` (for a name: its Host header, TLS name and certificate check) connecting to ``addr``."""
    conn._create_connection = lambda where, *a, **k: socket.create_connection((addr, where[1]), *a, **k)
    return conn


class Proxy:
    """``with Proxy(sock_path, upstream, token, allow, tcp=...) as p:`` serves until the block ends.
    ``p.port`` is the outside TCP port (``tcp=True``), ``p.refused`` what it refused."""

    def __init__(self, sock_path, upstream: Upstream | None, token: str | None, allow=(), *, cli: str | None = None,
                 tcp: bool = False, self_port: int | None = None, log=None, timeout: float = 600.0):
        if upstream is not None and cli not in egress.ENDPOINTS:
            raise ValueError(f"a provider path needs the CLI whose endpoints it forwards, not {cli!r}")
        self.sock_path, self.upstream, self.token, self.cli = str(sock_path), upstream, token, cli
        self.self_port = self_port  # the relay's port inside: an absolute URI to it means the provider
        self.allow, self.tcp, self.timeout = tuple(allow), tcp, timeout
        self.refused: list[str] = []
        self.forwarded = 0
        self.log = log or (lambda msg: None)
        self.port: int | None = None
        self._servers: list[socketserver.BaseServer] = []
        self._lock = threading.Lock()

    def is_self(self, host: str, port: int | None) -> bool:
        return host in ("127.0.0.1", "localhost") and port is not None and port in (self.port, self.self_port)

    def __enter__(self) -> "Proxy":
        handler = _handler(self)
        unix = _UnixServer(self.sock_path, handler)
        os.chmod(self.sock_path, 0o600)
        self._servers.append(unix)
        if self.tcp:
            tcp = _TCPServer(("127.0.0.1", 0), handler)
            self.port = tcp.server_address[1]
            self._servers.append(tcp)
        for s in self._servers:
            threading.Thread(target=s.serve_forever, args=(0.1,), daemon=True, name="agentd-proxy").start()
        return self

    def __exit__(self, *exc) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()
        try:
            os.unlink(self.sock_path)
        except OSError:
            pass

    def refuse(self, what: str) -> None:
        with self._lock:
            if len(self.refused) < 1000:
                self.refused.append(what)
        self.log(f"proxy refused {what}")


class _Quiet:
    """A handler's unexpected error is one line in agentd's log, never a traceback on its stderr."""

    def handle_error(self, request, client_address) -> None:
        e = sys.exc_info()[1]
        self.RequestHandlerClass.proxy.log(f"proxy: a request failed: {type(e).__name__}: {e}"[:300])


class _UnixServer(_Quiet, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TCPServer(_Quiet, socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler(proxy: Proxy):
    class Handler(_Handler):
        pass

    Handler.proxy = proxy
    return Handler


class _Handler(BaseHTTPRequestHandler):
    proxy: Proxy
    protocol_version = "HTTP/1.1"
    server_version = "agentd-proxy"
    sys_version = ""

    def log_message(self, *a) -> None:  # noqa: D401 - quiet; refusals are logged by the proxy
        pass

    def address_string(self) -> str:
        return "sandbox"

    # -- CONNECT: a tunnel to an allowed host -------------------------------------------------------
    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not egress.allowed(host, self.proxy.allow):
            return self._refuse(f"CONNECT {self.path}")
        if not egress.port_allowed(host, int(port), self.proxy.allow):
            return self._refuse(f"CONNECT {self.path}", f"port {int(port)}: a name is reached on 80 and 443 only")
        try:
            addr = egress.resolve(host, int(port), self.proxy.allow)
        except egress.Refused as e:
            return self._refuse(f"CONNECT {self.path}", str(e))
        try:
            up = socket.create_connection((addr, int(port)), timeout=30)
        except OSError as e:
            return self._plain(502, f"agentd proxy: can't reach {self.path}: {e}\n")
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        pipe(self.connection, up, self.proxy.timeout, close=(up,))  # the handler closes its own

    # -- everything else: the provider (origin-form), or plain HTTP to an allowed host (absolute-URI) ----
    def do_GET(self) -> None:
        self._any()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _any(self) -> None:
        target = self.path
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            host = parts.hostname or ""
            if self.proxy.is_self(host, parts.port):  # a client that proxied its request to us anyway
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            elif not egress.allowed(host, self.proxy.allow):
                return self._refuse(f"{self.command} {parts.scheme}://{parts.netloc}")
            else:
                what = f"{self.command} {parts.scheme}://{parts.netloc}"
                try:
                    port = parts.port or (443 if parts.scheme == "https" else 80)
                except ValueError:
                    return self._refuse(what, "not a port")
                if not egress.port_allowed(host, port, self.proxy.allow):
                    return self._refuse(what, f"port {port}: a name is reached on 80 and 443 only")
                try:
                    addr = egress.resolve(host, port, self.proxy.allow)
                except egress.Refused as e:
                    return self._refuse(what, str(e))
                path = parts.path or "/"
                if parts.query:
                    path += "?" + parts.query
                conn = (http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection)(
                    host, port, timeout=self.proxy.timeout)
                return self._forward(_pinned(conn, addr), path, {}, drop=())  # (Host: the name, from conn)
        if not target.startswith("/") or self.proxy.upstream is None:  # (egress only: no provider path)
            return self._refuse(f"{self.command} {target[:200]}")
        if not self._has_token():
            return self._refuse(f"{self.command} {target[:200]} (no run token: not the CLI)")
        if not egress.endpoint(self.proxy.cli, self.command, target):
            return self._refuse(f"{self.command} {target[:200]}", f"not an inference endpoint of {self.proxy.cli}")
        up = self.proxy.upstream
        with self.proxy._lock:
            self.proxy.forwarded += 1
        self._forward(up.connect(self.proxy.timeout), up.path + target, up.headers, drop=AUTH, host=up.host)

    def _has_token(self) -> bool:
        token = self.proxy.token
        got = [self.headers.get("x-api-key") or "", (self.headers.get("authorization") or "").removeprefix("Bearer ")]
        return any(secrets.compare_digest(g.strip().encode(), token.encode()) for g in got if g)

    def _body(self) -> bytes:
        """The request's body, at most ``MAX_BODY`` bytes (checked before reading), else ``BadRequest``."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            out = bytearray()
            while True:
                size = chunk_size(self.rfile.readline(100))
                if size == 0:
                    for _ in range(MAX_TRAILERS):
                        line = self.rfile.readline(8192)
                        if line in (b"\r\n", b"\n"):
                            return bytes(out)
                        if not line.endswith(b"\n"):
                            break
                    raise BadRequest(400, "malformed chunked body (trailers)")
                if len(out) + size > MAX_BODY:
                    raise BadRequest(413, "request body too large")
                data = self.rfile.read(size)
                if len(data) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise BadRequest(400, "malformed chunked body (a chunk cut short)")
                out += data
        n = content_length(self.headers.get("content-length") or "0")
        if n > MAX_BODY:
            raise BadRequest(413, "request body too large")
        data = self.rfile.read(n)
        if len(data) < n:
            raise BadRequest(400, "request body cut short")
        return data

    def _forward(self, conn, path: str, add: dict, drop, host: str | None = None) -> None:
        try:
            body = self._body()
        except BadRequest as e:
            conn.close()
            return self._plain(e.status, f"agentd proxy: {e}\n")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() not in drop}
        headers.update(add)
        if host:
            headers["Host"] = host if conn.port in (80, 443) else f"{host}:{conn.port}"
        try:
            conn.request(self.command, path, body=body if body or self.command not in ("GET", "HEAD") else None,
                         headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            return self._plain(502, f"agentd proxy: upstream failed: {e}\n")
        try:
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            head = self.command == "HEAD" or resp.status in (204, 304)
            if not head:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while not head:
                data = resp.read1(CHUNK)
                if not data:
                    self.wfile.write(b"0\r\n\r\n")
                    break
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
        except (OSError, http.client.HTTPException):
            self.close_connection = True
        finally:
            conn.close()

    def _refuse(self, what: str, why: str | None = None) -> None:
        """403, and ``what`` in the log: off the allowlist unless ``why`` says otherwise."""
        self.proxy.refuse(f"{what} ({why})" if why else what)
        self._plain(403, f"agentd proxy: {what.split(' (')[0]} " +
                    (f"refused: {why}\n" if why else "is not on this task's network allowlist\n"))

    def _plain(self, status: int, text: str) -> None:
        data = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass
        self.close_connection = True
