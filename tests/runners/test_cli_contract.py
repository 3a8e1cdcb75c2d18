"""Contract tests: the REAL claude and codex CLIs (pinned in tests/agent_clis/package.json) against the
loopback fake model server, and what agentd makes of them.

Three layers:
- ``test_claude_*`` / ``test_codex_*`` with ``raw``: the CLI's own output shape, exit code and
  texts, as agentd depends on them (these break when a new CLI version changes its contract);
- ``test_agentd_*``: agentd's claude-cli / codex-cli runner (runners/cli_agent.py) running the real
  binary end to end, checking the Outcome it records;
- ``test_parse_*``: the parsers (runners/cli_output.py) over the saved captures in
  tests/captures/<cli>-<version>/ (no binary needed).

Tests marked ``xfail(strict=True)`` fail today because of agentd bugs listed in issue 11; they
flip to XPASS (and so fail the suite) once fixed: then drop the mark.  Without the binaries
(no npm) the real-CLI tests skip and say why; ``make test`` installs them (``make cli-deps``).
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import real_cli as rc
from fake_llm import FakeLLM, error, make_config, reply, stream_error

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
CLAUDE_CAPTURES = CAPTURES / "claude-2.1.332"
CODEX_CAPTURES = CAPTURES / "codex-0.171.0"
RESET = 1900000000  # 2030-03-17T17:46:40Z
RESET_ISO = "2030-03-17T17:46:40Z"
PROMPT = "Check the disk usage of the workspace and report it. End with STATUS: done|blocked|failed."

needs_claude = pytest.mark.skipif(bool(rc.missing("claude")), reason=rc.missing("claude") or "")
needs_codex = pytest.mark.skipif(bool(rc.missing("codex")), reason=rc.missing("codex") or "")


def bug(reason: str, condition: bool = True):
    return pytest.mark.xfail(condition, strict=True, reason=f"issue 11: {reason}")


def bash(cmd):
    return ("Bash", {"command": cmd, "description": "Run a command"})


def exec_command(cmd):
    return ("exec_command", {"cmd": cmd})


def claude(fake, tmp_path, *, oauth=False, sandbox=True, **kw):
    env = rc.claude_env(fake.url, tmp_path / "clihome", oauth=oauth, sandbox=sandbox)
    p = rc.run(rc.claude_argv(PROMPT, **kw), env, tmp_path / "ws")
    return p, (json.loads(p.stdout) if p.stdout.strip().startswith("{") else None)


def codex(fake, tmp_path):
    env = rc.codex_env(fake.url, tmp_path / "clihome")
    p = rc.run(rc.codex_argv(PROMPT, tmp_path / "ws"), env, tmp_path / "ws")
    return p, rc.events(p.stdout)


# -- claude, raw ------------------------------------------------------------------------------

@needs_claude
def test_claude_raw_done_is_one_result_object_with_rc_0(fake, tmp_path):
    fake.script(reply("The workspace uses 4.0K.\nSTATUS: done"))
    p, res = claude(fake, tmp_path)
    assert p.returncode == 0, p.stderr
    assert res["type"] == "result" and res["subtype"] == "success" and res["is_error"] is False
    assert res["result"] == "The workspace uses 4.0K.\nSTATUS: done" and res["num_turns"] == 1
    assert res["terminal_reason"] == "completed" and res["api_error_status"] is None
    assert res["usage"]["input_tokens"] == 100 and res["usage"]["output_tokens"] == 20
    assert res["total_cost_usd"] > 0 and list(res["modelUsage"]) and res["permission_denials"] == []
    req = fake.requests[0]
    assert req["path"] == "/v1/messages" and req["query"] == "beta=true" and req["body"]["stream"] is True


@needs_claude
def test_claude_raw_tool_round_trip_runs_the_shell_command(fake, tmp_path):
    fake.script(reply(tools=[bash("echo hello-from-tool > out.txt; cat out.txt")]), reply("Wrote it.\nSTATUS: done"))
    p, res = claude(fake, tmp_path)
    assert p.returncode == 0 and res["num_turns"] == 2 and res["usage"]["input_tokens"] == 200
    assert (tmp_path / "ws" / "out.txt").read_text() == "hello-from-tool\n"
    blocks = [b for m in fake.requests[1]["body"]["messages"] if isinstance(m["content"], list) for b in m["content"]]
    (result,) = [b for b in blocks if b.get("type") == "tool_result"]
    assert result["content"] == "hello-from-tool" and result["is_error"] is False


@needs_claude
def test_claude_raw_401_is_an_error_result_with_rc_1(fake, tmp_path):
    fake.default = error(401, "invalid x-api-key", type="authentication_error")
    p, res = claude(fake, tmp_path)
    assert p.returncode == 1 and res["is_error"] is True and res["subtype"] == "success"
    assert res["api_error_status"] == 401 and res["terminal_reason"] == "api_error"
    assert res["result"] == "Invalid API key · Fix external API key"


@needs_claude
def test_claude_raw_429_then_success_is_a_plain_success(fake, tmp_path):
    fake.script(error(429, "slow down", type="rate_limit_error", headers={"retry-after": "1"}),
                reply("Recovered.\nSTATUS: done"))
    p, res = claude(fake, tmp_path)
    assert p.returncode == 0 and res["is_error"] is False and res["result"] == "Recovered.\nSTATUS: done"
    assert len(fake.requests) == 2


@needs_claude
@pytest.mark.parametrize("claim,name", [("five_hour", "5-hour limit"), ("seven_day", "weekly limit"),
                                        ("seven_day_opus", "Opus limit")])
def test_claude_raw_subscriber_usage_limit_prints_the_reset_time(fake, tmp_path, claim, name):
    fake.default = error(429, "rate limited", type="rate_limit_error", headers=rc.unified_limit_headers(RESET, claim))
    p, res = claude(fake, tmp_path, oauth=True)
    assert p.returncode == 1 and res["is_error"] is True and res["api_error_status"] == 429
    assert res["api_error"] == "usage_limit_reached"
    assert res["result"] == f"You've hit your {name} · resets Mar 17, 2030, 5:46pm (UTC)"
    assert len(fake.requests) == 1  # not retried


@needs_claude
def test_claude_raw_budget_stop_reports_only_the_last_call_in_usage(fake, tmp_path):
    fake.script(reply(tools=[bash("echo one")]), reply(tools=[bash("echo two")]), reply("never\nSTATUS: done"))
    p, res = claude(fake, tmp_path, budget="0.001")
    assert p.returncode == 1 and res["subtype"] == "error_max_budget_usd" and res["is_error"] is True
    assert res["terminal_reason"] == "budget_exhausted" and res["errors"] == ["Reached maximum budget ($0.001)"]
    assert res["usage"]["input_tokens"] == 100  # the last call only
    (mu,) = res["modelUsage"].values()
    assert mu["inputTokens"] == 200 and mu["outputTokens"] == 40 and res["total_cost_usd"] == mu["costUSD"]


@needs_claude
def test_claude_raw_rejects_a_zero_budget_before_any_call(fake, tmp_path):
    p, res = claude(fake, tmp_path, budget="0.00")
    assert p.returncode == 1 and res is None and p.stdout == "" and not fake.requests
    assert "--max-budget-usd must be a number greater than 0" in p.stderr


@needs_claude
@pytest.mark.skipif(not rc.is_root(), reason="claude refuses to bypass permissions only as root")
def test_claude_raw_refuses_bypass_permissions_as_root_without_is_sandbox(fake, tmp_path):
    p, res = claude(fake, tmp_path, sandbox=False)
    assert p.returncode == 1 and res is None and not fake.requests
    assert "cannot be used with root/sudo privileges" in p.stderr


# -- codex, raw -------------------------------------------------------------------------------

@needs_codex
def test_codex_raw_done_is_pure_json_lines(fake, tmp_path):
    fake.script(reply("The workspace uses 4.0K.\nSTATUS: done"))
    p, evs = codex(fake, tmp_path)
    assert p.returncode == 0, p.stderr
    assert [e["type"] for e in evs] == ["thread.started", "turn.started", "item.completed", "turn.completed"]
    assert evs[2]["item"] == {"id": "item_0", "type": "agent_message", "text": "The workspace uses 4.0K.\nSTATUS: done"}
    assert evs[3]["usage"]["input_tokens"] == 100 and evs[3]["usage"]["output_tokens"] == 20
    req = fake.requests[0]
    assert req["path"] == "/v1/responses" and req["body"]["stream"] is True


@needs_codex
def test_codex_raw_tool_round_trip_has_item_started_and_completed(fake, tmp_path):
    fake.script(reply(tools=[exec_command("echo hello-from-tool > out.txt; cat out.txt")]), reply("Wrote it.\nSTATUS: done"))
    p, evs = codex(fake, tmp_path)
    assert p.returncode == 0
    kinds = [(e["type"], (e.get("item") or {}).get("type")) for e in evs]
    assert ("item.started", "command_execution") in kinds and ("item.completed", "command_execution") in kinds
    done = next(e for e in evs if e["type"] == "item.completed" and e["item"]["type"] == "command_execution")
    assert done["item"]["exit_code"] == 0 and done["item"]["aggregated_output"] == "hello-from-tool\n"
    assert (tmp_path / "ws" / "out.txt").read_text() == "hello-from-tool\n"


@needs_codex
def test_codex_raw_429_then_success_prints_an_error_event_and_exits_0(fake, tmp_path):
    fake.script(error(429, "Rate limit reached", type="requests", code="rate_limit_exceeded",
                      headers={"retry-after": "1"}), reply("Recovered.\nSTATUS: done"))
    p, evs = codex(fake, tmp_path)
    assert p.returncode == 0
    errors = [e for e in evs if e["type"] == "error"]
    assert [e["message"] for e in errors] == ["Reconnecting... 1/5 (exceeded retry limit, last status: 429 Too Many Requests)"]
    assert evs[-1]["type"] == "turn.completed"


@needs_codex
def test_codex_raw_401_retries_then_fails_the_turn(fake, tmp_path):
    fake.default = error(401, "Incorrect API key provided", type="invalid_request_error", code="invalid_api_key")
    p, evs = codex(fake, tmp_path)
    assert p.returncode == 1 and evs[-1]["type"] == "turn.failed"
    assert evs[-2] == {"type": "error", "message": evs[-1]["error"]["message"]}  # an error event precedes it
    assert evs[-1]["error"]["message"].startswith("unexpected status 401 Unauthorized: Incorrect API key provided")
    assert len(fake.requests) == 6


@needs_codex
@pytest.mark.parametrize("plan,text", [
    ("plus", "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit "
             "https://chatgpt.com/settings/usage to purchase more credits or try again at Mar 17th, 2030 5:46 PM."),
    (None, "You’ve hit your usage limit. Try again at Mar 17th, 2030 5:46 PM."),
])
def test_codex_raw_usage_limit_prints_the_reset_time(fake, tmp_path, plan, text):
    fake.default = error(429, "", body=rc.codex_usage_limit_body(RESET, plan))
    p, evs = codex(fake, tmp_path)
    assert p.returncode == 1 and evs[-1] == {"type": "turn.failed", "error": {"message": text}}
    assert len(fake.requests) == 1


# -- agentd running the real CLIs --------------------------------------------------------------

def agentd(tmp_path, fake, provider, oauth=False, sandbox=True, run_id="r1", **values):
    """agentd's runner for ``provider`` with the real CLI on PATH, pointed at the fake."""
    from agentd import runners
    from fake_llm import disk_task_job

    if provider == "claude-cli":
        env = rc.claude_env(fake.url, tmp_path / "clihome", oauth=oauth, sandbox=sandbox)
    else:
        env = rc.codex_env(fake.url, tmp_path / "clihome")
    cfg = make_config(tmp_path, {"provider": provider, "call_timeout": "60s", **values}, env)
    cfg.env["AGENTD_RUN_ID"] = run_id  # as recording.py sets it: every process of the run carries it
    lines: list[str] = []
    job, store = disk_task_job(cfg, run_id, cfg.state_dir / "runs" / run_id, lines.append)
    return runners.run(job), store


def task_ws(tmp_path) -> Path:
    """The workspace of task t1's runs (each agent task gets one of its own under ``workspace``)."""
    return tmp_path / "ws" / "t1"


@needs_claude
def test_agentd_claude_done(fake, tmp_path):
    fake.script(reply("The workspace uses 4.0K.\nSTATUS: done"))
    out, _ = agentd(tmp_path, fake, "claude-cli")
    assert out.status == "done" and out.summary == "The workspace uses 4.0K." and out.provider == "claude-cli"
    assert (out.input_tokens, out.output_tokens) == (100, 20) and out.cost_usd > 0


@needs_claude
def test_agentd_claude_tool_round_trip(fake, tmp_path):
    fake.script(reply(tools=[bash("echo hi > out.txt")]), reply("Wrote hi into out.txt in the workspace.\nSTATUS: done"))
    out, _ = agentd(tmp_path, fake, "claude-cli")
    assert out.status == "done" and out.summary == "Wrote hi into out.txt in the workspace." and out.flagged is None
    assert (out.input_tokens, out.output_tokens) == (200, 40)
    assert (task_ws(tmp_path) / "out.txt").read_text() == "hi\n"


@needs_claude
def test_agentd_claude_works_as_root_without_the_caller_setting_is_sandbox(fake, tmp_path):
    fake.script(reply("ran\nSTATUS: done"))
    out, _ = agentd(tmp_path, fake, "claude-cli", sandbox=False)
    assert out.status == "done", out.reason


@needs_claude
def test_agentd_claude_401_blocks_naming_auth(fake, tmp_path):
    fake.default = error(401, "invalid x-api-key", type="authentication_error")
    out, _ = agentd(tmp_path, fake, "claude-cli")
    assert out.status == "blocked" and out.reason.startswith("auth: claude")


@needs_claude
def test_agentd_claude_429_then_success_is_done(fake, tmp_path):
    fake.script(error(429, "slow down", type="rate_limit_error", headers={"retry-after": "1"}),
                reply("Recovered.\nSTATUS: done"))
    out, _ = agentd(tmp_path, fake, "claude-cli")
    assert out.status == "done" and out.summary == "Recovered."


@needs_claude
@pytest.mark.parametrize("claim", ["five_hour", "seven_day"])
def test_agentd_claude_usage_limit_defers_to_the_reset(fake, tmp_path, claim):
    fake.default = error(429, "rate limited", type="rate_limit_error", headers=rc.unified_limit_headers(RESET, claim))
    out, _ = agentd(tmp_path, fake, "claude-cli", oauth=True)
    assert out.status in ("waiting", "deferred")  # parked until the reset (deferred where waiting is off)
    assert "2030-03-17T17:46:00Z" <= out.defer_until <= "2030-03-17T17:47:00Z"  # the text has minutes only


def budget_stop(fake, tmp_path):
    """usd_per_run 0.01 -> --max-budget-usd 0.01; each fake call costs $0.0008 at claude's list price."""
    fake.script(*[reply(tools=[bash(f"echo {i}")]) for i in range(30)])
    return agentd(tmp_path, fake, "claude-cli", budget={"usd_per_run": 0.01})


@needs_claude
def test_agentd_claude_budget_stop_blocks_naming_the_limit(fake, tmp_path):
    out, _ = budget_stop(fake, tmp_path)
    assert out.status == "blocked" and out.reason == "budget: usd_per_run 0.01 reached"


@needs_claude
def test_agentd_claude_budget_stop_counts_every_call(fake, tmp_path):
    out, _ = budget_stop(fake, tmp_path)
    calls = len(fake.requests)
    assert calls > 1 and out.input_tokens == 100 * calls and out.output_tokens == 20 * calls
    assert out.cost_usd == pytest.approx(0.0008 * calls)


@needs_claude
def test_agentd_claude_budget_too_small_to_start_is_not_started(fake, tmp_path):
    out, store = agentd(tmp_path, fake, "claude-cli", budget={"usd_per_run": 0.004})
    assert out.status == "blocked" and "budget" in out.reason and not fake.requests
    assert not store.exchanges("r1")


@needs_claude
def test_agentd_claude_max_turns_blocks(fake, tmp_path):
    fake.script(reply(tools=[bash("echo one")]), reply(tools=[bash("echo two")]), reply("never\nSTATUS: done"))
    out, _ = agentd(tmp_path, fake, "claude-cli", max_steps=1)
    assert out.status == "blocked" and out.reason == "budget: max_steps 1 reached"


@needs_claude
def test_agentd_claude_server_error_fails_provider_down(fake, tmp_path):
    fake.default = error(500, "Internal server error", type="api_error")
    out, _ = agentd(tmp_path, fake, "claude-cli")
    assert out.status == "failed" and "provider down" in out.reason and "500" in out.reason


CREDIT_LOW = ("Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade "
              "or purchase credits.")  # the real API's message, with HTTP 400 and type invalid_request_error


@needs_claude
def test_claude_raw_credit_balance_too_low_is_a_400_error_result(fake, tmp_path):
    fake.default = error(400, CREDIT_LOW, type="invalid_request_error")
    p, res = claude(fake, tmp_path)
    assert p.returncode == 1 and res["is_error"] is True and res["api_error_status"] == 400
    assert res["result"] == "Credit balance is too low" and len(fake.requests) == 1


@needs_claude
def test_agentd_claude_credit_balance_too_low_blocks_as_a_usage_limit_not_provider_down(fake, tmp_path):
    fake.default = error(400, CREDIT_LOW, type="invalid_request_error")
    out, _ = agentd(tmp_path, fake, "claude-cli")
    assert out.status == "blocked" and out.reason.startswith("usage limit (claude-cli): Credit balance is too low")


@needs_claude
def test_agentd_claude_records_the_model_its_modelusage_names(fake, tmp_path):
    fake.script(reply("The workspace uses 4.0K.\nSTATUS: done"))
    out, store = agentd(tmp_path, fake, "claude-cli")
    (x,) = store.exchanges("r1")
    assert out.status == "done" and x["model"] == "claude-opus-5-5" == fake.requests[0]["body"]["model"]


@needs_codex
def test_agentd_codex_records_the_model_its_session_names_and_the_sandbox_flag_that_ran(fake, tmp_path):
    fake.script(reply("The workspace uses 4.0K.\nSTATUS: done"))
    out, store = agentd(tmp_path, fake, "codex-cli")
    (x,) = store.exchanges("r1")
    argv = json.loads(x["request"])["argv"]
    assert out.status == "done" and x["model"] == "gpt-6.2-sol" == fake.requests[0]["body"]["model"]
    assert argv[argv.index("--sandbox") + 1] == "danger-full-access"  # agentd's bwrap confines it instead


@needs_codex
def test_agentd_codex_done(fake, tmp_path):
    fake.script(reply("The workspace uses 4.0K.\nSTATUS: done"))
    out, _ = agentd(tmp_path, fake, "codex-cli")
    assert out.status == "done" and out.summary == "The workspace uses 4.0K." and out.provider == "codex-cli"
    assert (out.input_tokens, out.output_tokens) == (100, 20)


@needs_codex

def test_agentd_codex_run_has_a_cost(fake, tmp_path):
    fake.script(reply("The workspace uses 4.0K.\nSTATUS: done"))
    out, _ = agentd(tmp_path, fake, "codex-cli")
    assert out.cost_usd > 0


@needs_codex
def test_agentd_codex_tool_round_trip(fake, tmp_path):
    fake.script(reply(tools=[exec_command("echo hi > out.txt")]), reply("Wrote hi into out.txt in the workspace.\nSTATUS: done"))
    out, _ = agentd(tmp_path, fake, "codex-cli")
    assert out.status == "done" and out.summary == "Wrote hi into out.txt in the workspace." and out.flagged is None
    assert (task_ws(tmp_path) / "out.txt").read_text() == "hi\n"


@needs_codex
def test_agentd_codex_401_blocks_naming_auth(fake, tmp_path):
    fake.default = error(401, "Incorrect API key provided", type="invalid_request_error", code="invalid_api_key")
    out, _ = agentd(tmp_path, fake, "codex-cli")
    assert out.status == "blocked" and out.reason.startswith("auth: codex")


@needs_codex
def test_agentd_codex_429_then_success_is_done(fake, tmp_path):
    fake.script(error(429, "Rate limit reached", type="requests", code="rate_limit_exceeded",
                      headers={"retry-after": "1"}), reply("Recovered.\nSTATUS: done"))
    out, _ = agentd(tmp_path, fake, "codex-cli")
    assert out.status == "done" and out.summary == "Recovered."


@needs_codex
def test_agentd_codex_usage_limit_defers_to_the_reset(fake, tmp_path):
    fake.default = error(429, "", body=rc.codex_usage_limit_body(RESET))
    out, _ = agentd(tmp_path, fake, "codex-cli")
    assert out.status in ("waiting", "deferred")  # parked until the reset (deferred where waiting is off)
    assert "2030-03-17T17:46:00Z" <= out.defer_until <= "2030-03-17T17:47:00Z"


@needs_codex
def test_agentd_codex_quota_blocks(fake, tmp_path):
    fake.default = error(429, "You exceeded your current quota", type="insufficient_quota", code="insufficient_quota")
    out, _ = agentd(tmp_path, fake, "codex-cli")
    assert out.status == "blocked" and "usage limit" in out.reason


@needs_codex
def test_agentd_codex_stream_failure_fails_provider_down(fake, tmp_path):
    fake.default = stream_error("The server had an error processing your request.", code="server_error")
    out, _ = agentd(tmp_path, fake, "codex-cli")
    assert out.status == "failed" and "provider down" in out.reason


FAILING = ("cat /nonexistent/report.txt", "false")  # what the fake asks to run: each command fails


@needs_claude
def test_claude_raw_stream_json_marks_each_failed_tool_call_is_error(fake, tmp_path):
    fake.script(*[reply(tools=[bash(c)]) for c in FAILING], reply("Checked.\nSTATUS: done"))
    env = rc.claude_env(fake.url, tmp_path / "clihome")
    p = rc.run(rc.claude_argv(PROMPT, fmt="stream-json"), env, tmp_path / "ws")
    evs = rc.events(p.stdout)
    uses = [b for e in evs if e["type"] == "assistant" for b in e["message"]["content"] if b["type"] == "tool_use"]
    results = [b for e in evs if e["type"] == "user" for b in e["message"]["content"] if b["type"] == "tool_result"]
    assert p.returncode == 0 and evs[-1]["type"] == "result" and evs[-1]["is_error"] is False
    assert [u["input"]["command"] for u in uses] == list(FAILING)
    assert [(r["tool_use_id"], r["is_error"]) for r in results] == [(u["id"], True) for u in uses]
    assert results[0]["content"] == "Exit code 1\ncat: /nonexistent/report.txt: No such file or directory"


@needs_codex
def test_codex_raw_failed_commands_complete_with_their_exit_code_and_status_failed(fake, tmp_path):
    fake.script(*[reply(tools=[exec_command(c)]) for c in FAILING], reply("Checked.\nSTATUS: done"))
    p, evs = codex(fake, tmp_path)
    done = [e["item"] for e in evs if e["type"] == "item.completed" and e["item"]["type"] == "command_execution"]
    assert p.returncode == 0 and evs[-1]["type"] == "turn.completed"
    assert [(i["exit_code"], i["status"]) for i in done] == [(1, "failed"), (1, "failed")]


FIRST_FAILED = {  # how each CLI names the first failed call in the run's reason
    "claude-cli": "Bash `cat /nonexistent/report.txt`: Exit code 1 cat: /nonexistent/report.txt: No such file or directory",
    "codex-cli": "command `/bin/bash -lc 'cat /nonexistent/report.txt'`: exit 1: cat: /nonexistent/report.txt: No such file"}


@pytest.mark.parametrize("provider", [pytest.param("claude-cli", marks=needs_claude),
                                      pytest.param("codex-cli", marks=needs_codex)])
def test_agentd_cli_run_whose_every_tool_call_failed_is_failed_not_done(fake, tmp_path, provider):
    call = bash if provider == "claude-cli" else exec_command
    fake.script(*[reply(tools=[call(c)]) for c in FAILING], reply("Checked the workspace.\nSTATUS: done"))
    out, store = agentd(tmp_path, fake, provider)
    assert out.status == "failed" and out.summary == "Checked the workspace."
    assert out.reason.startswith(f"every tool call failed (2 of 2); the first: {FIRST_FAILED[provider]}"), out.reason
    (x,) = store.exchanges("r1")
    assert json.loads(x["request"])["tool_calls"] == {"calls": 2, "failed": 2}


@needs_claude
def test_agentd_claude_run_with_one_tool_call_that_worked_is_done(fake, tmp_path):
    fake.script(reply(tools=[bash("false")]), reply(tools=[bash("echo hi > out.txt")]),
                reply("The first command failed, the second wrote out.txt.\nSTATUS: done"))
    out, store = agentd(tmp_path, fake, "claude-cli")
    assert out.status == "done" and out.reason is None
    assert json.loads(store.exchanges("r1")[0]["request"])["tool_calls"] == {"calls": 2, "failed": 1}


# -- the parsers over the saved captures (no binary needed) -------------------------------------

def captured(directory: Path, name: str) -> tuple[str, str, int]:
    return ((directory / f"{name}.stdout").read_text(), (directory / f"{name}.stderr").read_text(),
            int((directory / f"{name}.rc").read_text()))


def test_the_captures_exist_for_the_pinned_versions():
    pins = rc.pinned()
    assert CLAUDE_CAPTURES.name == f"claude-{pins['@anthropic-ai/claude-code']}"
    assert CODEX_CAPTURES.name == f"codex-{pins['@openai/codex']}"
    for d in (CLAUDE_CAPTURES, CODEX_CAPTURES):
        for name in ("done", "tool", "auth_401", "rate_429_then_done"):
            assert (d / f"{name}.stdout").exists(), (d, name)


@pytest.mark.parametrize("name", ["auth_401", "usage_limit_5h", "server_500", "max_turns", "budget_stop"])
def test_claude_exits_1_whenever_is_error(name):
    out, _, code = captured(CLAUDE_CAPTURES, name)
    assert json.loads(out)["is_error"] is True and code == 1


def test_parse_claude_reads_the_real_done_and_tool_results():
    from agentd.runners.cli_output import parse_claude

    done = parse_claude(captured(CLAUDE_CAPTURES, "done")[0])
    assert done["error"] is None and done["text"].endswith("STATUS: done") and done["usage"].input == 100
    tool = parse_claude(captured(CLAUDE_CAPTURES, "tool")[0])
    assert tool["turns"] == 2 and tool["acted"] and tool["usage"].input == 200 and tool["cost"] == 0.0016


def test_parse_claude_budget_stop_counts_the_whole_run():
    from agentd.runners.cli_output import parse_claude

    res = parse_claude(captured(CLAUDE_CAPTURES, "budget_stop")[0])
    assert res["limit"] == "max_budget" and (res["usage"].input, res["usage"].output) == (200, 40)


def test_parse_claude_max_turns_is_a_limit():
    from agentd.runners.cli_output import parse_claude

    assert parse_claude(captured(CLAUDE_CAPTURES, "max_turns")[0])["limit"] == "max_turns"


def test_parse_claude_reports_the_api_error_status():
    from agentd.runners.cli_output import parse_claude

    res = parse_claude(captured(CLAUDE_CAPTURES, "usage_limit_5h")[0])
    assert res.get("api_error_status") == 429 and res.get("api_error") == "usage_limit_reached"


def test_parse_claude_reads_the_credit_text_and_the_model_that_ran():
    from agentd.runners.cli_output import parse_claude

    out, _, code = captured(CLAUDE_CAPTURES, "credit_low")
    res = parse_claude(out)
    assert code == 1 and res["api_error_status"] == 400 and res["error"] == "Credit balance is too low"
    assert res["model"] is None  # no call was answered: modelUsage is empty
    assert parse_claude(captured(CLAUDE_CAPTURES, "done")[0])["model"] == "claude-opus-5-5"


@pytest.mark.parametrize("cli,name", [("claude-cli", "credit_low"), ("codex-cli", "quota")])
def test_the_captured_credit_and_quota_texts_classify_as_usage_limits(cli, name):
    from agentd.errors import UsageLimit
    from agentd.runners.cli_agent import classify
    from agentd.runners.cli_output import parse_claude, parse_codex

    out = captured(CLAUDE_CAPTURES if cli == "claude-cli" else CODEX_CAPTURES, name)[0]
    parsed = (parse_claude if cli == "claude-cli" else parse_codex)(out)
    err = classify(cli, parsed, parsed["error"], tz="UTC")
    assert isinstance(err, UsageLimit) and str(err).startswith(f"usage limit ({cli}): ")


def test_parse_codex_429_then_success_has_no_error():
    from agentd.runners.cli_output import parse_codex

    res = parse_codex(captured(CODEX_CAPTURES, "rate_429_then_done")[0])
    assert res["error"] is None and res["text"] == "Recovered after a rate limit.\nSTATUS: done"


def test_parse_codex_tool_run_acted():
    from agentd.runners.cli_output import parse_codex

    res = parse_codex(captured(CODEX_CAPTURES, "tool")[0])
    assert res["acted"] and res["turns"] == 1 and res["usage"].input == 200 and res["error"] is None


def test_codex_stdout_is_pure_json_lines():
    for f in CODEX_CAPTURES.glob("*.stdout"):
        rc.events(f.read_text())  # raises on a line that is not JSON


# -- kill -9 and resume ----------------------------------------------------------------------

_CHILD = """
import sys, json
sys.path[:0] = sys.argv[1].split(':')
import test_cli_contract as t
from fake_llm import FakeLLM
from pathlib import Path

class Fake:  # the fake server runs in the test process: only its URL is needed here
    url = sys.argv[3]

out, _ = t.agentd(Path(sys.argv[2]), Fake(), sys.argv[4], run_id=sys.argv[5])
print(json.dumps(out.status))
"""


def _marked(run_id: str) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes carrying AGENTD_RUN_ID=run_id."""
    marker = f"AGENTD_RUN_ID={run_id}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append((int(proc.name), (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]))
        except (OSError, ValueError):
            continue
    return found


@pytest.mark.parametrize("provider", [pytest.param("claude-cli", marks=needs_claude),
                                      pytest.param("codex-cli", marks=needs_codex)])
def test_agentd_killed_mid_run_leaves_no_cli_behind_and_the_resumed_run_checks_first(fake, tmp_path, provider):
    import os
    import signal
    import subprocess
    import sys

    run_id = f"kill-{provider}-{os.getpid()}"
    cmd = "touch started.txt && sleep 37 && touch finished.txt"  # claude refuses a standalone sleep
    tool = bash(cmd) if provider == "claude-cli" else exec_command(cmd)
    fake.script(reply(tools=[tool]), reply("Checked the workspace: nothing to redo.\nSTATUS: done"))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, f"{Path(__file__).resolve().parent}:{Path(__file__).resolve().parents[1]}", str(tmp_path), fake.url,
                              provider, run_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (any("sleep 37" in cmd for _, cmd in _marked(run_id))  # the CLI's tool call is running,
                   and (task_ws(tmp_path) / "started.txt").exists()):  # past its `touch` (not just started)
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.1)
        assert any(("claude" if provider == "claude-cli" else "codex") in cmd for _, cmd in _marked(run_id))
        os.kill(child.pid, signal.SIGKILL)
        killed = time.monotonic()
        while _marked(run_id) and time.monotonic() - killed < 5:
            time.sleep(0.05)
        gone_after = time.monotonic() - killed
        print(f"{provider}: its processes were gone {gone_after:.2f} s after the kill")
        assert not _marked(run_id), _marked(run_id)
        assert gone_after < 2, f"the CLI's processes lived {gone_after:.1f} s after agentd was killed"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert (task_ws(tmp_path) / "started.txt").exists() and not (task_ws(tmp_path) / "finished.txt").exists()
    from agentd.sandbox import clihome

    cfg = make_config(tmp_path, {"provider": provider})
    assert len(clihome.leftovers(cfg)) == 1  # the killed run's login dir, with its sessions
    out, store = agentd(tmp_path, fake, provider, run_id=run_id)  # the next wake resumes the run
    assert clihome.leftovers(cfg) == []  # removed at the next run, and that run's own after it
    assert out.status == "done" and out.summary == "Checked the workspace: nothing to redo."
    body = json.dumps(fake.requests[-1]["body"])
    assert "a previous attempt at this task was interrupted" in body  # told to check before redoing anything
    assert len(fake.requests) == 2  # the resumed run asked once; the interrupted tool call was not replayed
