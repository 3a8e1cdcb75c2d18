"""The worklog file: its lines, agentd's entries, the parse and its index."""
