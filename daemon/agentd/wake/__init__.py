"""One wake, top to bottom: lock, settle, gates, choose, record the run."""
