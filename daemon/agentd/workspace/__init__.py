"""Where work lands: run directories, workspaces and worktrees, git."""
