"""``LineError``: a worklog or task-file line that looks like one of agentd's but can't be read."""


class LineError(ValueError):
    pass
