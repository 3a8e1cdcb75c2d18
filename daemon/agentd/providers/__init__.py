"""LLM providers behind one small interface.

The conversation is kept provider-neutral in our own records
(``Message``, ``ToolCall``: ``recordtype.Record``); each provider module converts it to its wire
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

from agentd.errors import AuthFailed, ProviderError
from agentd.providers.choice import chosen

TYPE_CHECKING = False  # (not ``typing``'s: importing typing costs ~3 ms on the CLI's start-up path)
if TYPE_CHECKING:
    from agentd.providers.base import Provider, Usage

# base's names, also importable from here; imported on first use, so that reading which provider is
# chosen (``providers.choice``, on the CLI's start-up path) leaves base's
# imports (email.utils, random) out
_BASE = {"CUT_REASONS", "Message", "Provider", "Response", "ToolCall", "ToolSpec", "Usage", "classify",
         "public_url", "retry_after"}


def __getattr__(name: str):
    if name in _BASE:
        # lazy: the SDK-facing base (email.utils, random) only when a name of it is asked for
        from agentd.providers import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
    # the CLIs' default models (claude-code 2.1.332, codex 0.171.0); list prices from the vendors' model pages
    "claude-opus-5-5": {"input": 4, "output": 20, "cache_read": 0.2, "cache_write": 5},
    "gpt-6.2-sol": {"input": 2, "output": 10, "cache_read": 0.1, "cache_write": 2.5},
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

# -- choosing a provider ---------------------------------------------------------

def resolve_provider_name(cfg, name: str | None = None) -> str:
    """The configured provider with ``auto`` resolved (``choice.chosen``)."""
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
        # lazy: the provider module (and its SDK) only when it is used
        from agentd.providers.anthropic import AnthropicProvider
        return AnthropicProvider(cfg, model)
    if name == "openai":
        # lazy: the provider module (and its SDK) only when it is used
        from agentd.providers.openai import OpenAIProvider
        return OpenAIProvider(cfg, model)
    if name == "none":
        raise AuthFailed("no LLM provider: set ANTHROPIC_API_KEY or OPENAI_API_KEY, or provider in config")
    raise ProviderError(f"{name} is a CLI agent, not a chat provider")



