# agentd: the two set-up commands are `make run` and `make test`.
# TORCH picks the torch build; the default is the CPU wheel this project is tested with.
# A CUDA or Jetson box can use e.g. `make run TORCH=torch` or TORCH= (skip torch entirely).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
TRANSFORMERS ?= transformers
STAMP  := $(VENV)/.installed

.PHONY: install run test bench soak clean cli-deps sysdeps

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' $(TORCH) $(if $(TORCH),$(TRANSFORMERS))
	touch $(STAMP)

# The main job on an embedded default: two wakes over a scratch copy of the demo
# worklog, with its own scratch HOME. It needs no API key and changes no tracked file.
run: install
	@scratch=$$(mktemp -d "$${TMPDIR:-/tmp}/agentd-demo.XXXXXX"); \
	cp worklogs/demo_worklog.txt "$$scratch/demo_worklog.txt"; \
	echo "demo worklog: $$scratch/demo_worklog.txt"; \
	export HOME="$$scratch/home" XDG_CONFIG_HOME="$$scratch/home/.config" \
	       XDG_STATE_HOME="$$scratch/home/.local/state" AGENTD_HOST=demo \
	       AGENTD_WORKLOG_DIR="$$scratch" AGENTD_PROVIDER=none HF_HUB_OFFLINE=1; \
	$(BIN)/agentd queue && echo && $(BIN)/agentd wake --now && echo && $(BIN)/agentd wake --now; rc=$$?; \
	echo; echo "--- what the two wakes appended to $$scratch/demo_worklog.txt ---"; \
	sed -n '/^=== agentd entry/,$$p' "$$scratch/demo_worklog.txt"; \
	echo; $(BIN)/agentd runs; echo; $(BIN)/agentd status; exit $$rc

test: sysdeps install cli-deps
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# The system packages the tests need (bubblewrap, faketime, chromium; nodejs+npm where it can), listed in
# tests/sysdeps.sh: installed with apt-get where this user can (root, or sudo without a password).
# One that is needed and still missing stops make at once, with one line naming it and the command.
# All present: no apt-get runs. `make -n` runs nothing. `make run` needs none of them.
sysdeps:
ifeq (,$(findstring n,$(firstword -$(MAKEFLAGS))))
	$(eval SYSDEPS_MISSING := $(shell sh tests/sysdeps.sh))
	$(if $(SYSDEPS_MISSING),$(error $(SYSDEPS_MISSING)))
endif
	@:

# The real claude and codex CLIs that tests/runners/test_cli_contract.py runs, pinned in tests/agent_clis/package.json.
# Without npm their tests skip, saying so.
CLI_STAMP := tests/agent_clis/node_modules/.installed
cli-deps: $(CLI_STAMP)

$(CLI_STAMP): tests/agent_clis/package.json tests/agent_clis/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd tests/agent_clis && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: skipping the real claude/codex CLIs (their contract tests will skip)"; fi

# bench/scale.py: the queue with SCALE_TASKS tasks (first read, warm, one line appended), whose
# scores repeat, then with each task scoring differently.
SCALE_TASKS ?= 10000
# Byte-compile first: an editable install's modules are otherwise compiled on every run
# wherever PYTHONDONTWRITEBYTECODE is set, which would be measured as agentd's start-up.
bench: install
	$(BIN)/python -m compileall -q daemon/agentd
	$(BIN)/python bench/bench.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/scale.py $(SCALE_TASKS)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/scale.py --distinct $(SCALE_TASKS)
	HF_HUB_OFFLINE=1 $(BIN)/python bench/report.py 100000

# Kill -9 loops and editor races for SOAK_SECONDS (docs/reliability.md); prints trials and failures.
SOAK_SECONDS ?= 600
soak: install
	HF_HUB_OFFLINE=1 $(BIN)/python tests/test_soak.py --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(VENV) build *.egg-info daemon/*.egg-info tests/agent_clis/node_modules
