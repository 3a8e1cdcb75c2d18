"""Which chat API or CLI agent tasks use: the one place the choice is made, and the key each API reads."""

from __future__ import annotations

KEY_VARS = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}  # the key each chat API reads
CLI_EXES = {"claude-cli": "claude", "codex-cli": "codex"}


def chosen(cfg, name: str | None = None) -> str:
    """The provider agent tasks use (config ``provider``, or ``name``), with ``auto`` resolved from the
    keys set: anthropic, else openai, else none.  The one place the choice is made."""
    name = name or cfg["provider"]
    if name != "auto":
        return name
    env = cfg.env
    return "anthropic" if env.get(KEY_VARS["anthropic"]) else "openai" if env.get(KEY_VARS["openai"]) else "none"
