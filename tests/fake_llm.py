"""A loopback fake LLM server speaking the Anthropic Messages API, OpenAI Chat Completions and the
OpenAI Responses API, each plain or streamed (SSE) as the request asks.

Tests point the real SDKs at it (``ANTHROPIC_BASE_URL=fake.url``,
``base_url: fake.url + "/v1"``), and the real ``claude`` and ``codex`` CLIs too
(tests/runners/test_cli_contract.py: ``claude -p`` streams ``/v1/messages?beta=true``;
``codex exec`` streams ``/v1/responses``), and script it per scenario with a list of
replies, served in order to whichever API asks::

    fake.script(reply(tools=[("shell", {"command": "ls"})]), error(429, retry_after=1),
                finish("done", "listed the files"))

Items: ``reply`` (text and/or tool calls, and a ``stop`` reason: ``cut`` for one cut at the output
limit), ``error`` (status, message,
headers, or a whole ``body``), ``sleep`` (answer late), ``garbage`` (a body that is not JSON),
``block`` (hang until ``release()`` or close), or any callable taking the
request dict and returning an item.  Every request is kept in
``fake.requests`` as ``{"path", "headers", "body"}`` (``path`` without the query string;
``query`` holds it).  Only POSTs are scripted; a GET (e.g. codex's ``/v1/models``) is
logged in ``fake.gets`` and answered from ``fake.get_replies`` (path -> JSON), else 404.
Set ``fake.log_path`` to append every request as a JSON line (for exploring a client).

Tool calls are ``(name, args)``: for the Messages API ``args`` is the tool's input, for
the Responses API it is JSON-encoded into ``arguments`` (a str is sent as is).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def reply(text: str = "", tools=(), usage=(100, 20), cache=(0, 0), stop: str | None = None,
          headers: dict | None = None) -> dict:
    """``stop``: the stop reason as sent, in place of the usual one (``tool_use``/``end_turn``,
    ``tool_calls``/``stop``); ``"cut"`` is each API's own word for a reply cut at the output limit
    (Messages ``stop_reason: "max_tokens"``, Chat Completions ``finish_reason: "length"``, Responses
    ``status: "incomplete"`` with ``incomplete_details.reason: "max_output_tokens"``).  ``headers``: sent
    with the reply (a subscriber's usage-window headers, say)."""
    return {"kind": "reply", "text": text, "tools": list(tools), "usage": usage, "cache": cache, "stop": stop,
            "headers": headers or {}}


def cut(text: str = "I will now", tools=(), **kw) -> dict:
    """A reply cut off at the output-token limit, as each API says it (see ``reply``'s ``stop``)."""
    return reply(text, tools, stop="cut", **kw)


CUT = {"anthropic": "max_tokens", "openai": "length"}  # the APIs' own words for a cut reply


def _stop(item: dict, api: str, usual: str) -> str:
    stop = item.get("stop")
    return usual if stop is None else CUT[api] if stop == "cut" else stop


def finish(status: str = "done", summary: str = "did the thing", **kw) -> dict:
    return reply(tools=[("finish", {"status": status, "summary": summary})], **kw)


def error(status: int, message: str = "fake error", headers: dict | None = None, type: str = "api_error",
          code: str | None = None, body: dict | None = None) -> dict:
    """An HTTP error; ``body`` replaces the API's usual error body (e.g. codex's usage_limit_reached)."""
    return {"kind": "error", "status": status, "message": message, "headers": headers or {}, "type": type,
            "code": code, "body": body}


def stream_error(message: str = "fake stream error", type: str = "api_error", code: str | None = None,
                 headers: dict | None = None, body: dict | None = None, status: int = 500) -> dict:
    """HTTP 200, then an error event in the stream (SSE ``error`` / ``response.failed``); a request
    that did not ask to stream gets ``error(status, ...)`` instead."""
    return {"kind": "stream_error", "message": message, "type": type, "code": code, "headers": headers or {},
            "body": body, "status": status}


def sleep(seconds: float, then: dict | None = None) -> dict:
    return {"kind": "sleep", "seconds": seconds, "then": then or reply("late")}


def garbage(body: str = "this is not json {", status: int = 200) -> dict:
    return {"kind": "garbage", "body": body, "status": status}


def block() -> dict:
    return {"kind": "block"}


def replay(path) -> dict:
    """The reply a real server sent, as captured (tests/captures/capture_serve.py): a file of its status
    line, headers, blank line and body, sent back as it is (its length counted again: a chunked body
    was captured de-chunked)."""
    return {"kind": "replay", "path": str(path)}


class FakeLLM:
    def __init__(self):
        self.items: list = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.closed = threading.Event()
        self._ids = itertools.count(1)
        self.gets: list[dict] = []
        self.get_replies: dict[str, object] = {}
        self.log_path = None
        self.default = None  # served once the script is exhausted (None: a 500 "script exhausted")
        self.server = loopback_server(self._handle, self._get)
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
    def _log(self, req: dict) -> None:
        if self.log_path:
            with self.lock, open(self.log_path, "a") as f:
                f.write(json.dumps(req) + "\n")

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        path, _, query = h.path.partition("?")
        req = {"method": "GET", "path": path, "query": query, "headers": {k.lower(): v for k, v in h.headers.items()}}
        self.gets.append(req)
        self._log(req)
        if path in self.get_replies:
            return self._send(h, 200, json.dumps(self.get_replies[path]).encode(), {})
        self._send(h, 404, b'{"error": {"message": "not found", "type": "not_found"}}', {})

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length)
        if (h.headers.get("content-encoding") or "").lower() == "zstd":
            raw = _unzstd(raw)
        elif (h.headers.get("content-encoding") or "").lower() == "gzip":
            import gzip
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        path, _, query = h.path.partition("?")
        req = {"path": path, "query": query, "headers": {k.lower(): v for k, v in h.headers.items()}, "body": body}
        self._log({"method": "POST", **req})
        with self.lock:
            self.requests.append(req)
            item = (self.items.pop(0) if self.items else self.default if self.default is not None
                    else error(500, "fake: script exhausted"))
        p = path.rstrip("/")
        api = "anthropic" if p.endswith("/messages") else "responses" if p.endswith("/responses") else "openai"
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
        if kind == "replay":
            return self._send_replay(h, item["path"])
        if kind == "error":
            if item.get("body") is not None:
                body = item["body"]
            elif api == "anthropic":
                body = {"type": "error", "error": {"type": item["type"], "message": item["message"]}}
            else:
                body = {"error": {"message": item["message"], "type": item["type"], "code": item["code"]}}
            return self._send(h, item["status"], json.dumps(body).encode(), item["headers"])
        stream = bool(isinstance(req["body"], dict) and req["body"].get("stream"))
        if kind == "stream_error" and not stream:
            return self._serve(h, api, req, {**item, "kind": "error"})
        if kind == "stream_error":
            return self._send_sse(h, self._stream_error_events(api, req, item), item["headers"])
        extra = item.get("headers") or {}
        if api == "responses":
            resp = self._responses(req, item)
            if stream:
                return self._send_sse(h, self._responses_events(resp), extra)
            return self._send(h, 200, json.dumps(resp).encode(), extra)
        body = self._anthropic(req, item) if api == "anthropic" else self._openai(req, item)
        if stream and api == "anthropic":
            return self._send_sse(h, self._anthropic_events(body), extra)
        if stream:
            return self._send_sse(h, self._openai_chunks(body), extra, done=True)
        self._send(h, 200, json.dumps(body).encode(), extra)

    # -- streaming ---------------------------------------------------------------
    @staticmethod
    def _anthropic_events(msg: dict) -> list[tuple[str | None, dict]]:
        start = {**msg, "content": [], "stop_reason": None,
                 "usage": {**msg["usage"], "output_tokens": 1}}
        ev = [("message_start", {"type": "message_start", "message": start})]
        for i, block in enumerate(msg["content"]):
            if block["type"] == "text":
                ev.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
                ev.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "text_delta", "text": block["text"]}}))
            else:
                ev.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {**block, "input": {}}}))
                ev.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "input_json_delta",
                                                             "partial_json": json.dumps(block["input"])}}))
            ev.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
        ev.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": msg["usage"]["output_tokens"]}}))
        ev.append(("message_stop", {"type": "message_stop"}))
        return ev

    @staticmethod
    def _openai_chunks(body: dict) -> list[tuple[str | None, dict]]:
        msg = body["choices"][0]["message"]
        base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"]}
        delta = {"role": "assistant", "content": msg.get("content") or ""}
        if msg.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(msg["tool_calls"])]
        return [(None, {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
                (None, {**base, "choices": [{"index": 0, "delta": {},
                                             "finish_reason": body["choices"][0]["finish_reason"]}],
                        "usage": body["usage"]})]

    def _responses(self, req: dict, item: dict) -> dict:
        out = []
        for name, args in item["tools"]:
            out.append({"type": "function_call", "id": f"fc_{next(self._ids)}", "call_id": f"call_{next(self._ids)}",
                        "name": name, "arguments": args if isinstance(args, str) else json.dumps(args),
                        "status": "completed"})
        if item["text"]:
            out.append({"type": "message", "id": f"msg_{next(self._ids)}", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": item["text"], "annotations": []}]})
        inp, outp = item["usage"]
        was_cut = item.get("stop") == "cut"
        return {"id": f"resp_{next(self._ids)}", "object": "response", "created_at": int(time.time()),
                "status": "incomplete" if was_cut else "completed",
                **({"incomplete_details": {"reason": "max_output_tokens"}} if was_cut else {}),
                "model": (req["body"] or {}).get("model", "fake"), "output": out,
                "usage": {"input_tokens": inp + item["cache"][0],
                          "input_tokens_details": {"cached_tokens": item["cache"][0]},
                          "output_tokens": outp, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": inp + item["cache"][0] + outp}}

    @staticmethod
    def _responses_events(resp: dict) -> list[tuple[str | None, dict]]:
        pending = {**resp, "status": "in_progress", "output": [], "usage": None}
        ev = [("response.created", {"type": "response.created", "response": pending}),
              ("response.in_progress", {"type": "response.in_progress", "response": pending})]
        for i, it in enumerate(resp["output"]):
            ev.append(("response.output_item.added", {"type": "response.output_item.added", "output_index": i,
                                                      "item": {**it, "status": "in_progress"}}))
            if it["type"] == "message":
                text = it["content"][0]["text"]
                ev.append(("response.output_text.delta", {"type": "response.output_text.delta", "item_id": it["id"],
                                                          "output_index": i, "content_index": 0, "delta": text}))
                ev.append(("response.output_text.done", {"type": "response.output_text.done", "item_id": it["id"],
                                                         "output_index": i, "content_index": 0, "text": text}))
            ev.append(("response.output_item.done", {"type": "response.output_item.done", "output_index": i,
                                                     "item": it}))
        done = "response.incomplete" if resp["status"] == "incomplete" else "response.completed"
        ev.append((done, {"type": done, "response": resp}))
        return ev

    def _stream_error_events(self, api: str, req: dict, item: dict) -> list[tuple[str | None, dict]]:
        if api == "anthropic":
            body = item["body"] or {"type": "error", "error": {"type": item["type"], "message": item["message"]}}
            msg = self._anthropic(req, reply(""))
            return [("message_start", {"type": "message_start", "message": {**msg, "stop_reason": None}}),
                    ("error", body)]
        if api == "responses":
            rid = f"resp_{next(self._ids)}"
            failed = {"id": rid, "object": "response", "status": "failed", "output": [],
                      "error": item["body"] or {"code": item["code"] or item["type"], "message": item["message"]}}
            return [("response.created", {"type": "response.created", "response": {**failed, "status": "in_progress",
                                                                                  "error": None}}),
                    ("response.failed", {"type": "response.failed", "response": failed})]
        return [(None, item["body"] or {"error": {"message": item["message"], "type": item["type"],
                                                  "code": item["code"]}})]

    @staticmethod
    def _send_sse(h, events, headers: dict, done: bool = False) -> None:
        data = b"".join((f"event: {name}\n" if name else "").encode() + b"data: " + json.dumps(e).encode() + b"\n\n"
                        for name, e in events)
        if done:
            data += b"data: [DONE]\n\n"
        FakeLLM._send(h, 200, data, {"content-type": "text/event-stream", "cache-control": "no-cache", **headers})

    def _anthropic(self, req: dict, item: dict) -> dict:
        content = [{"type": "text", "text": item["text"]}] if item["text"] else []
        for name, args in item["tools"]:
            content.append({"type": "tool_use", "id": f"toolu_{next(self._ids)}", "name": name, "input": args})
        return {"id": f"msg_{next(self._ids)}", "type": "message", "role": "assistant",
                "model": req["body"].get("model", "fake"), "content": content,
                "stop_reason": _stop(item, "anthropic", "tool_use" if item["tools"] else "end_turn"),
                "stop_sequence": None,
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
                "choices": [{"index": 0, "message": msg, "finish_reason": _stop(item, "openai", "tool_calls" if calls else "stop")}],
                "usage": {"prompt_tokens": item["usage"][0] + item["cache"][0],
                          "completion_tokens": item["usage"][1],
                          "total_tokens": sum(item["usage"]) + item["cache"][0],
                          "prompt_tokens_details": {"cached_tokens": item["cache"][0]}}}

    @staticmethod
    def _send_replay(h, path: str) -> None:
        with open(path, "rb") as f:
            head, _, data = f.read().partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
        FakeLLM._send(h, int(status.split()[1]), data, headers, as_recorded=True)

    @staticmethod
    def _send(h, status: int, data: bytes, headers: dict, as_recorded: bool = False) -> None:
        """One whole reply: JSON unless ``headers`` say otherwise; ``as_recorded``: exactly the headers given
        (no Server and Date added) and no content-type of ours."""
        try:
            if as_recorded:
                h.send_response_only(status)
            else:
                h.send_response(status)
                headers = {"content-type": "application/json", **headers}
            h.send_header("content-length", str(len(data)))
            for k, v in headers.items():
                h.send_header(k, str(v))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def loopback_server(post, get=None) -> ThreadingHTTPServer:
    """A quiet HTTP/1.1 server on a free loopback port, serving in a daemon thread: each POST (and GET,
    when ``get`` is given; else 501) is handed to ``post(handler)`` / ``get(handler)``."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_POST(self):
            post(self)

        if get is not None:
            def do_GET(self):
                get(self)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _unzstd(raw: bytes) -> bytes:
    try:
        import zstandard  # optional; codex may compress request bodies
    except ImportError:
        return raw
    return zstandard.ZstdDecompressor().decompressobj().decompress(raw)


def make_config(tmp_path, values: dict | None = None, env: dict | None = None):
    """A Config built the real way (config file + environment) under ``tmp_path``."""
    from agentd.config import config

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


def disk_task_job(cfg, run_id: str, run_dir, progress):
    """A runner Job for the agent task "check the disk" (t1), its run row started in the store: how the CLI
    tests run agentd's runner by itself.  Returns (job, store)."""
    from agentd import runners
    from agentd.store.store import Store
    from agentd.tasks.task import Task

    store = Store(cfg.store_path)
    if not store.run(run_id):
        store.start_run(run_id=run_id, task_id="t1", kind="task", title="check the disk", status="running",
                        started_at="2025-01-01T00:00:00Z")
    task = Task(id="t1", title="check the disk", kind="task", priority="normal", status="open", attrs={}, line=3,
                source="worklog", text="- [ ] check the disk #t1")
    return runners.Job(cfg, store, run_id, task, {"disk": "50% used"}, run_dir, progress), store


# -- shared by the approval and attack tests --------------------------------------------------

def env_for(fake, **more) -> dict:
    return {"ANTHROPIC_API_KEY": "sk-ant-test-" + "k" * 24, "ANTHROPIC_BASE_URL": fake.url,
            "AGENTD_CALL_TIMEOUT": "20s", **more}


def ask(kind: str, what: str, why: str = "the report belongs there") -> dict:
    return reply(tools=[("request_approval", {"kind": kind, "what": what, "why": why})])


def approval_id(worklog) -> str:
    ids = re.findall(r"APPROVE: (ap-[0-9a-f]{16})\b", worklog.read_text())
    assert ids, worklog.read_text()
    return ids[-1]


def tool_results(request: dict) -> list[str]:
    """The tool results the model was sent in one Anthropic request."""
    out = []
    for m in request["body"]["messages"]:
        for part in m["content"] if isinstance(m["content"], list) else []:
            if part.get("type") == "tool_result":
                c = part["content"]
                out.append(c if isinstance(c, str) else " ".join(x.get("text", "") for x in c))
    return out


# -- agentd's default layout, for the sandbox tests ----------------------------------------

KEY = "sk-ant-api03-sandboxtest-0123456789abcdefXYZ"


def layout(base: Path, **values) -> "Config":
    """agentd's default layout under ``base`` (outside /tmp, so the private /tmp hides nothing of it):
    config and env file in ~/.config/agentd, state in ~/.local/state/agentd, the workspace inside
    the state dir, the worklog in ~/agentd."""
    home = base / "home"
    state = home / ".local" / "state" / "agentd"
    env = values.pop("_env", {})
    cfg = make_config(base, {"workspace": str(state / "workspace"), **values}, {"ANTHROPIC_API_KEY": KEY, **env})
    for d in (cfg.state_dir, cfg.workspace, cfg.worklog_dir, cfg.tasks_dir):
        d.mkdir(parents=True, exist_ok=True)
    return cfg

