"""The task record, its score, and a run's Job and Outcome: below the worklog parse, the queue, the runners and the agent."""
