"""An agent run: the loop, its tools, checkpoints, compaction, budget, approvals, and whether agent tasks can run now."""
