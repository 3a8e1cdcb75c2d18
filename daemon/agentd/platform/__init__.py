"""The host: systemd and its units, logs, notifications, the health snapshot."""
