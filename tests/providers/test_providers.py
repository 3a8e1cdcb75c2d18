"""Providers: the real anthropic and openai SDKs against the loopback fake server."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from agentd.errors import AuthFailed, ContextOverflow, ProviderDown, RateLimited, UsageLimit
from agentd.providers import Message, ToolCall, ToolSpec, make_provider, resolve_provider_name
from fake_llm import cut, error, garbage, make_config, reply, sleep

SHELL = ToolSpec("shell", "run a command", {"type": "object", "properties": {"command": {"type": "string"}},
                                            "required": ["command"]})
ANT_KEY = "sk-ant-test-0123456789abcdef"
OAI_KEY = "sk-test-openai-0123456789abcdef"


def anthropic_cfg(tmp_path, fake, **values):
    return make_config(tmp_path, {"provider": "anthropic", **values},
                       {"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_BASE_URL": fake.url})


def openai_cfg(tmp_path, fake, **values):
    return make_config(tmp_path, {"provider": "openai", "base_url": fake.url + "/v1", "model": "qwen2.5:7b",
                                  **values}, {"OPENAI_API_KEY": OAI_KEY})


def test_anthropic_tool_use_round_trip_caches_the_stable_prefix(tmp_path, fake):
    fake.script(reply("let me look", tools=[("shell", {"command": "ls"})], usage=(50, 7), cache=(1000, 30)),
                reply("all done"))
    p = make_provider(anthropic_cfg(tmp_path, fake))
    r = p.complete("you are a test", [Message("user", "list files")], [SHELL], max_tokens=100)
    assert r.text == "let me look"
    assert [(c.name, c.args) for c in r.tool_calls] == [("shell", {"command": "ls"})]
    assert (r.usage.input, r.usage.output, r.usage.cache_read, r.usage.cache_write) == (50, 7, 1000, 30)
    convo = [Message("user", "list files"), Message("assistant", r.text, r.tool_calls),
             Message("tool", "a.txt\nb.txt", call_id=r.tool_calls[0].id)]
    r2 = p.complete("you are a test", convo, [SHELL], max_tokens=100)
    assert r2.text == "all done" and r2.tool_calls == []
    sent = fake.requests[1]
    assert sent["path"] == "/v1/messages"
    assert ANT_KEY in (sent["headers"].get("x-api-key"), sent["headers"].get("authorization", "")[7:])
    body = sent["body"]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][1]["content"][1]["type"] == "tool_use"
    assert body["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": r.tool_calls[0].id,
                                                 "content": "a.txt\nb.txt", "is_error": False}


def test_openai_tool_use_round_trip_through_a_local_base_url(tmp_path, fake):
    fake.script(reply(tools=[("shell", {"command": "ls"})], usage=(40, 5), cache=(10, 0)), reply("done"))
    p = make_provider(openai_cfg(tmp_path, fake))
    assert p.model == "qwen2.5:7b"
    r = p.complete("sys", [Message("user", "go")], [SHELL])
    assert r.tool_calls[0].name == "shell" and r.tool_calls[0].args == {"command": "ls"}
    assert (r.usage.input, r.usage.cache_read, r.usage.output) == (40, 10, 5)
    convo = [Message("user", "go"), Message("assistant", "", r.tool_calls),
             Message("tool", "a.txt", call_id=r.tool_calls[0].id)]
    assert p.complete("sys", convo, [SHELL]).text == "done"
    body = fake.requests[1]["body"]
    assert fake.requests[1]["path"] == "/v1/chat/completions"
    assert body["messages"][0] == {"role": "system", "content": "sys"}
    assert body["messages"][2]["tool_calls"][0]["function"]["name"] == "shell"
    assert body["messages"][3] == {"role": "tool", "tool_call_id": r.tool_calls[0].id, "content": "a.txt"}
    assert body["tools"][0]["function"]["name"] == "shell"


def test_openai_base_url_env_var_keeps_working(tmp_path, fake):
    fake.script(reply("hi from env url"))
    cfg = make_config(tmp_path, {"provider": "openai", "model": "llama3"},
                      {"OPENAI_API_KEY": OAI_KEY, "OPENAI_BASE_URL": fake.url + "/v1"})
    assert make_provider(cfg).complete("s", [Message("user", "x")], []).text == "hi from env url"
    assert fake.requests[0]["headers"]["authorization"] == f"Bearer {OAI_KEY}"


def test_openai_bad_tool_arguments_become_a_tool_call_error_not_a_crash(tmp_path, fake):
    fake.script(reply(tools=[("shell", "{not json")]))
    r = make_provider(openai_cfg(tmp_path, fake)).complete("sys", [Message("user", "go")], [SHELL])
    assert r.tool_calls[0].error and "not valid JSON" in r.tool_calls[0].error


class FakeTime:
    """An injected clock and sleep: sleeping moves the clock, nothing waits."""

    def __init__(self):
        self.now, self.slept = 1000.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def with_fake_time(p):
    t = FakeTime()
    p.sleep, p.clock = t.sleep, t.clock
    return p, t


def test_a_short_retry_after_is_honoured_and_the_call_retried(tmp_path, fake):
    fake.script(error(429, "slow down", {"retry-after": "0.2"}, type="rate_limit_error"), reply("ok"))
    p, t = with_fake_time(make_provider(anthropic_cfg(tmp_path, fake)))
    assert p.complete("s", [Message("user", "hi")], []).text == "ok"
    assert t.slept == [0.2]
    assert p.attempts == 2


@pytest.mark.parametrize("cfg_of", [anthropic_cfg, openai_cfg])
def test_a_retry_after_longer_than_max_retry_wait_is_raised_at_once(tmp_path, fake, cfg_of):
    fake.script(error(429, "come back later", {"retry-after": "3600"}, type="rate_limit_error"), reply("ok"))
    p, t = with_fake_time(make_provider(cfg_of(tmp_path, fake)))
    with pytest.raises(RateLimited) as e:
        p.complete("s", [Message("user", "hi")], [])
    assert t.slept == []
    assert e.value.retry_after == 3600
    assert len(fake.requests) == 1


def test_529_overloaded_is_retried(tmp_path, fake):
    fake.script(error(529, "Overloaded", type="overloaded_error"), reply("fine now"))
    assert make_provider(anthropic_cfg(tmp_path, fake)).complete("s", [Message("user", "x")], []).text == "fine now"


def test_persistent_500_fails_as_provider_down_within_call_timeout(tmp_path, fake):
    fake.script(*[error(500, "boom")] * 10)
    p, t = with_fake_time(make_provider(anthropic_cfg(tmp_path, fake, call_timeout="3s")))
    with pytest.raises(ProviderDown, match="boom"):
        p.complete("s", [Message("user", "x")], [])
    assert sum(t.slept) < 3  # backoff waits stay inside call_timeout
    assert 2 <= len(fake.requests) <= 4


@pytest.mark.parametrize("cfg_of", [anthropic_cfg, openai_cfg])
def test_a_server_slower_than_call_timeout_is_provider_down(tmp_path, fake, cfg_of):
    fake.script(sleep(5), sleep(5))
    p = make_provider(cfg_of(tmp_path, fake, call_timeout="1s"))
    t = time.monotonic()
    with pytest.raises(ProviderDown):
        p.complete("s", [Message("user", "x")], [])
    # the server answers after 5 s: returning well before two of its answers proves the timeout cut it
    assert time.monotonic() - t < 9


@pytest.mark.parametrize("cfg_of", [anthropic_cfg, openai_cfg])
def test_malformed_json_is_provider_down(tmp_path, fake, cfg_of):
    fake.script(*[garbage()] * 5)
    with pytest.raises(ProviderDown, match="malformed|provider down"):
        make_provider(cfg_of(tmp_path, fake, call_timeout="1s")).complete("s", [Message("user", "x")], [])


@pytest.mark.parametrize("cfg_of,key", [(anthropic_cfg, "ANTHROPIC_API_KEY"), (openai_cfg, "OPENAI_API_KEY")])
def test_401_is_auth_failed_naming_the_key(tmp_path, fake, cfg_of, key):
    fake.script(error(401, "invalid x-api-key", type="authentication_error"))
    with pytest.raises(AuthFailed, match=key):
        make_provider(cfg_of(tmp_path, fake)).complete("s", [Message("user", "x")], [])
    assert len(fake.requests) == 1


def test_prompt_too_long_is_context_overflow(tmp_path, fake):
    fake.script(error(400, "prompt is too long: 250000 tokens > 200000 maximum", type="invalid_request_error"))
    with pytest.raises(ContextOverflow):
        make_provider(anthropic_cfg(tmp_path, fake)).complete("s", [Message("user", "x")], [])


def test_insufficient_quota_is_a_usage_limit(tmp_path, fake):
    reset = int(time.time()) + 3600
    fake.script(error(429, "You exceeded your current quota", code="insufficient_quota",
                      headers={"x-ratelimit-reset": str(reset)}))
    with pytest.raises(UsageLimit) as e:
        make_provider(openai_cfg(tmp_path, fake)).complete("s", [Message("user", "x")], [])
    assert e.value.reset_at == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset))


@pytest.mark.parametrize("header", ["99999999999999999999", "NaN", "-5", "1", "2030-01-01T00:00:00Z task=z", "soon",
                                    str(10**10)])
def test_a_reset_header_that_is_not_a_time_within_a_month_is_no_reset_time(tmp_path, fake, header):
    fake.script(error(429, "You exceeded your current quota", code="insufficient_quota",
                      headers={"x-ratelimit-reset": header}))
    with pytest.raises(UsageLimit) as e:
        make_provider(openai_cfg(tmp_path, fake)).complete("s", [Message("user", "x")], [])
    assert e.value.reset_at is None


def test_auto_picks_anthropic_then_openai_then_none(tmp_path):
    assert resolve_provider_name(make_config(tmp_path, {}, {"ANTHROPIC_API_KEY": ANT_KEY,
                                                            "OPENAI_API_KEY": OAI_KEY})) == "anthropic"
    assert resolve_provider_name(make_config(tmp_path, {}, {"OPENAI_API_KEY": OAI_KEY})) == "openai"
    assert resolve_provider_name(make_config(tmp_path, {}, {})) == "none"
    assert resolve_provider_name(make_config(tmp_path, {"provider": "codex-cli"}, {})) == "codex-cli"


def test_a_missing_key_is_auth_failed_before_any_request(tmp_path):
    with pytest.raises(AuthFailed, match="ANTHROPIC_API_KEY is not set"):
        make_provider(make_config(tmp_path, {"provider": "anthropic"}, {}))


def test_models_and_prices_come_from_config(tmp_path):
    from agentd.providers import Usage, context_window, cost_usd, model_for

    cfg = make_config(tmp_path, {"models": {"openai": "my-model"},
                                 "prices": {"my-model": {"input": 1, "output": 2, "context": 8192}}})
    assert model_for(cfg, "openai") == "my-model"
    assert model_for(cfg, "anthropic") == "claude-sonnet-4-6"
    assert cost_usd(cfg, "my-model", Usage(input=1_000_000, output=500_000)) == pytest.approx(2.0)
    assert context_window(cfg, "my-model") == 8192
    assert context_window(cfg, "claude-haiku-4-5") == 200_000


def test_importing_the_agent_does_not_import_the_sdks():
    code = ("import sys, agentd.providers, agentd.agent.agent, agentd.agent.tools, agentd.agent.budget, agentd.agent.checkpoints;"
            "print('anthropic' in sys.modules, 'openai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_tool_calls_survive_conversion_with_unicode(tmp_path, fake):
    fake.script(reply("ok"))
    p = make_provider(anthropic_cfg(tmp_path, fake))
    convo = [Message("user", "a\u2028b\u0085c\rd"), Message("assistant", "", [ToolCall("t1", "shell", {"command": "é"})]),
             Message("tool", "out", call_id="t1", is_error=True)]
    p.complete("s", convo, [SHELL])
    msgs = fake.requests[0]["body"]["messages"]
    assert msgs[0]["content"][0]["text"] == "a\u2028b\u0085c\rd"
    assert msgs[2]["content"][0]["is_error"] is True


@pytest.mark.parametrize("cfg_of, word", [(anthropic_cfg, "max_tokens"), (openai_cfg, "length")])
def test_a_reply_cut_at_the_output_limit_is_read_as_cut_in_each_apis_own_word(tmp_path, fake, cfg_of, word):
    fake.script(cut("Let me chec"), reply("all done"))
    p = make_provider(cfg_of(tmp_path, fake))
    r = p.complete("sys", [Message("user", "go")], [SHELL], max_tokens=5)
    assert (r.text, r.stop_reason, r.cut) == ("Let me chec", word, True)
    r2 = p.complete("sys", [Message("user", "go")], [SHELL], max_tokens=5)
    assert r2.cut is False and r2.stop_reason in ("end_turn", "stop")
