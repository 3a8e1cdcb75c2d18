"""An outcome's cause is a name the runner sets (``Outcome.cause``, ``statuses.Cause``), never read from its
reason's text: a reason is for people, and a model or a provider may write anything there."""

from __future__ import annotations

import json

import pytest

from agentd import statuses
from agentd.statuses import Cause
from agentd.store.store import Store
from agentd.tasks.job import Outcome
from agentd.tasks.task import Task
from agentd.wake.recording import recording

from conftest import run_cli
from fake_llm import finish, make_config


def test_a_model_that_ends_blocked_saying_auth_does_not_hold_back_every_agent_task(worklog, fake):
    """A run the model ended ``blocked`` with a summary that starts "auth:" (its reason is that first line)
    is not the provider refusing agentd's key: no backend hold, and the next agent task runs."""
    worklog.write_text("DIRECTIVE: log in to staging {id: first, value: 2}\n- [ ] then this {id: second}\n")
    fake.script(finish("blocked", "auth: the staging server refused my login; a person must reset it"),
                finish("done", "Did the second task and checked it."))
    env = {"OPENAI_API_KEY": "sk-test-" + "o" * 24, "OPENAI_BASE_URL": fake.url + "/v1", "AGENTD_SANDBOX": "off"}
    r = run_cli("wake", "--now", "--task", "first", env=env)
    assert "first: blocked" in r.stdout, r.stdout + r.stderr
    runs = json.loads(run_cli("runs", "--json", env=env).stdout)
    assert runs[0]["reason"].startswith("auth: the staging server")  # the text, for people, as before
    r = run_cli("wake", "--now", "--task", "second", env=env)
    assert "second: done" in r.stdout, r.stdout + r.stderr
    assert len(fake.requests) == 2


@pytest.fixture
def record(tmp_path):
    """Record an agent run's outcome the way a wake does; returns the store's backend holds after."""
    cfg = make_config(tmp_path)
    cfg.worklog_path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(cfg.store_path)
    task = Task(id="job", title="a job", kind="task")

    def rec(outcome: Outcome, run_id: str = "r-1") -> dict:
        with recording(cfg, store, task, run_id, {}) as r:
            r.outcome = outcome
        return store.holds()

    return rec


def test_the_auth_hold_follows_the_cause_not_the_reason_text(record):
    lookalike = Outcome(statuses.BLOCKED, "Blocked.", reason="auth: looks like a refused key", provider="openai")
    assert record(lookalike) == {}
    refused = Outcome(statuses.BLOCKED, "Stopped.", reason="the key was refused", provider="openai", cause=Cause.AUTH)
    holds = record(refused, "r-2")
    assert holds["openai"]["kind"] == "auth" and holds["openai"]["reason"] == "the key was refused"


def test_the_rate_limit_hold_follows_the_cause_not_the_reason_text(record):
    until = "2099-01-01T00:00:00Z"
    daily_text = Outcome(statuses.DEFERRED, "Deferred.", reason="budget: tokens_per_day, says the provider",
                         defer_until=until, provider="openai", cause=Cause.RATE_LIMIT)
    assert record(daily_text)["openai"]["kind"] == "deferred"
    daily = Outcome(statuses.DEFERRED, "Deferred.", reason="the day's tokens are spent", defer_until=until,
                    provider="anthropic", cause=Cause.DAILY_LIMIT)
    assert "anthropic" not in record(daily, "r-2")  # a spent daily budget holds agent tasks by itself


def test_every_cause_is_named_once():
    assert len(set(Cause.ALL)) == len(Cause.ALL) and all(isinstance(c, str) for c in Cause.ALL)
