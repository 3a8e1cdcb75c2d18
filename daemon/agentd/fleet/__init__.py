"""The fleet: hosts whose worklog dirs are clones of one git repository (docs/fleet.md).

``repo`` holds every git call on the clone and the primitives (fetch, merge, commit this host's worklog,
push with its outcome, the other hosts' worklogs); ``sync`` pulls, commits and pushes for a wake or
`agentd sync`, and turns every fault into a warning; ``setup`` makes the clone (`agentd fleet init|join`);
``state`` keeps what the last sync saw in ``<state_dir>/fleet.json``.
"""
