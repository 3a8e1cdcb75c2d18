"""agentd's loopback proxy for the CLI agents (daemon/agentd/proxy.py), over real sockets: the provider
path adds the real key only for the run's token and streams SSE as it comes; plain HTTP and CONNECT reach
only hosts on the allowlist; the ``network`` attr is checked strictly."""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentd import proxy
from agentd.schema import _network


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
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def served(tmp_path):
    up = Upstream()
    with proxy.Proxy(tmp_path / "p.sock", proxy.Upstream(up.url, {"x-api-key": "REAL-KEY"}), "run-token",
                     allow=("pypi.org", "127.0.0.2"), tcp=True) as p:
        yield p, up
    up.server.shutdown()


def ask(p, method, target, headers=None, body=b"{}"):
    c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    c.request(method, target, body=body, headers=headers or {})
    return c.getresponse()


def test_the_provider_path_swaps_the_run_token_for_the_real_key_and_streams_events_as_they_come(served):
    p, up = served
    r = ask(p, "POST", "/messages?beta=true", {"x-api-key": "run-token", "authorization": "Bearer other"})
    assert r.status == 200
    first = r.read1(100)
    assert b"data: 0" in first and b"data: 1" not in first  # streamed, not buffered whole
    up.sent.set()
    assert b"data: 1" in r.read()
    (h,) = up.headers
    assert h["path"] == "/v1/messages?beta=true" and h["x-api-key"] == "REAL-KEY" and "authorization" not in h


def test_the_provider_path_refuses_a_request_without_the_run_token(served):
    p, up = served
    for headers in ({}, {"x-api-key": "guess"}, {"authorization": "Bearer sk-ant-attackers-own"}):
        r = ask(p, "POST", "/messages", headers)
        assert r.status == 403 and r.read().startswith(b"agentd proxy:")
    assert up.headers == [] and len(p.refused) == 3


@pytest.mark.parametrize("host,ok", [("pypi.org", True), ("files.pypi.org", True), ("PyPI.org.", True),
                                     ("evilpypi.org", False), ("pypi.org.evil.com", False), ("127.0.0.2", True),
                                     ("127.0.0.20", False), ("x.127.0.0.2", False), ("github.com", False)])
def test_the_allowlist_allows_a_listed_name_and_its_subdomains_and_an_ip_only_exactly(host, ok):
    assert proxy.allowed(host, ("pypi.org", "127.0.0.2")) is ok


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
    from agentd import lines

    assert lines.parse_line("- [ ] fetch deps {network: [pypi.org, github.com]}", 3).attrs == {
        "network": ["pypi.org", "github.com"]}
    with pytest.raises(lines.LineError, match="'network': must be true, false or a list of host names"):
        lines.parse_line('- [ ] fetch deps {network: ["https://pypi.org"]}', 3)
