"""Local OpenAI-compatible servers (llama.cpp's server, Ollama, vLLM, transformers serve) through the
``openai`` provider: what agentd sends them, and what it makes of their errors (issue 11, part 4).

No real server runs here.  The loopback fake (tests/fake_llm.py) stands in, and ``llama_cpp`` below
makes it as strict as llama.cpp's server was found to be: it answers 500 to a ``null`` content and
ignores the tools unless ``tool_choice`` is sent.  Every test asserts on the JSON agentd sent
(``fake.requests``).  The recipe in docs/agent.md ("Local models") is read from the docs and run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from agentd import runners
from agentd.errors import ConfigError, ContextOverflow, ProviderDown, ProviderError
from agentd.providers import Message, ToolSpec, classify, make_provider
from agentd.providers.base import MESSAGE_LIMIT
from agentd.redact import MASK, could_be_secret, redact
from agentd.store.store import Store
from agentd.tasks.task import Task
from fake_llm import error, finish, make_config, reply

DOCS = Path(__file__).resolve().parents[2] / "docs"
TASK = Task(id="t1", title="look around", kind="task", priority="normal", status="open", attrs={}, line=3,
            source="worklog", text="- [ ] look around #t1")
SHELL = ToolSpec("shell", "run a command", {"type": "object", "properties": {"command": {"type": "string"}},
                                            "required": ["command"]})
# what llama.cpp's server says to a null content (ggml-org/llama.cpp#13471), as a 500
NULL_CONTENT = "Expected 'content' to be a string or an array"


@pytest.fixture(scope="module", autouse=True)
def sdk_imported():
    import openai  # noqa: F401


def local_cfg(tmp_path, fake, env=None, **values):
    """agentd pointed at a local server the way docs/agent.md says: a base_url, a model, any key."""
    return make_config(tmp_path, {"provider": "openai", "base_url": fake.url + "/v1", "model": "qwen2.5:7b-instruct",
                                  **values}, {"OPENAI_API_KEY": "ollama", **(env or {})})


def go(cfg, run_id="r1"):
    store = Store(cfg.store_path)
    store.start_run(run_id=run_id, task_id="t1", kind="task", title="look around", status="running",
                    started_at="2025-01-01T00:00:00Z")
    job = runners.Job(cfg, store, run_id, TASK, {}, cfg.state_dir / "runs" / run_id, lambda line: None)
    return runners.run(job), store


def bodies(fake) -> list[dict]:
    return [r["body"] for r in fake.requests]


def llama_cpp(item):
    """``item`` served the way llama.cpp's server serves it: a 500 for a message whose content is
    null or missing, and without ``tool_choice`` the tools are not shown to the model (so it can only
    answer in text)."""
    def serve(req):
        body = req["body"]
        for m in body.get("messages", []):
            if not isinstance(m.get("content"), (str, list)):
                return error(500, body={"error": {"code": 500, "message": NULL_CONTENT, "type": "server_error"}})
        if body.get("tools") and body.get("tool_choice") is None:
            return reply("I would run a command if I had tools.")
        return item
    return serve


def shell(cmd):
    return ("shell", {"command": cmd})


# -- 1 and 2: tool_choice, and "" for a tool-only assistant message ----------------------------------

def test_a_run_with_tool_calls_goes_through_a_server_as_strict_as_llama_cpp(tmp_path, fake):
    fake.script(llama_cpp(reply(tools=[shell("echo hi")])), llama_cpp(reply(tools=[shell("echo again")])),
                llama_cpp(finish("done", "Ran two commands and read their output.")))
    out, _ = go(local_cfg(tmp_path, fake))
    assert out.status == "done", out.reason
    sent = bodies(fake)
    assert len(sent) == 3 and all(r["path"] == "/v1/chat/completions" for r in fake.requests)
    assert all(b["tool_choice"] == "auto" and b["tools"] for b in sent)
    assistant = [m for m in sent[2]["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 2 and all(m["content"] == "" and m["tool_calls"] for m in assistant)
    assert all(m["content"] is not None for b in sent for m in b["messages"])  # null nowhere


def test_a_call_without_tools_sends_no_tool_choice(tmp_path, fake):
    fake.script(reply("a summary"))
    p = make_provider(local_cfg(tmp_path, fake))
    convo = [Message("user", "go"), Message("assistant", "", [])]
    assert p.complete("sys", convo, []).text == "a summary"
    body = fake.requests[0]["body"]
    assert "tools" not in body and "tool_choice" not in body
    assert body["messages"][2] == {"role": "assistant", "content": ""}


def test_the_fake_llama_cpp_refuses_what_agentd_used_to_send(tmp_path, fake):
    """The strict stand-in really is strict: the old request shapes fail against it."""
    fake.script(llama_cpp(reply("x")), llama_cpp(reply(tools=[shell("ls")])))
    p = make_provider(local_cfg(tmp_path, fake))
    req = p.request("sys", [Message("user", "go")], [SHELL], 64)
    req["messages"].append({"role": "assistant", "content": None, "tool_calls": []})
    with pytest.raises(ProviderError, match="Expected 'content'"):
        p._sdk_call(p.client.chat.completions.create, req, 5, lambda r: r, lambda e: str(e.body))
    req = p.request("sys", [Message("user", "go")], [SHELL], 64)
    req.pop("tool_choice", None)
    r = p.client.chat.completions.create(**req)
    assert not r.choices[0].message.tool_calls  # the tools were dropped


# -- 3: max_tokens -----------------------------------------------------------------------------------

def test_max_tokens_defaults_to_4096(tmp_path, fake):
    fake.script(finish("done", "Nothing needed doing here today."))
    go(local_cfg(tmp_path, fake))
    assert fake.requests[0]["body"]["max_tokens"] == 4096 and "max_completion_tokens" not in fake.requests[0]["body"]


def test_max_tokens_from_config_caps_every_call_compaction_included(tmp_path, fake):
    # a tiny context, so the second turn is compacted: the summary call asks for min(1024, max_tokens)
    turns = []

    def model(req):
        if "tools" not in req["body"]:
            return reply("summary of the old turns")
        turns.append(1)
        return reply(tools=[shell("echo " + "x" * 3000)]) if len(turns) <= 4 else finish("done", "Echoed and summarised.")

    fake.script(*[model] * 12)
    cfg = local_cfg(tmp_path, fake, max_tokens=300,
                    prices={"qwen2.5:7b-instruct": {"input": 0, "output": 0, "context": 4000}})
    out, _ = go(cfg)
    assert out.status == "done", out.reason
    asked = [b["max_tokens"] for b in bodies(fake)]
    assert asked and set(asked) == {300}, asked
    assert any("tools" not in b for b in bodies(fake))  # the compaction call was among them


def test_max_tokens_is_checked_by_the_schema(tmp_path):
    from agentd.config import config

    cfg = make_config(tmp_path, {"max_tokens": 512})
    assert cfg["max_tokens"] == 512
    (tmp_path / "home" / ".config" / "agentd" / "config.yaml").write_text("max_tokens: 0\n")
    env = {"HOME": str(tmp_path / "home"), "AGENTD_CONFIG": str(tmp_path / "home/.config/agentd/config.yaml")}
    with pytest.raises(ConfigError, match="max_tokens"):
        config.load(env)


# -- 4: the whole error message -------------------------------------------------------------------------

def test_a_long_error_message_keeps_its_cause_at_the_end(tmp_path, fake):
    cause = "the cause: parameter 'foo' is not allowed here"
    fake.script(error(400, "request rejected; " + "context " * 400 + cause, type="invalid_request_error"))
    out, store = go(local_cfg(tmp_path, fake))
    assert out.status == "failed" and cause in out.reason
    assert len(out.reason) < MESSAGE_LIMIT + 200 and "characters cut" in out.reason
    assert len(fake.requests) == 1  # a 400 is not retried
    assert cause in store.exchanges("r1")[0]["error"]


def test_a_message_of_a_few_hundred_characters_is_kept_whole():
    message = "Invalid 'messages[3].tool_calls[0].function.arguments': " + "y" * 300 + " <- here"
    e = classify(400, {}, message, "OPENAI_API_KEY", "openai")
    assert str(e) == f"openai 400: {message}"


# -- 5: a 500 that is a validation error is not retried ---------------------------------------------------

def test_a_500_that_says_the_request_is_invalid_fails_at_once_with_its_message(tmp_path, fake):
    fake.script(*[error(500, body={"error": {"code": 500, "message": NULL_CONTENT, "type": "server_error"}})] * 4)
    out, _ = go(local_cfg(tmp_path, fake))
    assert len(fake.requests) == 1
    assert out.status == "failed" and NULL_CONTENT in out.reason and "not retried" in out.reason
    assert not out.reason.startswith("provider down")


@pytest.mark.parametrize("message", [
    "Failed to parse tools: [json.exception.type_error.302] type must be string, but is null",  # llama.cpp
    "1 validation error for ChatCompletionRequest messages.1.content Input should be a valid string",  # pydantic
    "Conversation roles must alternate user/assistant/user/assistant/...",  # a chat template's raise_exception
    "Unsupported value: 'tool_choice' does not support 'auto' with this model",
])
def test_validation_errors_sent_as_500_are_not_retryable(message):
    e = classify(500, {}, message, "OPENAI_API_KEY", "openai")
    assert type(e) is ProviderError and message in str(e)


@pytest.mark.parametrize("status,message", [(500, "internal error"), (503, "Loading model"),
                                            (502, "upstream sent an invalid response"), (500, "")])
def test_other_5xx_are_still_provider_down_and_retried(status, message):
    assert isinstance(classify(status, {}, message, None, "openai"), ProviderDown)


@pytest.mark.parametrize("status,message", [
    (400, "request (4390 tokens) exceeds the available context size (4096 tokens), try increasing it"),
    (500, "the request exceeds the available context size. try increasing the context size or enable context shift"),
    (500, "Context size has been exceeded."),
])
def test_llama_cpp_context_size_errors_are_context_overflow(status, message):
    assert isinstance(classify(status, {}, message, None, "openai"), ContextOverflow)


def test_a_server_still_loading_its_model_is_waited_for(tmp_path, fake):
    fake.script(error(503, "Loading model", type="unavailable_error"), finish("done", "Waited for the model to load."))
    out, _ = go(local_cfg(tmp_path, fake))
    assert out.status == "done" and len(fake.requests) == 2


def test_vllm_without_auto_tool_choice_fails_with_its_hint(tmp_path, fake):
    hint = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
    fake.script(error(400, body={"object": "error", "message": hint, "type": "BadRequestError", "param": None,
                                 "code": 400}))
    out, _ = go(local_cfg(tmp_path, fake))
    assert out.status == "failed" and hint in out.reason and len(fake.requests) == 1


def test_ollamas_plain_string_error_is_quoted(tmp_path, fake):
    fake.script(error(404, body={"error": 'model "qwen2.5:7b-instruct" not found, try pulling it first'}))
    out, _ = go(local_cfg(tmp_path, fake))
    assert out.status == "failed" and "try pulling it first" in out.reason


# -- 6: placeholder keys are not redacted ---------------------------------------------------------------

@pytest.mark.parametrize("value", ["ollama", "anything", "Anything", "not-needed", "sk-no-key-required", "EMPTY",
                                   "none", "dummy", "changeme", "NotNeeded", "lm-studio", "llama.cpp"])
def test_placeholder_keys_are_not_secrets(value):
    assert not could_be_secret(value)
    assert redact(f"it may be {value} at all", {"OPENAI_API_KEY": value}) == f"it may be {value} at all"


@pytest.mark.parametrize("value", ["sk-local-8f3a9c2e", "hunter2-very-secret-value", "Xk9mQ2pz", "tok-123456789",
                                   "aBcDeFgHiJkL", "correct-horse-battery-staple", "0123456789abcdef"])
def test_values_that_look_like_keys_are_still_redacted(value):
    assert could_be_secret(value)
    assert redact(f"key={value}.", {"MY_SERVICE_TOKEN": value}) == f"key={MASK}."


def test_a_placeholder_key_leaves_agentds_words_alone_and_a_real_key_is_still_masked(tmp_path, fake):
    real = "lsk-9f2c81d04e7b6a35"
    fake.script(reply(tools=[shell(f"echo take anything you like; echo {real}")]),
                finish("done", "Anything goes: the server takes any key."))
    out, store = go(local_cfg(tmp_path, fake, env={"OPENAI_API_KEY": "anything", "DEPLOY_TOKEN": real}))
    assert out.status == "done" and out.summary == "Anything goes: the server takes any key."
    sent = json.dumps(fake.requests[1]["body"])
    assert "take anything you like" in sent and real not in sent and MASK in sent
    assert fake.requests[0]["headers"]["authorization"] == "Bearer anything"
    stored = json.dumps(store.exchanges("r1"), default=str)
    assert "take anything you like" in stored and real not in stored


# -- 7: the recipe in docs/agent.md -------------------------------------------------------------------------

def local_models_section() -> str:
    text = (DOCS / "agent.md").read_text()
    start = text.index("## Local models")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def recipes() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", local_models_section(), re.S)
    return [yaml.safe_load(b) for b in blocks]


def test_the_docs_have_a_recipe_for_each_server():
    section = local_models_section()
    for words in ("llama-server -m", "--jinja", "http://127.0.0.1:8080/v1", "http://127.0.0.1:11434/v1",
                  "--enable-auto-tool-choice", "--tool-call-parser hermes", "max_tokens", "context:"):
        assert words in section, words
    urls = {r["base_url"] for r in recipes()}
    assert {"http://127.0.0.1:8080/v1", "http://127.0.0.1:11434/v1", "http://127.0.0.1:8000/v1"} <= urls


@pytest.mark.parametrize("n", range(3))
def test_each_recipe_in_the_docs_runs_a_task_against_the_fake(tmp_path, fake, n):
    recipe = recipes()[n]
    assert recipe["provider"] == "openai" and recipe["model"] in recipe["prices"]
    fake.script(llama_cpp(reply(tools=[shell("uptime")])), llama_cpp(finish("done", "Checked the uptime of the host.")))
    cfg = make_config(tmp_path, {**recipe, "base_url": fake.url + "/v1"}, {"OPENAI_API_KEY": "anything"})
    assert not cfg.warnings, cfg.warnings
    out, _ = go(cfg)
    assert out.status == "done", out.reason
    body = fake.requests[0]["body"]
    assert body["model"] == recipe["model"] and body["max_tokens"] == recipe.get("max_tokens", 4096)
    assert body["tool_choice"] == "auto"
