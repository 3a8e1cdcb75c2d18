"""A usage limit with a reset time is waited out: the run parks, makes no model call, and the first wake
after the reset resumes it from its checkpoint (real CLI wakes, the real SDK, a loopback model)."""

from __future__ import annotations

import json
import time

import pytest

from agentd.worklog.parse import parse_bytes

from conftest import run_cli
from fake_llm import error, finish, reply


def env_for(fake) -> dict:
    return {"OPENAI_API_KEY": "sk-test-" + "o" * 24, "OPENAI_BASE_URL": fake.url + "/v1", "AGENTD_SANDBOX": "off",
            "AGENTD_CALL_TIMEOUT": "20s"}


def test_a_limit_that_resets_in_seconds_is_waited_out_and_the_run_resumes_with_no_step_repeated(
        worklog, fake, tmp_path):
    counter = tmp_path / "counter"
    reset = int(time.time()) + 12  # room for two wakes on a loaded machine before the reset
    worklog.write_text("DIRECTIVE: count once, then report {id: job}\n- [ ] other {id: other, run: 'true', value: 1}\n")
    fake.script(reply(tools=[("shell", {"command": f"echo x >> {counter}"})]),
                error(429, "You exceeded your current quota", code="insufficient_quota",
                      headers={"x-ratelimit-reset": str(reset)}),
                finish("done", "Counted once and reported after the reset."))
    env = env_for(fake)
    r = run_cli("wake", "--now", "--task", "job", env=env)
    assert r.returncode == 0 and "job: waiting" in r.stdout, r.stdout + r.stderr
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset))
    assert f"waiting until {until}" in worklog.read_text()
    q = {t["id"]: t for t in json.loads(run_cli("queue", "--json", env=env).stdout)["tasks"]}
    assert q["job"]["status"] == "waiting" and f"waiting for usage reset at {until}" in q["job"]["why"]
    assert "waiting for usage reset" in run_cli("status", env=env).stdout
    # before the reset: no model call for it; the openai backend is held, so nothing else agentic runs either
    r = run_cli("wake", "--now", env=env)
    assert "other: done" in r.stdout, r.stdout + r.stderr
    assert len(fake.requests) == 2
    while time.time() < reset:
        time.sleep(0.1)
    r = run_cli("wake", "--now", env=env)
    assert "job: done" in r.stdout, r.stdout + r.stderr
    assert counter.read_text() == "x\n"  # the shell step was not repeated
    assert len(fake.requests) == 3
    runs = [x for x in json.loads(run_cli("runs", "--json", env=env).stdout) if x["task_id"] == "job"]
    assert len(runs) == 1 and runs[0]["status"] == "done"
    assert parse_bytes(worklog.read_bytes()).latest["job"]["status"] == "done"
