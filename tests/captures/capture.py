#!/usr/bin/env python3
"""Regenerate tests/captures/<cli>-<version>/: the real claude and codex CLIs' output per scenario.

Runs each pinned CLI (tests/agent_clis/node_modules/.bin, `make cli-deps`) headless against the loopback
fake model server (tests/fake_llm.py) with the argv that daemon/agentd/runners/cli_agent.py uses, and
writes <scenario>.stdout, .stderr, .rc and .cmd (the command line and the environment that
differ from the defaults; paths, ports and ids are as they were).  Also writes requests.jsonl
summaries in <scenario>.requests (what the CLI sent: path, model, stream, retry header).

    .venv/bin/python tests/captures/capture.py            # every scenario of both CLIs
    .venv/bin/python tests/captures/capture.py claude:done codex:tool
    .venv/bin/python tests/captures/capture.py claude-old:ro_home_erofs   # claude 2.1.197, not pinned

The workspace, home and fake URL are replaced in the saved files by $WORKSPACE, $HOME and
$FAKE_URL so that a rerun only differs in ids, timings and dates.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import real_cli as rc  # noqa: E402
from fake_llm import FakeLLM, error, reply, stream_error  # noqa: E402

RESET = 1900000000  # 2030-03-17T17:46:40Z
PROMPT = "Check the disk usage of the workspace and report it. End with STATUS: done|blocked|failed."


def soon() -> int:
    return int(time.time()) + 2 * 3600


def bash(cmd):
    return ("Bash", {"command": cmd, "description": "Run a command"})


def exec_command(cmd):
    return ("exec_command", {"cmd": cmd})


FAILING_COMMANDS = ("cat /nonexistent/report.txt", "false")
FAILING_CLAUDE = [*(reply(tools=[bash(c)]) for c in FAILING_COMMANDS),
                  reply("Checked the workspace.\nSTATUS: done")]
FAILING_CODEX = [*(reply(tools=[exec_command(c)]) for c in FAILING_COMMANDS),
                 reply("Checked the workspace.\nSTATUS: done")]

# name: (script, default item once the script is exhausted, options)
CLAUDE = {
    "done": ([reply("The workspace uses 4.0K.\nSTATUS: done")], None, {}),
    "tool": ([reply(tools=[bash("echo hello-from-tool > out.txt; cat out.txt")]),
              reply("Wrote out.txt; it says hello-from-tool.\nSTATUS: done")], None, {}),
    "blocked": ([reply("I need the sudo password to continue.\nSTATUS: blocked")], None, {}),
    "auth_401": ([], error(401, "invalid x-api-key", type="authentication_error"), {}),
    "rate_429_then_done": ([error(429, "Number of request tokens has exceeded your per-minute rate limit",
                                  type="rate_limit_error", headers={"retry-after": "1"}),
                            reply("Recovered after a rate limit.\nSTATUS: done")], None, {}),
    "overloaded_529_then_done": ([error(529, "Overloaded", type="overloaded_error"),
                                  reply("Recovered after an overload.\nSTATUS: done")], None, {}),
    "rate_429_api_key": ([], error(429, "rate limited", type="rate_limit_error",
                                   headers=rc.unified_limit_headers(RESET)), {}),
    "usage_limit_5h": ([], error(429, "rate limited", type="rate_limit_error",
                                 headers=rc.unified_limit_headers(RESET)), {"oauth": True}),
    "usage_limit_weekly": ([], error(429, "rate limited", type="rate_limit_error",
                                     headers=rc.unified_limit_headers(RESET, "seven_day")), {"oauth": True}),
    "usage_limit_opus": ([], error(429, "rate limited", type="rate_limit_error",
                                   headers=rc.unified_limit_headers(RESET, "seven_day_opus")), {"oauth": True}),
    "usage_limit_soon": ([], lambda req: error(429, "rate limited", type="rate_limit_error",
                                               headers=rc.unified_limit_headers(soon())), {"oauth": True}),
    "usage_limit_5h_berlin": ([], error(429, "rate limited", type="rate_limit_error",
                                        headers=rc.unified_limit_headers(RESET)),
                              {"oauth": True, "env": {"TZ": "Europe/Berlin"}}),
    "server_500": ([], error(500, "Internal server error", type="api_error"), {}),
    # the real API's body for an account without credits (HTTP 400, not a 402 or 429)
    "credit_low": ([], error(400, "Your credit balance is too low to access the Anthropic API. Please go to "
                                  "Plans & Billing to upgrade or purchase credits.", type="invalid_request_error"),
                   {}),
    "stream_error": ([], stream_error("Overloaded", type="overloaded_error", status=529), {}),
    "max_turns": ([reply(tools=[bash("echo one")]), reply(tools=[bash("echo two")]),
                   reply("never reached\nSTATUS: done")], None, {"max_turns": 1}),
    # each fake call costs $0.0008 at the default model's list price: the 2nd call passes $0.001
    "budget_stop": ([reply(tools=[bash("echo one")], usage=(100, 20)), reply(tools=[bash("echo two")]),
                     reply(tools=[bash("echo three")]), reply("never reached\nSTATUS: done")], None,
                    {"budget": "0.001"}),
    "budget_zero": ([reply("never reached")], None, {"budget": "0.00"}),
    "root_without_is_sandbox": ([reply("ran\nSTATUS: done")], None, {"sandbox": False, "root_only": True}),
    "stream_json_tool": ([reply(tools=[bash("echo hello-from-tool")]), reply("Done.\nSTATUS: done")], None,
                         {"fmt": "stream-json"}),
    "stream_json_429_then_done": ([error(429, "rate limited", type="rate_limit_error", headers={"retry-after": "1"}),
                                   reply("Recovered.\nSTATUS: done")], None, {"fmt": "stream-json"}),
    # every shell command the model asks for fails, and the model still says done (agentd's argv: stream-json)
    "all_tools_failed": (FAILING_CLAUDE, None, {"fmt": "stream-json"}),
    "all_tools_failed_json": (FAILING_CLAUDE, None, {}),
    "window_80": ([lambda req: reply("The workspace uses 4.0K.\nSTATUS: done", headers=rc.claude_window_headers(soon()))],
                  None, {"fmt": "stream-json", "oauth": True}),
    "window_80_far_reset": ([reply("The workspace uses 4.0K.\nSTATUS: done", headers=rc.claude_window_headers(RESET))],
                            None, {"fmt": "stream-json", "oauth": True}),
    "window_80_api_key": ([reply("The workspace uses 4.0K.\nSTATUS: done", headers=rc.claude_window_headers(RESET))],
                          None, {"fmt": "stream-json"}),
}

# claude 2.1.197 (not pinned: rc.old_claude_missing() says how to install it), run as in the issue: a fresh,
# read-only HOME (bwrap --ro-bind, as agentd's sandbox binds the host read-only); ``config_dir``: with a
# writable CLAUDE_CONFIG_DIR besides, as agentd gives each run (clihome.RunHome)
OLD_CLAUDE = {
    "all_tools_failed": (FAILING_CLAUDE, None, {"fmt": "stream-json"}),
    "ro_home_erofs": ([reply(tools=[bash("echo hello-from-tool")]), reply(tools=[bash("ls")]),
                       reply("Checked the workspace.\nSTATUS: done")], None, {"fmt": "stream-json", "ro_home": True}),
    "ro_home_config_dir_tool": ([reply(tools=[bash("echo hello-from-tool")]), reply(tools=[bash("ls")]),
                                 reply("Checked the workspace.\nSTATUS: done")], None,
                                {"fmt": "stream-json", "ro_home": True, "config_dir": True}),
}

CODEX = {
    "done": ([reply("The workspace uses 4.0K.\nSTATUS: done")], None, {}),
    "tool": ([reply(tools=[exec_command("echo hello-from-tool > out.txt; cat out.txt")]),
              reply("Wrote out.txt; it says hello-from-tool.\nSTATUS: done")], None, {}),
    "auth_401": ([], error(401, "Incorrect API key provided: sk-proj-***0000.", type="invalid_request_error",
                           code="invalid_api_key"), {}),
    "rate_429_then_done": ([error(429, "Rate limit reached for requests", type="requests",
                                  code="rate_limit_exceeded", headers={"retry-after": "1"}),
                            reply("Recovered after a rate limit.\nSTATUS: done")], None, {}),
    "usage_limit": ([], error(429, "", body=rc.codex_usage_limit_body(RESET)), {}),
    "usage_limit_no_plan": ([], error(429, "", body=rc.codex_usage_limit_body(RESET, None)), {}),
    "usage_limit_soon": ([], lambda req: error(429, "", body=rc.codex_usage_limit_body(soon(), None)), {}),
    "quota": ([], error(429, "You exceeded your current quota, please check your plan and billing details.",
                        type="insufficient_quota", code="insufficient_quota"), {}),
    "server_500": ([], error(500, "The server had an error while processing your request.",
                             type="server_error"), {}),
    "stream_failed": ([], stream_error("The server had an error processing your request.", code="server_error"),
                      {}),
    "all_tools_failed": (FAILING_CODEX, None, {}),
    "window_80": ([lambda req: reply("The workspace uses 4.0K.\nSTATUS: done", headers=rc.codex_window_headers(soon()))],
                  None, {"session": True}),
}


def capture(cli: str, name: str, out_dir: Path) -> None:
    script, default, opts = {"claude": CLAUDE, "claude-old": OLD_CLAUDE, "codex": CODEX}[cli][name]
    if opts.get("root_only") and not rc.is_root():
        print(f"  {cli}:{name}: skipped (only as root)")
        return
    fake = FakeLLM()
    fake.script(*script)
    fake.default = default
    tmp = Path(tempfile.mkdtemp(prefix=f"capture-{cli}-"))
    ws, home = tmp / "workspace", tmp / "home"
    ws.mkdir()
    try:
        if cli.startswith("claude"):
            bin_dir = rc.old_claude_bin() if cli == "claude-old" else rc.BIN
            extra = dict(opts.get("env", {}))
            if opts.get("config_dir"):
                (tmp / "config").mkdir(mode=0o700)
                extra["CLAUDE_CONFIG_DIR"] = str(tmp / "config")
            env = rc.claude_env(fake.url, home, oauth=opts.get("oauth", False), sandbox=opts.get("sandbox", True),
                                bin_dir=bin_dir, **extra)
            argv = rc.claude_argv(PROMPT, max_turns=opts.get("max_turns", 30), budget=opts.get("budget", "2.00"),
                                  fmt=opts.get("fmt", "json"), binary=bin_dir / "claude")
            if opts.get("ro_home"):
                argv = ["bwrap", "--dev-bind", "/", "/", "--ro-bind", str(home), str(home), "--die-with-parent",
                        "--", *argv]
        else:
            env = rc.codex_env(fake.url, home, **opts.get("env", {}))
            argv = rc.codex_argv(PROMPT, ws)
        started = time.monotonic()
        p = rc.run(argv, env, ws, timeout=300)
        secs = time.monotonic() - started
    finally:
        fake.close()

    def clean(text: str) -> str:
        for old, new in ((str(ws), "$WORKSPACE"), (str(home), "$HOME"), (str(tmp), "$TMP"), (fake.url, "$FAKE_URL")):
            text = text.replace(old, new)
        return text

    shown_env = {k: v for k, v in env.items() if k not in ("PATH", "LANG")}
    cmd = " ".join(f"{k}={shlex.quote(v)}" for k, v in shown_env.items()) + " " + shlex.join(
        [Path(a).name if a in (argv[0], str(rc.BIN / "claude"), str(rc.old_claude_bin() / "claude")) else a
         for a in argv])
    (out_dir / f"{name}.cmd").write_text(clean(cmd) + "\n")
    (out_dir / f"{name}.stdout").write_text(clean(p.stdout))
    (out_dir / f"{name}.stderr").write_text(clean(p.stderr))
    (out_dir / f"{name}.rc").write_text(f"{p.returncode}\n")
    if opts.get("session"):  # codex's session file (what it writes of the run besides --json)
        files = sorted((home / ".codex" / "sessions").glob("**/rollout-*.jsonl"))
        (out_dir / f"{name}.session").write_text(clean("".join(f.read_text() for f in files)))
    reqs = [{"path": r["path"], "query": r["query"], "model": r["body"].get("model"), "stream": r["body"].get("stream"),
             "retry": r["headers"].get("x-stainless-retry-count"), "auth": _auth(r["headers"])}
            for r in fake.requests]
    (out_dir / f"{name}.requests").write_text("".join(json.dumps(r) + "\n" for r in reqs))
    print(f"  {cli}:{name}: rc={p.returncode} {len(reqs)} requests {secs:.1f}s")


def _auth(headers: dict) -> str:
    if "x-api-key" in headers:
        return "x-api-key"
    a = headers.get("authorization", "")
    return "bearer oauth" if a.startswith("Bearer sk-ant-oat") else "bearer" if a else "none"


def main(args: list[str]) -> int:
    wanted = [a.split(":", 1) for a in args] or [("claude", n) for n in CLAUDE] + [("codex", n) for n in CODEX]
    for cli in ("claude", "codex", "claude-old"):
        if why := (rc.old_claude_missing() if cli == "claude-old" else rc.missing(cli)):
            if any(c == cli for c, _ in wanted):
                print(f"{cli}: {why}", file=sys.stderr)
                return 1
    dirs = {"claude": HERE / f"claude-{rc.installed_version('@anthropic-ai/claude-code')}",
            "codex": HERE / f"codex-{rc.installed_version('@openai/codex')}",
            "claude-old": HERE / f"claude-{rc.OLD_CLAUDE_VERSION}"}
    for cli, name in wanted:
        dirs[cli].mkdir(exist_ok=True)
        capture(cli, name, dirs[cli])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
