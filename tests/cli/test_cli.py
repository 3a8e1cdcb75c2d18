"""The real CLI in a subprocess: init, queue, add, directive, status, reindex, errors and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from agentd.worklog.entries import Entry
from agentd.worklog.parse import parse_bytes
from conftest import AGENTD, run_cli

HEAVY = ("anthropic", "openai", "torch", "transformers", "structlog", "psutil", "filelock")
# Not heavy, but each costs more than Python's own start-up (dataclasses ~30 ms through inspect, argparse,
# yaml): `queue` and `status` do without them (recordtype.Record stands in for @dataclass).  yaml is
# needed to parse attrs the fast path can't read, so it is checked on a warm run (the worklog unchanged).
STARTUP = HEAVY + ("dataclasses", "argparse")
WARM = STARTUP + ("yaml",)


def init(cli):
    r = cli("init")
    assert r.returncode == 0, r.stderr


def test_help_works(cli):
    r = cli("--help")
    assert r.returncode == 0
    for word in ("queue", "init", "directive", "add", "status", "reindex", "78"):
        assert word in r.stdout
    r = cli("queue", "--help")
    assert r.returncode == 0 and "--json" in r.stdout


def test_an_unknown_command_is_a_usage_error(cli):
    r = cli("frobnicate")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_init_creates_the_config_and_a_worklog_with_a_header(cli, home, worklog):
    r = cli("init")
    assert r.returncode == 0, r.stderr
    cfg = home / ".config" / "agentd" / "config.yaml"
    assert cfg.is_file() and worklog.is_file()
    assert "created" in r.stdout and str(worklog) in r.stdout
    text = worklog.read_text()
    assert "testhost" in text and "DIRECTIVE:" in text and "- [ ]" in text and "RETRY" in text
    s = parse_bytes(worklog.read_bytes())
    assert s.tasks == {} and s.errors == []
    # the config it writes is valid and is read back
    q = cli("queue", "--json")
    assert q.returncode == 0, q.stderr


def test_a_second_init_leaves_both_files_as_they_are(cli, home, worklog):
    init(cli)
    cfg = home / ".config" / "agentd" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("max_steps: 30", "max_steps: 12"))
    worklog.write_bytes(worklog.read_bytes() + b"- [ ] mine\n")
    before = (cfg.read_bytes(), worklog.read_bytes())
    r = cli("init")
    assert r.returncode == 0
    assert r.stdout.count("exists, left as is") == 2
    assert (cfg.read_bytes(), worklog.read_bytes()) == before


def test_queue_on_a_missing_worklog_says_where_it_looked_and_how_to_make_one(cli, worklog):
    r = cli("queue")
    assert r.returncode == 0, r.stderr
    assert str(worklog) in r.stdout and "agentd init" in r.stdout
    assert not worklog.exists()
    r = cli("queue", "--json")
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["exists"] is False and d["worklog"] == str(worklog) and d["tasks"] == []


def test_status_on_a_missing_worklog_exits_0_and_points_at_init(cli, worklog):
    r = cli("status")
    assert r.returncode == 0, r.stderr
    assert str(worklog) in r.stdout and "agentd init" in r.stdout


WORKLOG = """\
- [ ] run the tests {id: tests, run: "true", value: 6, certainty: 0.95}
DIRECTIVE: think about the roadmap {id: roadmap}
- [ ] bench {id: bench, run: ./bench.sh, gpu: true, value: 10}
- [ ] after tests {id: later, run: "true", after: tests}
- [x] done already {id: old}
"""


def test_queue_json_lists_every_task_with_the_stable_keys_in_wake_order(cli, worklog):
    init(cli)
    worklog.write_text(worklog.read_text() + WORKLOG)
    r = cli("queue", "--json", env={"ANTHROPIC_API_KEY": "sk-test"})
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    tasks = d["tasks"]
    for t in tasks:
        for key in ("id", "title", "kind", "status", "score", "eligible", "why"):
            assert key in t, key
    ids = [t["id"] for t in tasks]
    assert ids[:2] == ["tests", "roadmap"]  # eligible, by expected value: 5.7 then 4.0
    assert set(ids[2:4]) == {"bench", "later"} and ids[4] == "old"
    by = {t["id"]: t for t in tasks}
    assert by["tests"]["eligible"] and by["tests"]["score"] == pytest.approx(5.7)
    assert not by["later"]["eligible"] and "waits for tests" in by["later"]["why"]
    assert by["old"]["status"] == "done"
    for key in ("worklog", "exists", "unreadable", "unreadable_count", "torn_entries", "task_file_problems",
                "agent_backend", "gpu"):
        assert key in d


def test_queue_text_shows_the_order_and_why(cli, worklog):
    init(cli)
    worklog.write_text(worklog.read_text() + WORKLOG)
    r = cli("queue")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.index("tests") < out.index("bench")
    assert "needs an LLM backend" in out  # the directive, with no API key
    assert "why:" in out and "not now:" in out
    # the footer gives the actual reason, not a generic hint
    assert "agent tasks wait: provider is none (docs/agent.md)" in cli("queue", env={"AGENTD_PROVIDER": "none"}).stdout


def test_add_appends_a_well_formed_task_line(cli, worklog):
    init(cli)
    before = worklog.read_bytes()
    r = cli("add", "check the GPU", "--run", "nvidia-smi -L | head", "--value", "7", "--certainty", "0.8",
            "--id", "gpu-check", "--after", "other", "--minutes", "3")
    assert r.returncode == 0, r.stderr
    after = worklog.read_bytes()
    assert after.startswith(before)
    added = after[len(before):].decode()
    assert added.startswith("- [ ] check the GPU {") and added.endswith("}\n") and added.count("\n") == 1
    t = parse_bytes(after).tasks["gpu-check"]
    assert t.kind == "command" and t.title == "check the GPU"
    assert t.attrs["run"] == "nvidia-smi -L | head" and t.attrs["value"] == 7
    assert t.attrs["certainty"] == 0.8 and t.attrs["after"] == ["other"] and t.attrs["minutes"] == 3
    assert "gpu-check" in r.stdout


def test_add_keeps_a_title_ending_in_braces_as_the_title(cli, worklog):
    init(cli)
    r = cli("add", "render {x: 1}")
    assert r.returncode == 0, r.stderr
    (t,) = parse_bytes(worklog.read_bytes()).tasks.values()
    assert t.title == "render {x: 1}" and t.attrs == {}


@pytest.mark.parametrize("priority, kind_check", [("normal", "normal"), ("high", "high"), ("critical", "critical")])
def test_directive_appends_a_well_formed_directive_line(cli, worklog, priority, kind_check):
    init(cli)
    before = worklog.read_bytes()
    r = cli("directive", "look at the logs: all of them", "--priority", priority)
    assert r.returncode == 0, r.stderr
    after = worklog.read_bytes()
    assert after.startswith(before) and after[len(before):].count(b"\n") == 1
    (t,) = parse_bytes(after).tasks.values()
    assert (t.kind, t.priority, t.title) == ("directive", kind_check, "look at the logs: all of them")


@pytest.mark.parametrize("args", [
    ("add", "two\nlines"), ("add", "cr\rinside"), ("add", "sep\u2028inside"), ("add", "ok", "--run", "a\nb"),
    ("directive", "DIRECTIVE one\nDIRECTIVE: two"), ("directive", "x\x85y"), ("add", "   "),
])
def test_multi_line_or_empty_text_is_refused_with_exit_2(cli, worklog, args):
    init(cli)
    before = worklog.read_bytes()
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert "one line" in r.stderr or "empty" in r.stderr
    assert worklog.read_bytes() == before


def test_add_refuses_a_line_that_would_not_parse(cli, worklog):
    init(cli)
    before = worklog.read_bytes()
    r = cli("add", "x", "--value", "42")
    assert r.returncode == 2 and "between 0 and 10" in r.stderr and "Traceback" not in r.stderr
    assert worklog.read_bytes() == before


def test_add_without_a_worklog_is_a_usage_error_pointing_at_init(cli, worklog):
    r = cli("add", "x")
    assert r.returncode == 2 and "agentd init" in r.stderr
    assert not worklog.exists()


def test_a_broken_config_exits_78_naming_file_and_key_without_a_traceback(cli, home):
    cfg = home / ".config" / "agentd" / "config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("max_step: 5\nprovider: nobody\n")
    for cmd in (["queue"], ["status"], ["queue", "--json"], ["add", "x"]):
        r = cli(*cmd)
        assert r.returncode == 78, (cmd, r.stderr)
        assert "Traceback" not in r.stderr
        assert f"{cfg}:1" in r.stderr and "'max_step'" in r.stderr and "did you mean 'max_steps'" in r.stderr
        assert f"{cfg}:2" in r.stderr and "'provider'" in r.stderr


def test_a_bad_environment_value_exits_78_naming_the_variable(cli):
    r = cli("queue", env={"AGENTD_MAX_STEPS": "abc"})
    assert r.returncode == 78 and "AGENTD_MAX_STEPS" in r.stderr and "Traceback" not in r.stderr


def test_an_unknown_agentd_variable_is_warned_about_on_stderr(cli):
    r = cli("queue", env={"AGENTD_FOO": "1"})
    assert r.returncode == 0 and "AGENTD_FOO" in r.stderr


def test_agentd_debug_shows_the_traceback(cli, home):
    cfg = home / ".config" / "agentd" / "config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("max_step: 5\n")
    r = cli("queue", env={"AGENTD_DEBUG": "1"})
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "ConfigError" in r.stderr


def test_reindex_rebuilds_the_index_from_the_worklog(cli, home, worklog):
    init(cli)
    worklog.write_text(worklog.read_text() + WORKLOG
                       + Entry(1, "r1", "tests", "done", "2026-01-01T00:00:00Z", body="ok").render())
    assert cli("queue").returncode == 0
    index = home / ".local" / "state" / "agentd" / "index.sqlite3"
    assert index.exists()
    r = cli("reindex")
    assert r.returncode == 0, r.stderr
    assert "5 tasks" in r.stdout and "1 entries" in r.stdout and str(worklog) in r.stdout
    index.unlink()
    r = cli("reindex")
    assert r.returncode == 0 and index.exists()
    q = json.loads(cli("queue", "--json").stdout)
    assert {t["id"]: t["status"] for t in q["tasks"]}["tests"] == "done"


def test_reindex_on_a_missing_worklog_exits_0(cli, worklog):
    r = cli("reindex")
    assert r.returncode == 0 and "agentd init" in r.stdout


def test_status_json_has_its_keys(cli, worklog):
    init(cli)
    worklog.write_text(worklog.read_text() + WORKLOG)
    r = cli("status", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("host", "worklog", "worklog_exists", "config_file", "config_exists", "state_dir", "workspace",
                "progress", "last_run", "next_task", "counts", "timer_next_elapse", "timer_installed"):
        assert key in d, key
    assert d["host"] == "testhost" and d["worklog"] == str(worklog) and d["worklog_exists"] is True
    assert d["next_task"]["id"] == "tests" and d["counts"]["done"] == 1


MESSY_LINES = [
    b"# messy",                                           # 1
    b"- [ ] good one {id: g1, run: 'true'}",              # 2
    b"- [ ] bad utf8 \xff\xfe {id: u}",                   # 3 bad
    b"- [ ] good two {id: g2, run: 'true'}\r",            # 4
    b"- [ ] nul \x00 {id: n}",                            # 5 bad
    b"- [ ] " + b"y" * 3_000_000,                         # 6 bad (3 MB)
    b"- [ ] broken attrs {value: ten}",                   # 7 bad
    b"- [ ] \x1b[2J\x1b[31mescape\x1b[0m {id: g3}",       # 8 good
    b"DIRECTIVE: fine {id: g4}",                          # 9
]


def test_queue_on_a_messy_file_lists_good_tasks_and_bad_line_numbers_and_changes_nothing(cli, worklog):
    data = b"\n".join(MESSY_LINES) + b"\n"
    worklog.write_bytes(data)
    st = os.stat(worklog)
    r = cli("queue")
    assert r.returncode == 0, r.stderr[-2000:]
    for tid in ("g1", "g2", "g3", "g4"):
        assert tid in r.stdout
    for n in (3, 5, 6, 7):
        assert re.search(rf"line {n}: ", r.stdout), n
    assert "\x1b" not in r.stdout  # escape sequences are not sent to the terminal
    j = cli("queue", "--json")
    assert j.returncode == 0
    d = json.loads(j.stdout)
    assert {t["id"] for t in d["tasks"]} == {"g1", "g2", "g3", "g4"}
    assert [u["line"] for u in d["unreadable"]] == [3, 5, 6, 7] and d["unreadable_count"] == 4
    assert worklog.read_bytes() == data
    assert os.stat(worklog).st_mtime_ns == st.st_mtime_ns


def test_queue_survives_a_bad_keyword_line_with_invalid_bytes(cli, worklog):
    worklog.write_bytes(b"- [ ] good {id: good, run: 'true'}\nDONE:\x80\n- [ ] \x00\n")
    r = cli("queue")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "good" in r.stdout and "line 2" in r.stdout


def test_the_worklog_bytes_are_unchanged_by_queue_status_and_reindex(cli, worklog):
    init(cli)
    data = worklog.read_bytes() + WORKLOG.encode() + b"no newline at the end \xff"
    worklog.write_bytes(data)
    for cmd in (["queue"], ["queue", "--json"], ["status"], ["reindex"], ["queue"]):
        assert cli(*cmd).returncode == 0
        assert worklog.read_bytes() == data


def _imported_modules(*args: str, env: dict | None = None) -> set[str]:
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([*AGENTD[:1], "-X", "importtime", *AGENTD[1:], *args], capture_output=True, text=True,
                       env=e, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    mods = set()
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip())
    assert "agentd.cli.cli" in mods  # the check itself works
    return mods


@pytest.mark.parametrize("args", [("queue",), ("queue", "--json"), ("status",), ("--help",)])
def test_the_cli_does_not_import_heavy_libraries_for_queue_and_status(cli, worklog, args):
    init(cli)
    worklog.write_text(worklog.read_text() + WORKLOG)
    mods = _imported_modules(*args, env={"ANTHROPIC_API_KEY": "sk-test"})
    heavy = sorted(m for m in mods if m.split(".")[0] in (HEAVY if args == ("--help",) else STARTUP))
    assert heavy == []
    warm = _imported_modules(*args, env={"ANTHROPIC_API_KEY": "sk-test"})
    assert sorted(m for m in warm if m.split(".")[0] in (HEAVY if args == ("--help",) else WARM)) == []


def test_importing_for_queue_in_process_leaves_heavy_modules_out(worklog):
    worklog.write_text(WORKLOG)
    code = ("import sys, runpy\n"
            "sys.argv = ['agentd', 'queue']\n"
            "try:\n    runpy.run_module('agentd', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
            "assert 'agentd.queue.queue' in sys.modules\n"
            "print('HEAVY', bad)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "HEAVY []" in r.stdout


def test_run_cli_helper_uses_this_tests_environment(worklog):
    r = run_cli("status", "--json")
    assert json.loads(r.stdout)["worklog"] == str(worklog)


def test_a_header_with_a_huge_sequence_number_is_a_damaged_marker_not_a_crash(cli, worklog):
    worklog.write_text("- [ ] a {id: a}\n=== agentd entry seq=99999999999999999999999 run=r1 task=a status=done "
                       "at=x lines=2 bytes=30 ===\n> fake\n=== agentd end seq=1 run=r1 ===\n")
    r = cli("queue")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "line 2: damaged agentd entry marker" in r.stdout


def test_add_refuses_control_characters_and_writes_plain_attrs(cli, worklog):
    assert cli("init").returncode == 0
    r = cli("add", "\x1b[2J clear the screen")
    assert r.returncode == 2 and "control characters" in r.stderr
    assert cli("add", "bench it", "--value", "6", "--id", "bench", "--run", "./bench.sh 7b").returncode == 0
    assert "- [ ] bench it {id: bench, run: ./bench.sh 7b, value: 6}\n" in worklog.read_text()


def test_show_says_when_a_run_id_prefix_is_ambiguous(cli, worklog):
    worklog.write_text("- [ ] a {id: a, run: 'true'}\n- [ ] b {id: b, run: 'true'}\n")
    assert cli("wake", "--now").returncode == 0 and cli("wake", "--now").returncode == 0
    r = cli("show", "r")
    assert r.returncode == 2 and "ambiguous" in r.stderr and "matches 2 runs" in r.stderr


def test_top_level_help_version_and_bad_commands_answer_without_tracebacks(cli):
    h = cli("--help")
    assert h.returncode == 0 and "commands:" in h.stdout
    for name in ("init", "queue", "wake", "status", "runs", "show", "install", "doctor"):
        assert f"\n  {name} " in h.stdout
    assert cli("--version").stdout.startswith("agentd ")
    for args in ((), ("bogus",), ("--json",), ("queue", "--bad")):
        r = cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr and "usage:" in r.stderr, args


@pytest.mark.parametrize("command", sorted(__import__("agentd.cli.cli").cli.cli.FLAGS))
def test_the_flag_only_fast_path_parses_exactly_as_argparse_does(command):
    """FLAGS mirrors the argparse parsers: same options, same attributes, same values."""
    import argparse
    import itertools

    from agentd.cli import cli as cli_mod

    flags = cli_mod.FLAGS[command]
    p = argparse.ArgumentParser()
    cli_mod.COMMANDS[command][1](p)
    options = {s for a in p._actions for s in a.option_strings if s not in ("-h", "--help")}
    assert options == set(flags), "FLAGS and the argparse parser offer different options"
    for n in range(len(flags) + 1):
        for words in itertools.permutations(sorted(flags), n):
            fast = cli_mod._parse([command, *words])
            slow = vars(p.parse_args(list(words)))
            assert vars(fast) == {"command": command, **slow}, words
    # anything else still goes to argparse: a usage error, exit 2
    with pytest.raises(SystemExit) as e:
        cli_mod._parse([command, "--nope"])
    assert e.value.code == 2


def _one_run(cli, worklog):
    """A store holding one finished run (a command task's), and that store opened."""
    from pathlib import Path

    from agentd.store.store import Store

    worklog.write_text("- [ ] a {id: a, run: 'true'}\n")
    assert cli("wake", "--now").returncode == 0
    state = Path(json.loads(cli("status", "--json").stdout)["state_dir"])
    store = Store(state / "agentd.sqlite3")
    (run,) = store.runs()
    return store, run["run_id"]


def test_runs_status_and_show_all_say_interrupted_for_a_run_whose_wake_was_killed(cli, worklog):
    store, rid = _one_run(cli, worklog)
    store.update_run(rid, status="running", duration_s=None)  # as a killed wake leaves it; no wake holds the lock
    store.db.commit()
    runs = json.loads(cli("runs", "--json").stdout)
    status = json.loads(cli("status", "--json").stdout)
    show = json.loads(cli("show", rid, "--json").stdout)
    assert runs[0]["status"] == status["last_run"]["status"] == show["run"]["status"] == "interrupted"
    assert f"{rid} " in cli("runs").stdout and " interrupted " in cli("runs").stdout
    assert cli("show", rid).stdout.startswith(f"run {rid}: interrupted")


def test_runs_json_carries_defer_until(cli, worklog):
    store, rid = _one_run(cli, worklog)
    store.update_run(rid, status="deferred", defer_until="2030-03-17T17:47:00Z")
    store.db.commit()
    (r,) = json.loads(cli("runs", "--json").stdout)
    assert r["defer_until"] == "2030-03-17T17:47:00Z"


def test_show_and_runs_count_input_tokens_the_same_way_cache_reads_and_writes_included(cli, worklog):
    store, rid = _one_run(cli, worklog)
    store.add_exchange(rid, step=1, provider="anthropic", model="m", request="{}", response="{}", input_tokens=2400,
                       output_tokens=50, cache_read_tokens=1000, cache_write_tokens=200, cost_usd=0.01,
                       latency_s=1.0, error=None)
    store.add_usage(rid, 3600, 50, 0.01)  # what budget.charge adds: input + cache reads + cache writes
    store.db.commit()
    (r,) = json.loads(cli("runs", "--json").stdout)
    shown = cli("show", rid).stdout
    assert r["input_tokens"] == 3600
    assert "3600 input tokens (1000 read from cache, 200 written to it)" in shown, shown


def _parsers():
    import argparse

    from agentd.cli import cli as cli_mod

    for name, (help_, add_args) in cli_mod.COMMANDS.items():
        p = argparse.ArgumentParser(prog=f"agentd {name}", description=help_)
        add_args(p)
        yield name, help_, [a for a in p._actions if not isinstance(a, argparse._HelpAction)]


def test_every_argument_of_every_command_has_help():
    missing = [f"agentd {name} {a.option_strings or a.dest}" for name, help_, actions in _parsers()
               for a in actions if not (a.help or "").strip()]
    assert not missing, f"arguments without help: {missing}"
    assert all(help_.strip() for _, help_, _ in _parsers())


def test_docs_cli_md_lists_every_command_and_every_option_the_parsers_define():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = {line.split("`")[1].split()[1]: line.split("`")[1] for line in doc.splitlines()
            if line.startswith("| `agentd ") and len(line.split("`")[1].split()) > 1}
    for name, _, actions in _parsers():
        assert name in rows, f"docs/cli.md has no row for `agentd {name}`"
        usage = rows[name]
        for a in actions:
            names = a.option_strings or [a.metavar or a.dest.upper()]
            assert any(n in usage.replace("[", " ").replace("]", " ").replace("...", " ").split() for n in names), \
                f"docs/cli.md's `agentd {name}` row does not show {names[0]}"


def test_each_command_s_help_states_its_own_exit_codes_as_docs_cli_md_does(cli):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    own = {"check": "problems found", "doctor": "a check FAILed", "wake": "the task failed"}
    helps = {}
    for name, meaning in own.items():
        r = cli(name, "--help")
        assert r.returncode == 0
        helps[name] = " ".join(r.stdout.split())
        assert f"1 {meaning}" in helps[name], helps[name]
        assert f"| `{name}` | {meaning}" in doc, f"docs/cli.md does not say what 1 means for {name}"
    assert "a task failed" not in helps["check"] and "problems found" not in helps["doctor"]
    r = cli("queue", "--help")
    assert "a task failed" not in r.stdout and "problems found" not in r.stdout


def test_docs_cli_md_says_what_1_means_for_each_command_as_its_parser_does():
    from pathlib import Path

    from agentd.cli import cli as cli_mod

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = {line.split("`")[1]: line.split("|")[2].strip() for line in doc.splitlines()
            if line.startswith("| `") and line.count("|") == 3 and " " not in line.split("`")[1]}
    assert rows == cli_mod.EXIT_ONE
    for name, meaning in cli_mod.EXIT_ONE.items():
        assert f"1 {meaning}," in cli_mod.epilog(name)


def test_queue_lists_the_lines_not_read_as_written_in_one_block_in_line_order(cli, worklog):
    init(cli)
    worklog.write_text('DONE: zzz-1\n- [ ] a {id: a, run: "true"}\nDIRECTIVE find it\n- [ ] a {id: a, run: "false"}\n'
                       '- [ ] b {id: b, value: 99}\nDONE: xxx-3\nnote: all fine here\n', encoding="utf-8")
    r = cli("queue")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "could not read" not in out
    block = out[out.index("5 line(s) of testhost_worklog.txt not read as written:"):].splitlines()[1:]
    numbers = [int(x.split()[1].rstrip(":")) for x in block if x.startswith("  line ")]
    assert numbers == [1, 2, 3, 5, 6], out
