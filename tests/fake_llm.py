"""A loopback fake LLM server speaking the Anthropic Messages API and OpenAI Chat Completions.

Tests point the real SDKs at it (``ANTHROPIC_BASE_URL=fake.url``,
``base_url: fake.url + "/v1"``) and script it per scenario with a list of
replies, served in order to whichever API asks::

    fake.script(reply(tools=[("shell", {"command": "ls"})]), error(429, retry_after=1),
                finish("done", "listed the files"))

Items: ``reply`` (text and/or tool calls), ``error`` (status, message,
headers), ``sleep`` (answer late), ``garbage`` (a body that is not JSON),
``block`` (hang until ``release()`` or close), or any callable taking the
request dict and returning an item.  Every request is kept in
``fake.requests`` as ``{"path", "headers", "body"}``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def reply(text: str = "", tools=(), usage=(100, 20), cache=(0, 0)) -> dict:
    return {"kind": "reply", "text": text, "tools": list(tools), "usage": usage, "cache": cache}


def finish(status: str = "done", summary: str = "did the thing", **kw) -> dict:
    return reply(tools=[("finish", {"status": status, "summary": summary})], **kw)


def error(status: int, message: str = "fake error", headers: dict | None = None, type: str = "api_error",
          code: str | None = None) -> dict:
    return {"kind": "error", "status": status, "message": message, "headers": headers or {}, "type": type,
            "code": code}


def sleep(seconds: float, then: dict | None = None) -> dict:
    return {"kind": "sleep", "seconds": seconds, "then": then or reply("late")}


def garbage(body: str = "this is not json {", status: int = 200) -> dict:
    return {"kind": "garbage", "body": body, "status": status}


def block() -> dict:
    return {"kind": "block"}


class FakeLLM:
    def __init__(self):
        self.items: list = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.closed = threading.Event()
        self._ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # -- test API ---------------------------------------------------------------
    def script(self, *items) -> "FakeLLM":
        with self.lock:
            self.items = list(items)
        return self

    def add(self, *items) -> None:
        with self.lock:
            self.items.extend(items)

    def release(self) -> None:
        self.released.set()

    def wait_requests(self, n: int, timeout: float = 20) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.requests) >= n:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.closed.set()
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    # -- serving ------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        req = {"path": h.path, "headers": {k.lower(): v for k, v in h.headers.items()}, "body": body}
        with self.lock:
            self.requests.append(req)
            item = self.items.pop(0) if self.items else error(500, "fake: script exhausted")
        api = "anthropic" if h.path.rstrip("/").endswith("/messages") else "openai"
        self._serve(h, api, req, item)

    def _serve(self, h, api: str, req: dict, item) -> None:
        if callable(item):
            item = item(req)
        kind = item["kind"]
        if kind == "sleep":
            if self.closed.wait(item["seconds"]):
                return
            return self._serve(h, api, req, item["then"])
        if kind == "block":
            self.released.wait(60)
            return self._send(h, 500, b'{"error": "released"}', {})
        if kind == "garbage":
            return self._send(h, item["status"], item["body"].encode(), {})
        if kind == "error":
            if api == "anthropic":
                body = {"type": "error", "error": {"type": item["type"], "message": item["message"]}}
            else:
                body = {"error": {"message": item["message"], "type": item["type"], "code": item["code"]}}
            return self._send(h, item["status"], json.dumps(body).encode(), item["headers"])
        body = self._anthropic(req, item) if api == "anthropic" else self._openai(req, item)
        self._send(h, 200, json.dumps(body).encode(), {})

    def _anthropic(self, req: dict, item: dict) -> dict:
        content = [{"type": "text", "text": item["text"]}] if item["text"] else []
        for name, args in item["tools"]:
            content.append({"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": name, "input": args})
        return {"id": f"msg_{next(self._ids)}", "type": "message", "role": "assistant",
                "model": req["body"].get("model", "fake"), "content": content,
                "stop_reason": "tool_use" if item["tools"] else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": item["usage"][0], "output_tokens": item["usage"][1],
                          "cache_read_input_tokens": item["cache"][0],
                          "cache_creation_input_tokens": item["cache"][1]}}

    def _openai(self, req: dict, item: dict) -> dict:
        calls = [{"id": f"call_{next(self._ids)}", "type": "function",
                  "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
                 for name, args in item["tools"]]
        msg = {"role": "assistant", "content": item["text"] or None}
        if calls:
            msg["tool_calls"] = calls
        return {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()),
                "model": req["body"].get("model", "fake"),
                "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if calls else "stop"}],
                "usage": {"prompt_tokens": item["usage"][0] + item["cache"][0],
                          "completion_tokens": item["usage"][1],
                          "total_tokens": sum(item["usage"]) + item["cache"][0],
                          "prompt_tokens_details": {"cached_tokens": item["cache"][0]}}}

    @staticmethod
    def _send(h, status: int, data: bytes, headers: dict) -> None:
        try:
            h.send_response(status)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(data)))
            for k, v in headers.items():
                h.send_header(k, str(v))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def make_config(tmp_path, values: dict | None = None, env: dict | None = None):
    """A Config built the real way (config file + environment) under ``tmp_path``."""
    from agentd import config

    home = tmp_path / "home"
    (home / ".config" / "agentd").mkdir(parents=True, exist_ok=True)
    cfg_file = home / ".config" / "agentd" / "config.yaml"
    cfg_file.write_text(json.dumps({"workspace": str(tmp_path / "ws"), "call_timeout": "5s",
                                    "max_retry_wait": "2s", **(values or {})}))
    import os

    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".local" / "state"),
            "AGENTD_CONFIG": str(cfg_file), "AGENTD_HOST": "testhost", **(env or {})}
    return config.load(full)
