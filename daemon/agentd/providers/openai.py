"""OpenAI Chat Completions through the official ``openai`` SDK.

Also the way to local OpenAI-compatible servers (Ollama, vLLM, llama.cpp):
set config ``base_url`` (or ``OPENAI_BASE_URL``).  With a base URL and no
``OPENAI_API_KEY`` a placeholder key is sent, since local servers ignore it.
"""

from __future__ import annotations

import json

from agentd.providers.choice import KEY_VARS
from agentd.errors import AuthFailed
from agentd.providers.base import Message, Provider, Response, ToolCall, ToolSpec, Usage

KEY = KEY_VARS["openai"]


class OpenAIProvider(Provider):
    name = "openai"
    key_env = KEY

    def __init__(self, cfg, model: str, **kw):
        super().__init__(cfg, model, **kw)
        self.base_url = cfg["base_url"] or self.env.get("OPENAI_BASE_URL") or None
        key = self.env.get(KEY) or ("not-needed" if self.base_url else None)
        if not key:
            raise AuthFailed(f"auth: {KEY} is not set")
        import openai

        self._sdk = openai
        self.client = openai.OpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=self.call_timeout)

    def request(self, system: str, messages: list[Message], tools: list[ToolSpec], max_tokens: int) -> dict:
        req = {"model": self.model, "messages": [{"role": "system", "content": system}, *to_wire(messages)]}
        # api.openai.com wants max_completion_tokens; local servers know max_tokens.
        req["max_tokens" if self.base_url and "api.openai.com" not in self.base_url
            else "max_completion_tokens"] = max_tokens
        if tools:
            req["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                              "parameters": t.parameters}} for t in tools]
            # The API's default, said out loud: llama.cpp's server ignores the tools without it.
            req["tool_choice"] = "auto"
        return req

    def _once(self, system, messages, tools, max_tokens, timeout) -> Response:
        return self._sdk_call(self.client.chat.completions.create,
                              self.request(system, messages, tools, max_tokens), timeout, from_wire, _message)


def _message(e) -> str:
    """The error's code and message, from OpenAI's body (``{"error": {...}}``), vLLM's (the error at the
    top level), Ollama's (``{"error": "..."}``), or whatever else a server sends (all of it)."""
    body = e.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            text = " ".join(str(err.get(k) or "") for k in ("code", "message")).strip()
            if text:
                return text
        elif isinstance(err, str) and err.strip():
            return err.strip()
        return json.dumps(body, ensure_ascii=False)
    if isinstance(body, str) and body.strip():
        return body.strip()
    return str(e.message or e)


def to_wire(messages: list[Message]) -> list[dict]:
    out: list[dict] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.call_id, "content": m.text or "(no output)"})
        elif m.role == "assistant":
            # "" and never null: llama.cpp's server answers 500 to a null content, even beside tool_calls
            msg: dict = {"role": "assistant", "content": m.text or ""}
            if m.tool_calls:
                msg["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": json.dumps(c.args)}}
                                     for c in m.tool_calls]
            out.append(msg)
        else:
            out.append({"role": "user", "content": m.text or "(empty)"})
    return out


def from_wire(raw) -> Response:
    if not getattr(raw, "choices", None):
        raise ValueError(f"not a chat completion: {str(raw)[:200]}")
    choice = raw.choices[0]
    msg = choice.message
    calls = []
    for c in msg.tool_calls or []:
        fn = getattr(c, "function", None)
        if fn is None:
            continue
        try:
            args = json.loads(fn.arguments or "{}")
            err = None if isinstance(args, dict) else "arguments must be a JSON object"
        except json.JSONDecodeError as e:
            args, err = {}, f"arguments are not valid JSON ({e}): {fn.arguments[:200]}"
        calls.append(ToolCall(c.id, fn.name, args if isinstance(args, dict) else {}, err))
    u = raw.usage
    usage = Usage()
    if u is not None:
        details = getattr(u, "prompt_tokens_details", None)
        cached = (getattr(details, "cached_tokens", 0) or 0) if details else 0
        usage = Usage(input=(u.prompt_tokens or 0) - cached, output=u.completion_tokens or 0, cache_read=cached)
    return Response(msg.content or "", calls, choice.finish_reason or "", usage,
                    raw=raw.model_dump(mode="json"), model=raw.model or "")
