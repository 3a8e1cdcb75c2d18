"""Every known task's status, eligibility and order."""
