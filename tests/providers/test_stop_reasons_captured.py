"""Stop reasons as a real local server sends them (issue 18, 2): ``transformers serve`` 5.25.0's replies
to agentd, captured by tests/captures/capture_serve.py (tests/captures/transformers-serve-5.25.0/), are
replayed byte for byte by the loopback fake (``fake_llm.replay``) to a real wake.

The real shape differs from the fake's own: no ``tool_calls`` key at all, no ``prompt_tokens_details``,
an ``x-request-id`` header.  A reply cut at ``max_tokens`` (``finish_reason: "length"``) with no tool
call, three times over, must end the run ``failed`` for that reason, not ``done``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from fake_llm import replay

CAPTURES = Path(__file__).resolve().parents[1] / "captures" / "transformers-serve-5.25.0"
CUT_REASON = "reply cut off at the output limit (stop reason length) 3 times in a row"


def captured(scenario: str) -> list[Path]:
    return sorted((CAPTURES / scenario).glob("*.response"))


def made(scenario: str) -> dict:
    """How the capture was made, and what the real wake against the real server recorded."""
    return json.loads((CAPTURES / scenario / "wake.json").read_text())


def setup(home: Path, worklog: Path, fake, monkeypatch, scenario: str) -> None:
    """The wake's setup as capture_serve.py made it, pointed at the fake replaying ``scenario``."""
    how = made(scenario)
    model = how["model"]
    cfg = home / ".config" / "agentd" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps({"provider": "openai", "base_url": fake.url + "/v1", "model": model,
                               "max_tokens": how["max_tokens"], "call_timeout": "20s",
                               "prices": {model: {"input": 0, "output": 0, "context": 16384}}}))
    monkeypatch.setenv("AGENTD_CONFIG", str(cfg))
    monkeypatch.setenv("OPENAI_API_KEY", "not-needed")
    worklog.write_text("DIRECTIVE: Check the disk usage of the workspace and report it. {id: disk}\n")
    replies = captured(scenario)
    fake.script(*[replay(p) for p in replies])
    fake.default = replay(replies[-1])  # a model still asked gets the same cut reply again


def the_run() -> dict:
    r = run_cli("runs", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def test_the_captures_are_real_cut_replies_without_a_tool_call():
    how = made("length")
    assert how["finish_reasons"] == ["length"] * 3 and how["run"]["status"] == "failed"
    for p in captured("length"):
        head, _, body = p.read_bytes().partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"server: uvicorn" in head
        choice = json.loads(body)["choices"][0]
        assert choice["finish_reason"] == "length" and "tool_calls" not in choice["message"]


def test_a_real_servers_cut_replies_end_the_wakes_run_failed_with_the_stop_reason(home, worklog, fake, monkeypatch):
    setup(home, worklog, fake, monkeypatch, "length")
    r = run_cli("wake", "--now")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    run = the_run()
    assert run["provider"] == "openai" and run["status"] == "failed" and run["reason"] == CUT_REASON
    usages = [json.loads(p.read_bytes().partition(b"\r\n\r\n")[2])["usage"] for p in captured("length")]
    assert run["input_tokens"] == sum(u["prompt_tokens"] for u in usages) == made("length")["run"]["input_tokens"]
    assert run["output_tokens"] == sum(u["completion_tokens"] for u in usages) == 3 * 8
    assert len(fake.requests) == 3
    assert all(q["body"]["max_tokens"] == 8 and q["body"]["tool_choice"] == "auto" for q in fake.requests)
    said = fake.requests[1]["body"]["messages"][-1]
    assert said["role"] == "user" and "cut off" in said["content"] and "length" in said["content"]
    assert "failed" in worklog.read_text() and "stop reason length" in worklog.read_text()


def test_without_the_stop_reason_check_the_same_replies_would_be_recorded_done(home, worklog, fake, monkeypatch):
    """The protection off: a run that ignores ``finish_reason`` takes the first cut reply for the answer.
    (The cut replies' text is blank, so the empty-reply check is switched off too: without it, as when
    these were captured, the run was ``done``.)"""
    from agentd.agent import agent
    from agentd.config import config
    from agentd.wake import wake

    setup(home, worklog, fake, monkeypatch, "length")
    monkeypatch.setattr(agent, "CUT_REASONS", frozenset())
    monkeypatch.setattr(agent.ApiAgentRun, "empty", lambda self, last: None)
    wake.wake(config.load(), now=True)
    run = the_run()
    assert run["status"] == "done" and not run["reason"], run
    assert len(fake.requests) == 1


@pytest.mark.parametrize("scenario,stop,cut", [("length", "length", True), ("stop", "stop", False)])
def test_the_openai_provider_reads_the_real_servers_shape(tmp_path, fake, scenario, stop, cut):
    from agentd.providers import Message, ToolSpec, make_provider
    from fake_llm import make_config

    path = captured(scenario)[0]
    sent = json.loads(path.read_bytes().partition(b"\r\n\r\n")[2])
    fake.script(replay(path))
    model = made(scenario)["model"]
    p = make_provider(make_config(tmp_path, {"provider": "openai", "base_url": fake.url + "/v1", "model": model},
                                  {"OPENAI_API_KEY": "not-needed"}))
    resp = p.complete("sys", [Message("user", "go")], [ToolSpec("shell", "run", {"type": "object"})], 8)
    assert (resp.stop_reason, resp.cut, resp.tool_calls) == (stop, cut, [])
    assert resp.text == sent["choices"][0]["message"]["content"] and resp.model == model == sent["model"]
    u = sent["usage"]
    assert (resp.usage.input, resp.usage.output, resp.usage.cache_read) == (u["prompt_tokens"],
                                                                             u["completion_tokens"], 0)
    assert resp.raw["choices"][0]["finish_reason"] == stop


EMPTY_REASON = "the model's reply was empty: no text and no tool call (stop reason stop)"


def test_a_real_servers_empty_reply_is_not_done(home, worklog, fake, monkeypatch):
    """The "stop" capture: content "" and no tool call (the real wake recorded it done, with no summary)."""
    assert made("stop")["run"]["status"] == "done"  # what agentd did with it when it was captured
    body = json.loads(captured("stop")[0].read_bytes().partition(b"\r\n\r\n")[2])
    assert body["choices"][0]["message"]["content"] == "" and body["choices"][0]["finish_reason"] == "stop"
    setup(home, worklog, fake, monkeypatch, "stop")
    r = run_cli("wake", "--now")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    run = the_run()
    assert run["status"] == "failed" and run["reason"] == EMPTY_REASON, run
    assert EMPTY_REASON in worklog.read_text()


def test_without_the_empty_reply_check_the_same_reply_would_be_recorded_done(home, worklog, fake, monkeypatch):
    """The protection off: an empty reply taken for the answer."""
    from agentd.agent import agent
    from agentd.config import config
    from agentd.wake import wake

    setup(home, worklog, fake, monkeypatch, "stop")
    monkeypatch.setattr(agent.ApiAgentRun, "empty", lambda self, last: None)
    wake.wake(config.load(), now=True)
    run = the_run()
    assert run["status"] == "done" and not run["summary"], run
