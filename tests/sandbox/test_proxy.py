"""agentd's loopback proxy for the CLI agents (daemon/agentd/sandbox/proxy.py), over real sockets: the provider
path adds the real key only for the run's token, only to the CLI's inference endpoints, and streams SSE as it
comes; plain HTTP and CONNECT reach only hosts on the allowlist, on ports 80 and 443 and public addresses (DNS is
faked in-process by patching ``socket.getaddrinfo``); a body is read only up to its limit; the ``network`` attr
is checked strictly.  Each attack is also run with its protection monkeypatched off, to show it can fail."""

from __future__ import annotations

import http.client
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentd.sandbox import egress, proxy
from agentd.config.schema import _network
from conftest import Site


class Upstream:
    """A loopback 'provider': records headers, answers with SSE events sent 0.3 s apart."""

    def __init__(self):
        self.headers: list[dict] = []
        up = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                up.headers.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for i in range(2):
                    data = f"event: e\ndata: {i}\n\n".encode()
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()
                    up.sent.wait(5)  # the second event only after the client saw the first
                self.wfile.write(b"0\r\n\r\n")

            do_GET = do_POST

        self.sent = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.handle_error = lambda *a: None  # a client that left early (a refused test's) is no error here
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/anthropic"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def served(tmp_path):
    up = Upstream()
    with proxy.Proxy(tmp_path / "p.sock", proxy.Upstream(up.url, {"x-api-key": "REAL-KEY"}), "run-token",
                     allow=("pypi.org", "127.0.0.2"), cli="claude-cli", tcp=True) as p:
        yield p, up
    up.server.shutdown()


def ask(p, method, target, headers=None, body=b"{}"):
    c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    c.request(method, target, body=body, headers=headers or {})
    return c.getresponse()


def test_the_provider_path_swaps_the_run_token_for_the_real_key_and_streams_events_as_they_come(served):
    p, up = served
    r = ask(p, "POST", "/v1/messages?beta=true", {"x-api-key": "run-token", "authorization": "Bearer other"})
    assert r.status == 200
    first = r.read1(100)
    assert b"data: 0" in first and b"data: 1" not in first  # streamed, not buffered whole
    up.sent.set()
    assert b"data: 1" in r.read()
    (h,) = up.headers
    assert h["path"] == "/anthropic/v1/messages?beta=true" and h["x-api-key"] == "REAL-KEY" and "authorization" not in h


def test_the_provider_path_refuses_a_request_without_the_run_token(served):
    p, up = served
    for headers in ({}, {"x-api-key": "guess"}, {"authorization": "Bearer sk-ant-attackers-own"}):
        r = ask(p, "POST", "/v1/messages", headers)
        assert r.status == 403 and r.read().startswith(b"agentd proxy:")
    assert up.headers == [] and len(p.refused) == 3


@pytest.mark.parametrize("host,ok", [("pypi.org", True), ("files.pypi.org", True), ("PyPI.org.", True),
                                     ("evilpypi.org", False), ("pypi.org.evil.com", False), ("127.0.0.2", True),
                                     ("127.0.0.20", False), ("x.127.0.0.2", False), ("github.com", False)])
def test_the_allowlist_allows_a_listed_name_and_its_subdomains_and_an_ip_only_exactly(host, ok):
    assert egress.allowed(host, ("pypi.org", "127.0.0.2")) is ok


def test_plain_http_and_connect_to_a_host_off_the_allowlist_get_403_and_are_logged(served):
    p, _ = served
    assert ask(p, "GET", "http://example.com/x", body=None).status == 403
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 403")
    assert p.refused == ["GET http://example.com", "CONNECT example.com:443"]


def test_connect_to_an_allowed_host_is_a_tunnel(served, tmp_path):
    p, _ = served
    site = socket.socket()
    site.bind(("127.0.0.2", 0))
    site.listen(1)
    port = site.getsockname()[1]
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.sendall(f"CONNECT 127.0.0.2:{port} HTTP/1.1\r\n\r\n".encode())
    assert s.recv(100).startswith(b"HTTP/1.1 200")
    conn, _ = site.accept()
    s.sendall(b"ping")
    assert conn.recv(4) == b"ping"
    conn.sendall(b"pong")
    assert s.recv(4) == b"pong"


def test_the_network_attr_takes_true_false_or_host_names_and_says_what_is_wrong():
    assert _network(True) == (True, None) and _network(False) == (False, None)
    assert _network(["PyPI.org", "github.com", "pypi.org"]) == (["pypi.org", "github.com"], None)
    for bad in (["https://pypi.org"], ["pypi.org:443"], ["*.pypi.org"], ["pypi.org/simple"], [], "yes please",
                [1], ["a" * 64 + ".org"], ["300.1.1.1"]):
        value, problem = _network(bad)
        assert value is None and "must be true, false or a list of host names" in problem, bad


def test_a_worklog_line_names_its_hosts_and_a_bad_one_is_an_error_naming_the_key():
    from agentd.worklog import lines

    assert lines.parse_line("- [ ] fetch deps {network: [pypi.org, github.com]}", 3).attrs == {
        "network": ["pypi.org", "github.com"]}
    with pytest.raises(lines.LineError, match="'network': must be true, false or a list of host names"):
        lines.parse_line('- [ ] fetch deps {network: ["https://pypi.org"]}', 3)


# -- the provider path: only the CLI's inference endpoints ------------------------------------------------------

TOKEN = {"x-api-key": "run-token"}
OTHER_ENDPOINTS = [("POST", "/api/oauth/claude_cli/create_api_key"), ("GET", "/api/oauth/organizations/o-1/roles"),
                   ("GET", "/api/oauth/profile"), ("POST", "/file_upload"), ("GET", "/account/settings"),
                   ("POST", "/v1/files"), ("GET", "/v1/messages"), ("POST", "/responses")]
ESCAPES = ["/../secret-admin", "/v1/models/../../api/oauth/profile", "/v1/models/..%2f..%2fapi%2foauth%2fprofile",
           "/v1/models/%2E%2e", "/v1/%2e%2E/api/oauth/profile", "/v1//messages", "/v1\\messages", "/v1/./messages",
           "/v1/models/x%5c..%5capi"]


@pytest.fixture(params=["on", "off"], ids=["protection on", "protection off"])
def endpoints_checked(request, monkeypatch):
    if request.param == "off":  # as before: every path under the API base, with the real key
        monkeypatch.setattr(egress, "endpoint", lambda cli, method, target: True)
    return request.param == "on"


def test_the_provider_path_refuses_the_logins_other_endpoints_with_the_run_token(served, endpoints_checked):
    p, up = served
    up.sent.set()
    for method, path in OTHER_ENDPOINTS:
        r = ask(p, method, path, TOKEN, body=b"{}" if method == "POST" else None)
        assert (r.status == 403) is endpoints_checked, (method, path, r.status)
        r.read()
    if endpoints_checked:
        assert up.headers == []
        assert p.refused[0] == "POST /api/oauth/claude_cli/create_api_key (not an inference endpoint of claude-cli)"
    else:  # the attack: a tool holding the placeholder mints a key that outlives the run, with the real login
        assert up.headers[0]["path"] == "/anthropic/api/oauth/claude_cli/create_api_key"
        assert up.headers[0]["x-api-key"] == "REAL-KEY"


def test_the_provider_path_refuses_dot_segments_double_slashes_backslashes_and_encoded_dots_or_slashes(
        served, endpoints_checked):
    p, up = served
    up.sent.set()
    for path in ESCAPES:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        s.sendall(f"GET {path} HTTP/1.1\r\nx-api-key: run-token\r\nConnection: close\r\n\r\n".encode())
        head = s.recv(100)
        s.close()
        assert head.startswith(b"HTTP/1.1 403") is endpoints_checked, (path, head)
    if endpoints_checked:
        assert up.headers == [] and len(p.refused) == len(ESCAPES)
    else:  # the attack: out of the base path (/anthropic), with the real key
        assert up.headers[0]["path"] == "/anthropic/../secret-admin" and up.headers[0]["x-api-key"] == "REAL-KEY"


@pytest.mark.parametrize("cli,base,ok,refused", [
    ("claude-cli", "", [("POST", "/v1/messages?beta=true"), ("POST", "/v1/messages/count_tokens?beta=true"),
                        ("GET", "/v1/models?limit=1000"), ("GET", "/v1/models/claude-opus-4-1-20250805?beta=true")],
     [("POST", "/responses"), ("GET", "/models"), ("POST", "/v1/messages/batches"), ("DELETE", "/v1/messages")]),
    ("codex-cli", "/v1", [("POST", "/responses"), ("GET", "/models?client_version=0.171.0")],
     [("POST", "/v1/messages"), ("GET", "/models/gpt-5"), ("POST", "/responses/x"), ("GET", "/files")]),
])
def test_each_cli_reaches_exactly_its_inference_endpoints(tmp_path, cli, base, ok, refused):
    up = Upstream()
    up.sent.set()
    base_url = up.url.removesuffix("/anthropic") + base
    with proxy.Proxy(tmp_path / "p.sock", proxy.Upstream(base_url, {}), "run-token", cli=cli, tcp=True) as p:
        for method, path in ok + refused:
            r = ask(p, method, path, TOKEN, body=b"{}" if method == "POST" else None)
            assert (r.status == 200) is ((method, path) in ok), (method, path, r.status)
            r.read()
    assert [h["path"] for h in up.headers] == [base + path for _, path in ok]
    up.server.shutdown()


def test_a_proxy_with_a_provider_path_must_know_whose_endpoints_it_forwards(tmp_path):
    with pytest.raises(ValueError, match="needs the CLI"):
        proxy.Proxy(tmp_path / "p.sock", proxy.Upstream("https://api.anthropic.com", {}), "run-token")


# -- where an allowed name goes: public addresses, ports 80 and 443 -------------------------------------------

@pytest.mark.parametrize("addr,ok", [("8.8.8.8", True), ("2606:4700:4700::1111", True), ("::ffff:8.8.8.8", True),
                                     ("127.0.0.1", False), ("127.9.9.9", False), ("::1", False), ("10.1.2.3", False),
                                     ("172.16.0.1", False), ("192.168.1.1", False), ("100.64.0.1", False),
                                     ("169.254.169.254", False), ("fe80::1%lo", False), ("fd00::1", False),
                                     ("224.0.0.1", False), ("240.0.0.1", False), ("0.0.0.0", False), ("::", False),
                                     ("::ffff:127.0.0.1", False), ("::ffff:169.254.169.254", False),
                                     ("2002:a9fe:a9fe::1", False), ("2002:0808:0808::1", True)])
def test_only_a_global_address_is_public(addr, ok):
    assert egress.public(addr) is ok


def test_localhost_on_the_allowlist_still_resolves_to_loopback_and_is_refused():
    with pytest.raises(egress.Refused, match="resolves to (127.0.0.1|::1), not a public address"):
        egress.resolve("localhost", 80, ("localhost",))
    assert egress.resolve("127.0.0.2", 8080, ("localhost", "127.0.0.2")) == "127.0.0.2"  # listed exactly


SECRET = b"HOST-LOOPBACK-SECRET"  # what a loopback-only service on agentd's host answers


@pytest.fixture
def dns(monkeypatch):
    """``dns[name] = [addr, ...]``: what ``getaddrinfo`` answers for ``name``, one list per lookup (the last
    repeats); ``dns.asked`` counts the lookups."""
    real = socket.getaddrinfo
    answers = type("DNS", (dict,), {})()
    asked = answers.asked = {}

    def getaddrinfo(host, port, *a, **k):
        if host not in answers:
            return real(host, port, *a, **k)
        asked[host] = asked.get(host, 0) + 1
        addr = answers[host][min(asked[host], len(answers[host])) - 1]
        return real(addr, port, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def raw(p, data: bytes, shut=False) -> bytes:
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    try:  # (the proxy may answer and close before it has read all of it: then its answer is what counts)
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
            if data.startswith(b"CONNECT") and out.startswith(b"HTTP/1.1 200") and b"\r\n\r\n" in out:
                break  # the tunnel is open
    except ConnectionResetError:
        pass
    s.close()
    return out


@pytest.fixture
def egress_only(tmp_path):
    with proxy.Proxy(tmp_path / "e.sock", None, None, allow=("pypi.org",), tcp=True) as p:
        yield p


@pytest.mark.parametrize("on", [True, False], ids=["protection on", "protection off"])
def test_an_allowed_name_that_resolves_to_loopback_is_refused(egress_only, dns, monkeypatch, on):
    if not on:  # as before: connect to whatever the name resolves to
        monkeypatch.setattr(egress, "resolve", lambda host, port, allow: host)
    site = Site(port=80, body=SECRET)
    dns.update({"internal.pypi.org": [site.addr]})
    plain = raw(egress_only, b"GET http://internal.pypi.org/admin HTTP/1.1\r\nHost: internal.pypi.org\r\n"
                        b"Connection: close\r\n\r\n")
    tunnel = raw(egress_only, b"CONNECT internal.pypi.org:80 HTTP/1.1\r\n\r\n")
    if on:
        assert plain.startswith(b"HTTP/1.1 403") and tunnel.startswith(b"HTTP/1.1 403"), (plain, tunnel)
        assert f"refused: it resolves to {site.addr}, not a public address".encode() in plain
        assert egress_only.refused == [f"GET http://internal.pypi.org (it resolves to {site.addr}, not a public address)",
                                  f"CONNECT internal.pypi.org:80 (it resolves to {site.addr}, not a public address)"]
        assert site.paths == []
    else:  # the attack: a loopback-only service on agentd's host, through an allowlisted name
        assert b"HOST-LOOPBACK-SECRET" in plain and tunnel.startswith(b"HTTP/1.1 200"), (plain, tunnel)
        assert site.paths == ["/admin"]
    site.server.shutdown()


@pytest.mark.parametrize("on", [True, False], ids=["protection on", "protection off"])
def test_the_proxy_connects_to_the_address_it_checked_not_to_the_name_again(tmp_path, dns, monkeypatch, on):
    if not on:  # as before: http.client looks the name up again when it connects
        monkeypatch.setattr(proxy, "_pinned", lambda conn, addr: conn)
    listed, other = Site(port=80, body=SECRET), Site(port=80, body=SECRET)
    dns.update({"rebind.pypi.org": [listed.addr, other.addr]})  # the second answer: an address never checked
    with proxy.Proxy(tmp_path / "e.sock", None, None, allow=("pypi.org", listed.addr), tcp=True) as p:
        out = raw(p, b"GET http://rebind.pypi.org/x HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert b"HOST-LOOPBACK-SECRET" in out, out
    assert (listed.paths, other.paths) == ((["/x"], []) if on else ([], ["/x"]))
    listed.server.shutdown()
    other.server.shutdown()


@pytest.mark.parametrize("on", [True, False], ids=["protection on", "protection off"])
def test_a_name_is_reached_on_ports_80_and_443_only(tmp_path, dns, monkeypatch, on):
    if not on:  # as before: any port
        monkeypatch.setattr(egress, "port_allowed", lambda host, port, allow: True)
    site = Site(body=SECRET)  # a random port: "pypi.org:22"
    dns.update({"git.pypi.org": [site.addr]})
    with proxy.Proxy(tmp_path / "e.sock", None, None, allow=("pypi.org", site.addr), tcp=True) as p:
        tunnel = raw(p, f"CONNECT git.pypi.org:{site.port} HTTP/1.1\r\n\r\n".encode())
        plain = raw(p, f"GET http://git.pypi.org:{site.port}/x HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        by_ip = raw(p, f"GET http://{site.addr}:{site.port}/ip HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
    assert b"HOST-LOOPBACK-SECRET" in by_ip  # an IP listed exactly: any port
    if on:
        assert tunnel.startswith(b"HTTP/1.1 403") and plain.startswith(b"HTTP/1.1 403"), (tunnel, plain)
        assert b"port %d: a name is reached on 80 and 443 only" % site.port in tunnel
        assert site.paths == ["/ip"]
    else:
        assert tunnel.startswith(b"HTTP/1.1 200") and b"HOST-LOOPBACK-SECRET" in plain
        assert site.paths == ["/x", "/ip"]
    site.server.shutdown()


# -- bodies: read only up to the limit, a malformed one answered, never a traceback ------------------------------

@pytest.mark.parametrize("on", [True, False], ids=["protection on", "protection off"])
def test_a_chunk_declared_larger_than_the_limit_is_refused_before_it_is_read(served, monkeypatch, on):
    p, up = served
    up.sent.set()
    if not on:  # no limit: the proxy goes on reading the declared 512 MiB
        monkeypatch.setattr(proxy, "MAX_BODY", 2**40)
    out = raw(p, b"POST /v1/messages HTTP/1.1\r\nx-api-key: run-token\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"20000000\r\n", shut=True)  # one 512 MiB chunk declared (none of it sent: nothing unread)
    if on:
        assert out.startswith(b"HTTP/1.1 413") and b"request body too large" in out, out[:200]
    else:  # the attack: it goes on to read the chunk (here cut short at once), up to 512 MiB
        assert out.startswith(b"HTTP/1.1 400") and b"a chunk cut short" in out, out[:200]
    assert up.headers == []


@pytest.mark.parametrize("on", [True, False], ids=["protection on", "protection off"])
@pytest.mark.parametrize("framing", [b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", b"Transfer-Encoding: chunked\r\n\r\n-1\r\n",
                                     b"Transfer-Encoding: chunked\r\n\r\n0x10\r\n", b"Content-Length: ten\r\n\r\n",
                                     b"Content-Length: -1\r\n\r\n"], ids=["zz", "-1", "0x10", "CL ten", "CL -1"])
def test_a_malformed_body_is_answered_400_and_leaves_no_traceback(served, monkeypatch, capfd, on, framing):
    p, up = served
    up.sent.set()
    if not on:  # as before: sizes parsed by int(), which takes "-1", "0x10" and raises on "ten"
        monkeypatch.setattr(proxy, "chunk_size", lambda line: int(line.split(b";")[0].strip() or b"0", 16))
        monkeypatch.setattr(proxy, "content_length", lambda value: int(value or 0))
    out = raw(p, b"POST /v1/messages HTTP/1.1\r\nx-api-key: run-token\r\n" + framing, shut=True)
    said = re.search(rb"agentd proxy: malformed (Content-Length|chunked body \(a chunk size\))", out)
    if on:
        assert out.startswith(b"HTTP/1.1 400") and said, out[:300]
        assert up.headers == [] and "Traceback" not in capfd.readouterr().err
    else:  # no answer (a ValueError in the handler), or read(-1): the rest of the stream, however long
        assert not said
