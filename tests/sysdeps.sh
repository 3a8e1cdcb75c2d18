#!/bin/sh
# The system packages the tests need (`make sysdeps`, which `make test` runs first).
#
# Each is checked by the command it gives.  All present: nothing else runs (no apt-get).  Any missing:
# installed with apt-get where this user can (root, or sudo without a password), `apt-get update` first.
# Then, still missing:
#   need  the tests fail without it: stdout gets ONE line naming the package and the command that
#         installs it, and the Makefile stops there with it (exit 0 here, so make can print it as its error);
#   want  its tests skip, saying so: a note on stderr, and the tests go on.
# stdout carries that one line only; everything else goes to stderr.
set -u

# command  packages           need|want   what uses it
DEPS='
bwrap     bubblewrap          need        the agent sandbox (tests/sandbox/test_sandbox.py and every agent test)
faketime  faketime            need        clock jumps (tests/store/test_clock.py)
chromium  chromium            need        headless Chromium for the report page (tests/report/test_page_browser.py)
sbatch    slurm-wlm           need        a one-node Slurm cluster for Slurm tasks (tests/runners/test_slurm.py)
munge     munge               need        munged: authentication for the test Slurm cluster (tests/runners/slurm_cluster.py)
npm       nodejs,npm          want        the pinned claude/codex CLIs (tests/runners/test_cli_contract.py)
'

missing() {  # the packages of the entries whose command is missing; $1: need, want or all
    echo "$DEPS" | while read -r cmd pkgs kind _; do
        [ -n "$cmd" ] || continue
        [ "$1" = all ] || [ "$1" = "$kind" ] || continue
        command -v "$cmd" >/dev/null 2>&1 || echo "$pkgs" | tr , ' '
    done | tr '\n' ' ' | sed 's/ *$//'
}

todo=$(missing all)
[ -n "$todo" ] || exit 0

apt=""
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt="env DEBIAN_FRONTEND=noninteractive apt-get"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        apt="sudo -n env DEBIAN_FRONTEND=noninteractive apt-get"
    fi
fi
if [ -n "$apt" ]; then
    echo "installing what the tests need: $todo" >&2
    # shellcheck disable=SC2086  # $apt and $todo are word lists
    { $apt update -qq && $apt install -y -qq $todo; } >/dev/null 2>&1 \
        || echo "apt-get could not install all of: $todo" >&2
fi

want=$(missing want)
[ -z "$want" ] || echo "note: $want not installed: the tests that need it skip, saying so" >&2

need=$(missing need)
[ -n "$need" ] || exit 0
if [ "$(echo "$need" | wc -w)" -gt 1 ]; then verb=are; else verb=is; fi
if command -v apt-get >/dev/null 2>&1; then
    echo "$need $verb needed by the tests: run \"sudo apt-get install -y $need\" (or see README)"
else
    echo "$need $verb needed by the tests: install it with this system's package manager (see README)"
fi
