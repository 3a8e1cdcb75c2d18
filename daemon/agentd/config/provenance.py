"""Where a setting's value came from, said as a person would look for it: an ``AGENTD_<KEY>``
environment variable, the env file (``<config_dir>/env``, which fills in what the environment does not
set), or the config file.  Light on imports: ``agentd status`` says it."""

from __future__ import annotations

from agentd.config.config import read_env_file


def set_by(cfg, key: str) -> str:
    """``AGENTD_SANDBOX=off in the environment``, ``AGENTD_SANDBOX=off in ~/.config/agentd/env`` or
    ``\\`sandbox: off\\` in ~/.config/agentd/config.yaml`` (config.load lets the environment win)."""
    name = f"AGENTD_{key.upper()}"
    value = (cfg.env.get(name) or "").strip()
    if not value:
        return f"`{key}: {cfg.values.get(key)}` in {cfg.config_file}"
    env_file = cfg.config_dir / "env"
    if read_env_file(env_file).get(name, "").strip() == value:
        return f"{name}={value} in {env_file}"
    return f"{name}={value} in the environment"


def sandbox_off_by(cfg) -> str | None:
    """Where ``sandbox: off`` came from, or None when the sandbox is not off."""
    return set_by(cfg, "sandbox") if (cfg.values.get("sandbox") or "bwrap") == "off" else None
