"""LLM providers behind one small interface.

The conversation is kept provider-neutral in our own dataclasses
(``Message``, ``ToolCall``); each provider module converts it to its wire
format and back.  A provider does one thing::

    Provider.complete(system, messages, tools, max_tokens) -> Response

and raises only ``ProviderError`` subclasses (``errors.py``).  Retries are
agentd's own (the SDKs get ``max_retries=0``): bounded attempts, an overall
deadline per call (``call_timeout``) and a cap on honoured retry-after waits
(``max_retry_wait``; a longer one is raised at once as ``RateLimited`` so the
run is deferred rather than left waiting).

The SDKs are imported inside the provider modules' functions only: they take
a second or two to import and most agentd commands never need them.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from agentd.errors import (AuthFailed, ContextOverflow, ProviderDown, ProviderError, RateLimited,
                           UsageLimit)

DEFAULT_MODELS = {
    "anthropic": "claude-sonnet-4-6",
    "openai": "gpt-4.1",
}  # claude-cli and codex-cli use their own default unless model/models names one

# USD per million tokens.  Config ``prices`` overrides or extends this table.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "claude-opus-4-1": {"input": 15, "output": 75, "cache_read": 1.5, "cache_write": 18.75},
    "claude-opus-4-5": {"input": 5, "output": 25, "cache_read": 0.5, "cache_write": 6.25},
    "claude-opus-4-6": {"input": 5, "output": 25, "cache_read": 0.5, "cache_write": 6.25},
    "claude-sonnet-4-6": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
    "claude-sonnet-4-5": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
    "claude-sonnet-4-0": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75},
    "claude-haiku-4-5": {"input": 1, "output": 5, "cache_read": 0.1, "cache_write": 1.25},
    "gpt-5": {"input": 1.25, "output": 10, "cache_read": 0.125},
    "gpt-5-mini": {"input": 0.25, "output": 2, "cache_read": 0.025},
    "gpt-4.1": {"input": 2, "output": 8, "cache_read": 0.5},
    "gpt-4.1-mini": {"input": 0.4, "output": 1.6, "cache_read": 0.1},
    "gpt-4o": {"input": 2.5, "output": 10, "cache_read": 1.25},
    "gpt-4o-mini": {"input": 0.15, "output": 0.6, "cache_read": 0.075},
}

# Context window in tokens, matched by model-name prefix (longest first).
# A ``context`` entry under the model in config ``prices`` overrides it.
CONTEXT_WINDOWS = {
    "claude-": 200_000,
    "gpt-4.1": 1_000_000,
    "gpt-5": 400_000,
    "gpt-4o": 128_000,
    "o3": 200_000,
    "o4": 200_000,
}
DEFAULT_CONTEXT = 32_000  # unknown (local) models: be conservative

MAX_ATTEMPTS = 4


@dataclass
class ToolCall:
    id: str
    name: str
    args: dict
    error: str | None = None  # set when the model sent arguments that are not a JSON object


@dataclass
class Message:
    role: str  # user | assistant | tool
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    call_id: str | None = None  # role == tool: the call this answers
    is_error: bool = False


@dataclass
class ToolSpec:
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments


@dataclass
class Usage:
    input: int = 0  # uncached prompt tokens
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def prompt(self) -> int:
        return self.input + self.cache_read + self.cache_write

    @property
    def total(self) -> int:
        return self.prompt + self.output


@dataclass
class Response:
    text: str
    tool_calls: list[ToolCall]
    stop_reason: str
    usage: Usage
    raw: Any = None
    model: str = ""


class Provider:
    """Base class: subclasses implement ``_once``; ``complete`` adds the retry policy."""

    name = "?"
    key_env: str | None = None

    def __init__(self, cfg, model: str, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.model = model
        self.env = dict(cfg.env)
        self.call_timeout = cfg.duration("call_timeout")
        self.max_retry_wait = cfg.duration("max_retry_wait")
        self.sleep, self.clock = sleep, clock  # tests give both, so no test waits or reads the wall clock
        self.attempts = 0  # of the last complete() call

    def _once(self, system: str, messages: list[Message], tools: list[ToolSpec], max_tokens: int,
              timeout: float) -> Response:
        raise NotImplementedError

    def _sdk_call(self, create, req: dict, timeout: float, from_wire, message) -> Response:
        """One SDK request, its failures mapped to the errors that decide the run (both SDKs raise the
        same classes).  ``message(e)`` reads an error body; ``from_wire`` the response."""
        sdk = self._sdk
        try:
            return from_wire(create(**req, timeout=timeout))
        except sdk.APIStatusError as e:
            raise classify(e.status_code, e.response.headers, message(e), self.key_env, self.name) from None
        except (sdk.APITimeoutError, sdk.APIConnectionError) as e:
            at = public_url(self.client.base_url)  # a local server's address is the first thing to check
            raise ProviderDown(f"provider down ({self.name} at {at}): {type(e).__name__}: {e}") from None
        except (sdk.APIError, ValueError, KeyError, AttributeError, TypeError, IndexError) as e:
            raise ProviderDown(f"provider down ({self.name}): malformed response: {type(e).__name__}: {e}") from None

    def complete(self, system: str, messages: list[Message], tools: list[ToolSpec], max_tokens: int = 4096,
                 deadline: float | None = None) -> Response:
        """One model call, with bounded retries, ending by ``deadline`` (monotonic) or call_timeout."""
        end = self.clock() + self.call_timeout
        if deadline is not None:
            end = min(end, deadline)
        self.attempts = 0
        last: ProviderError | None = None
        while True:
            self.attempts += 1
            remaining = end - self.clock()
            if remaining <= 0.05:
                raise last or ProviderDown(f"{self.name}: no answer within call_timeout")
            try:
                return self._once(system, messages, tools, max_tokens, timeout=remaining)
            except (RateLimited, ProviderDown) as e:
                last = e
                wait = getattr(e, "retry_after", None)
                if wait is not None and wait > self.max_retry_wait:
                    raise  # too long to wait: the run is deferred
                if wait is None:
                    wait = _backoff(self.attempts)
                if self.attempts >= MAX_ATTEMPTS or self.clock() + wait >= end:
                    raise
            self.sleep(wait)


def _backoff(attempt: int) -> float:
    return min(0.5 * 2 ** (attempt - 1), 8.0) * (0.75 + random.random() / 2)


# -- shared error classification ----------------------------------------------

def retry_after(headers) -> float | None:
    """Seconds from retry-after-ms / retry-after (seconds or HTTP date), or None."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


_RESET_HEADERS = ("anthropic-ratelimit-unified-reset", "anthropic-ratelimit-tokens-reset",
                  "anthropic-ratelimit-requests-reset", "x-ratelimit-reset")
_OVERFLOW = ("prompt is too long", "context_length_exceeded", "maximum context length",
             "context window", "too many tokens", "input is too long")


def public_url(url) -> str:
    """A server's address fit to print: as given (mistakes such as a missing scheme included), less
    a user and password, a query and a fragment, where keys sometimes travel."""
    text = str(url).strip()
    scheme, sep, rest = text.partition("://")
    if not sep or any(c in scheme for c in "/?#@"):  # no scheme, or "://" only inside a query
        scheme, sep, rest = "", "", text
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, tail = rest[:cut], rest[cut:]
    if "@" in tail:  # after a "?" or "#": a query, or a user or password holding "?" or "#"; don't guess
        return f"{scheme}{sep}(an address with a user or password in it)"
    return f"{scheme}{sep}{head.rpartition('@')[2]}"  # less a user and password, even one holding "/" or "@"


def classify(status: int | None, headers, message: str, key_env: str | None, provider: str) -> ProviderError:
    """Map an HTTP failure to the ProviderError that decides the run's fate."""
    low = (message or "").lower()
    where = f"{provider} {status}" if status else provider
    if status in (401, 403):
        key = key_env or "the API key"
        return AuthFailed(f"auth: {key} refused ({where}: {message[:200]})")
    if status == 413 or (status in (400, 422) and any(s in low for s in _OVERFLOW)):
        return ContextOverflow(f"context overflow ({where}): {message[:200]}")
    if status == 429 and ("insufficient_quota" in low or "usage limit" in low or "quota" in low):
        reset = None
        for h in _RESET_HEADERS:
            if headers is not None and headers.get(h):
                reset = headers.get(h)
                break
        return UsageLimit(f"usage limit ({where}): {message[:200]}", reset_at=_iso(reset))
    if status in (429, 529) or "overloaded" in low:
        return RateLimited(f"rate limited ({where}): {message[:200]}", retry_after=retry_after(headers))
    if status is None or status >= 500 or status == 408:
        return ProviderDown(f"provider down ({where}): {message[:200]}")
    return ProviderError(f"{where}: {message[:300]}")


def _iso(value) -> str | None:
    """A reset header (epoch seconds or RFC 3339) as UTC ISO, or None."""
    if not value:
        return None
    try:
        t = float(value)
        from agentd.times import iso

        return iso(t)
    except (TypeError, ValueError):
        return str(value)


# -- choosing a provider ---------------------------------------------------------

def resolve_provider_name(cfg, name: str | None = None) -> str:
    """The configured provider with ``auto`` resolved (``backends.chosen``)."""
    from agentd.backends import chosen

    return chosen(cfg, name)


def model_for(cfg, name: str, primary: bool = True) -> str:
    """``model`` applies to the primary provider; ``models`` maps provider -> model."""
    if primary and cfg["model"]:
        return cfg["model"]
    return (cfg["models"] or {}).get(name) or DEFAULT_MODELS.get(name, "")


def prices_for(cfg, model: str) -> dict[str, float]:
    table = {**DEFAULT_PRICES, **(cfg["prices"] or {})}
    return dict(table.get(model) or {})


def cost_usd(cfg, model: str, usage: Usage) -> float:
    p = prices_for(cfg, model)
    inp = float(p.get("input", 0))
    return (usage.input * inp + usage.output * float(p.get("output", 0))
            + usage.cache_read * float(p.get("cache_read", inp))
            + usage.cache_write * float(p.get("cache_write", inp))) / 1e6


def context_window(cfg, model: str) -> int:
    override = prices_for(cfg, model).get("context")
    if override:
        return int(override)
    for prefix in sorted(CONTEXT_WINDOWS, key=len, reverse=True):
        if model.startswith(prefix):
            return CONTEXT_WINDOWS[prefix]
    return DEFAULT_CONTEXT


def make_provider(cfg, name: str | None = None, model: str | None = None, primary: bool = True) -> Provider:
    """The Provider for ``name`` (default: config ``provider``, ``auto`` resolved).

    Raises AuthFailed when the provider's key is missing; ProviderError for
    ``none``.  CLI providers (claude-cli, codex-cli) are not chat providers:
    see ``runners.cli_agent``.
    """
    name = resolve_provider_name(cfg, name)
    model = model or model_for(cfg, name, primary)
    if name == "anthropic":
        from agentd.providers.anthropic import AnthropicProvider
        return AnthropicProvider(cfg, model)
    if name == "openai":
        from agentd.providers.openai import OpenAIProvider
        return OpenAIProvider(cfg, model)
    if name == "none":
        raise AuthFailed("no LLM provider: set ANTHROPIC_API_KEY or OPENAI_API_KEY, or provider in config")
    raise ProviderError(f"{name} is a CLI agent, not a chat provider")



