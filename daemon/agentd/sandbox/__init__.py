"""What a model drives runs inside: bubblewrap, cgroups, the egress proxy and relay, child processes."""
