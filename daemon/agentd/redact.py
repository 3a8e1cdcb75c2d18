"""Secret redaction for everything agentd writes: worklog, logs, store, run dirs.

Two nets: the values of secret-looking environment variables (any name
containing KEY, TOKEN, SECRET, PASSWORD or CREDENTIAL) that could be a secret
(``could_be_secret``: not a placeholder such as ``ollama``, ``anything`` or
``sk-no-key-required``), and well-known key shapes (sk-..., sk-ant-...,
Bearer ..., ghp_..., github_pat_..., glpat-..., hf_..., a URL's ``user:password@``).  Both are replaced by ``[REDACTED]``.
"""

from __future__ import annotations

import os
import re

MASK = "[REDACTED]"
# agentd's own LLM credentials: kept out of the environment of everything agentd starts
LLM_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_AUTH_TOKEN")
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.I)
# A key's prefix starts a word: ``task-benchmark-suite-run``, ``flask-app-restarted``, ``shelf_...`` are not
# keys (the lookbehind keeps ``sk-``, ``hf_``, ... from matching inside ordinary ids and output).
_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-ant-[A-Za-z0-9_\-]{8,}"
    r"|sk-(?:proj-)?[A-Za-z0-9_\-]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|xox[baprs]-[A-Za-z0-9\-]{10,}"
    r"|hf_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_\-]{20,})"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{16,}"
    r"|(?<=://)[^/\s:@]{1,256}:[^/\s@]{1,256}(?=@)"  # a URL's user:password (postgres://u:pass@host)
)


_WORDS_ONLY = re.compile(r"[A-Za-z_. \-]*")  # letters and separators: no digit, no other symbol
_INNER_CAPITAL = re.compile(r"(?<=[a-z])[A-Z]")


def could_be_secret(value: str) -> bool:
    """Whether a secret variable's value is worth redacting wherever it appears.  Local servers take
    any key, so people set placeholders (``ollama``, ``anything``, ``not-needed``, ``EMPTY``,
    ``sk-no-key-required``), and redacting those would erase ordinary words from agentd's own
    messages.  A value is redacted when it has 8 or more characters and either has 20 or more, or
    holds a digit or a symbol other than ``-``, ``_``, ``.`` and space, or has two or more capitals
    right after a small letter (``aBcDeF``, not ``Anything`` or ``NotNeeded``).  A real key (random
    letters and digits) passes; a word or words do not."""
    value = value.strip()
    if len(value) < 8:
        return False
    return (len(value) >= 20 or not _WORDS_ONLY.fullmatch(value)
            or len(_INNER_CAPITAL.findall(value)) >= 2)


def secret_values(env: dict | None = None) -> list[str]:
    env = os.environ if env is None else env
    vals = {v for k, v in env.items() if _SECRET_NAME.search(k) and isinstance(v, str) and could_be_secret(v)}
    return sorted(vals, key=len, reverse=True)


def redact(text: str, env: dict | None = None, secrets: list | None = None) -> str:
    """``text`` with every secret value of ``env`` (``secrets``, when the caller worked them out once)
    and every key-shaped string masked."""
    if not text:
        return text
    for v in secret_values(env) if secrets is None else secrets:
        if v in text:
            text = text.replace(v, MASK)
    return _SHAPES.sub(MASK, text)


def scrubbed_env(env: dict | None = None, names=(), values=()) -> dict[str, str]:
    """A copy of the environment without secrets (for child processes): no variable with a
    secret-looking name or one of ``names``, none whose value has a key's shape (sk-..., ghp_...) or
    holds the value of a secret-named variable or one of ``values`` (a key copied under another name)."""
    env = dict(os.environ if env is None else env)
    held = [*secret_values(env), *(v for v in values if isinstance(v, str) and could_be_secret(v))]
    return {k: v for k, v in env.items() if not _SECRET_NAME.search(k) and k not in names
            and not _SHAPES.search(v) and not any(s in v for s in held)}


def without_llm_keys(env: dict) -> dict[str, str]:
    """The environment for commands a person configured: theirs, minus agentd's LLM keys."""
    return {k: v for k, v in env.items() if k not in LLM_KEYS}


def redact_file(path, env: dict | None = None) -> None:
    """Redact a file agentd wrote (captured output) in place, line by line."""
    secrets = secret_values(env)
    tmp = f"{path}.redacting"
    changed = False
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for raw in src:
            text = raw.decode("utf-8", "surrogateescape")
            clean = (redact(text, env, secrets) if (secrets or "sk-" in text or "earer" in text or "_" in text
                                          or "glpat-" in text or "://" in text) else text)
            changed |= clean != text
            dst.write(clean.encode("utf-8", "surrogateescape"))
    if changed:
        os.replace(tmp, path)
    else:
        os.unlink(tmp)
