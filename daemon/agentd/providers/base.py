"""What every chat provider shares: the provider-neutral conversation (``Message``, ``ToolCall``,
``ToolSpec``, ``Usage``, ``Response``), the ``Provider`` base class with agentd's retry policy,
and the mapping of HTTP failures to the errors that decide a run (``classify``)."""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any, Callable

from agentd.errors import (AuthFailed, ContextOverflow, ProviderDown, ProviderError, RateLimited,
                           UsageLimit)
from agentd.recordtype import Factory, Record
from agentd.times import iso, parse

MAX_ATTEMPTS = 4


class ToolCall(Record):
    id: str
    name: str
    args: dict
    error: str | None = None  # set when the model sent arguments that are not a JSON object


class Message(Record):
    role: str  # user | assistant | tool
    text: str = ""
    tool_calls: list[ToolCall] = Factory(list)
    call_id: str | None = None  # role == tool: the call this answers
    is_error: bool = False


class ToolSpec(Record):
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments


class Usage(Record):
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


# The APIs' stop reasons for a reply cut off at the output-token limit: Chat Completions'
# ``finish_reason: "length"`` (OpenAI and the servers that speak it), the Messages API's
# ``stop_reason: "max_tokens"``.  Such a reply is incomplete, whatever it says.
CUT_REASONS = ("length", "max_tokens")


class Response(Record):
    text: str
    tool_calls: list[ToolCall]
    stop_reason: str  # as the API sent it ("" when it sent none)
    usage: Usage
    raw: Any = None
    model: str = ""

    @property
    def cut(self) -> bool:
        """The reply stopped at the output-token limit, not where the model ended it."""
        return self.stop_reason in CUT_REASONS


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
             "context window", "too many tokens", "input is too long",
             "context size", "exceed_context_size")  # llama.cpp's server: a 400, or from older builds a 500


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


MESSAGE_LIMIT = 2000  # characters of a provider's error message kept in a reason

# A 500 whose message says the request itself is wrong: llama.cpp's server answers 500 to a request
# it cannot read ("Expected 'content' to be a string or an array", "[json.exception.type_error.302]
# type must be string, but is null", a chat template's raise_exception), as do some Python servers
# to a validation error.  Sending it again gets the same answer, so it is not retried.
_INVALID = ("invalid", "validation", "unsupported", "not supported", "json.exception", "failed to parse",
            "expected '", "must be a", "must be string", "must alternate", "is required", "missing required",
            "unrecognized", "unexpected keyword", "extra inputs are not permitted", "raise_exception")


def clip(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` cut to about ``limit`` characters, keeping its head and its tail (where servers put
    the cause), with what was cut out said."""
    message = message or ""
    if len(message) <= limit:
        return message
    half = limit // 2
    return f"{message[:half]} [... {len(message) - 2 * half} characters cut ...] {message[-half:]}"


def invalid_request(status: int | None, message: str) -> bool:
    """A 500 that is really a refused request (see ``_INVALID``).  Only a 500: a 502 or 504 speaks of
    a server behind a proxy, a 503 of one loading or busy, and those are worth another try."""
    low = (message or "").lower()
    return status == 500 and any(s in low for s in _INVALID)


def classify(status: int | None, headers, message: str, key_env: str | None, provider: str) -> ProviderError:
    """Map an HTTP failure to the ProviderError that decides the run's fate.  The provider's message
    is kept whole up to ``MESSAGE_LIMIT`` characters, and past that its head and its tail."""
    message = clip(message)
    low = message.lower()
    where = f"{provider} {status}" if status else provider
    if status in (401, 403):
        key = key_env or "the API key"
        return AuthFailed(f"auth: {key} refused ({where}: {message})")
    if status == 413 or (status in (400, 422, 500) and any(s in low for s in _OVERFLOW)):
        return ContextOverflow(f"context overflow ({where}): {message}")
    if status == 429 and ("insufficient_quota" in low or "usage limit" in low or "quota" in low):
        reset = None
        for h in _RESET_HEADERS:
            if headers is not None and headers.get(h):
                reset = headers.get(h)
                break
        return UsageLimit(f"usage limit ({where}): {message}", reset_at=_iso(reset))
    if status in (429, 529) or "overloaded" in low:
        return RateLimited(f"rate limited ({where}): {message}", retry_after=retry_after(headers))
    if invalid_request(status, message):
        return ProviderError(f"request refused ({where}, not retried): {message}")
    if status is None or status >= 500 or status == 408:
        return ProviderDown(f"provider down ({where}): {message}")
    return ProviderError(f"{where}: {message}")


MAX_RESET_AHEAD = 31 * 86400  # a reset further away than this is not believed


def _iso(value, now: float | None = None) -> str | None:
    """A reset header (epoch seconds or an ISO time) as UTC ISO, or None when it is not a time that
    is still to come within a month (a server's garbage must not park a run for years)."""
    if not value:
        return None
    text = str(value).strip()[:64]
    try:
        t = float(text)
    except ValueError:
        t = parse(text)
    now = time.time() if now is None else now
    if t is None or t != t or not now < t <= now + MAX_RESET_AHEAD:  # NaN, past, or too far
        return None
    return iso(t)
