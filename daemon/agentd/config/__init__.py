"""Settings and paths, where a setting came from, the strict schema, the bounded YAML loader, the limit values."""
