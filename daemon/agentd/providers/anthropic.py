"""Anthropic Messages API through the official ``anthropic`` SDK.

The stable prefix (system prompt and tools) carries ``cache_control`` so
repeated turns read it from the prompt cache.  ``ANTHROPIC_BASE_URL`` keeps
working; the SDK is imported on first use.
"""

from __future__ import annotations

import json

from agentd.providers.choice import KEY_VARS
from agentd.errors import AuthFailed
from agentd.providers.base import Message, Provider, Response, ToolCall, ToolSpec, Usage

KEY = KEY_VARS["anthropic"]


class AnthropicProvider(Provider):
    name = "anthropic"
    key_env = KEY

    def __init__(self, cfg, model: str, **kw):
        super().__init__(cfg, model, **kw)
        if not self.env.get(KEY):
            raise AuthFailed(f"auth: {KEY} is not set")
        import anthropic

        self._sdk = anthropic
        self.client = anthropic.Anthropic(api_key=self.env[KEY], base_url=self.env.get("ANTHROPIC_BASE_URL") or None,
                                          max_retries=0, timeout=self.call_timeout)

    def request(self, system: str, messages: list[Message], tools: list[ToolSpec], max_tokens: int) -> dict:
        wire_tools = [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]
        if wire_tools:
            wire_tools[-1]["cache_control"] = {"type": "ephemeral"}
        req = {"model": self.model, "max_tokens": max_tokens,
               "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
               "messages": to_wire(messages)}
        if wire_tools:
            req["tools"] = wire_tools
        return req

    def _once(self, system, messages, tools, max_tokens, timeout) -> Response:
        return self._sdk_call(self.client.messages.create, self.request(system, messages, tools, max_tokens),
                              timeout, from_wire, _message)


def _message(e) -> str:
    body = e.body
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return f"{err.get('type', '')}: {err.get('message', '')}".strip(": ")
    return str(e.message or e)


def to_wire(messages: list[Message]) -> list[dict]:
    """Neutral messages -> Anthropic messages; consecutive same-role turns are merged."""
    out: list[dict] = []
    for m in messages:
        if m.role == "tool":
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": m.call_id,
                                      "content": m.text or "(no output)", "is_error": m.is_error}]
        elif m.role == "assistant":
            role, blocks = "assistant", ([{"type": "text", "text": m.text}] if m.text else [])
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.args} for c in m.tool_calls]
            if not blocks:
                blocks = [{"type": "text", "text": "(empty)"}]
        else:
            role, blocks = "user", [{"type": "text", "text": m.text or "(empty)"}]
        if out and out[-1]["role"] == role:
            out[-1]["content"] += blocks
        else:
            out.append({"role": role, "content": blocks})
    return out


def from_wire(raw) -> Response:
    if not hasattr(raw, "content") or not isinstance(raw.content, list):
        raise ValueError(f"not a Messages API response: {str(raw)[:200]}")
    text, calls = [], []
    for block in raw.content:
        if block.type == "text":
            text.append(block.text)
        elif block.type == "tool_use":
            args = block.input
            calls.append(ToolCall(block.id, block.name, args if isinstance(args, dict) else {},
                                  None if isinstance(args, dict) else f"arguments must be an object: {json.dumps(args)}"))
    u = raw.usage
    usage = Usage(input=u.input_tokens or 0, output=u.output_tokens or 0,
                  cache_read=getattr(u, "cache_read_input_tokens", 0) or 0,
                  cache_write=getattr(u, "cache_creation_input_tokens", 0) or 0)
    return Response("\n".join(text), calls, raw.stop_reason or "", usage, raw=raw.model_dump(mode="json"),
                    model=raw.model or "")
