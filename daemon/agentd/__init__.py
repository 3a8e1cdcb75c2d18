"""agentd: a per-host agent daemon that works through a plain-text worklog."""

__version__ = "0.1.0"
