"""Finding 6, the command-task half: code an agent leaves where it works must never run outside the
sandbox when a person's own command task runs.  The agent plants ``./bench.sh`` through the real
agent loop (real bwrap, the loopback fake model); the person's task is the demo worklog's
``{run: "./bench.sh 7b"}``."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentd import runners
from agentd.workspace import worktrees
from agentd.store.store import Store
from agentd.tasks.task import Task
from fake_llm import finish, make_config, reply

ANT_KEY = "sk-ant-test-0123456789abcdef"


def run_job(cfg, task, run_id):
    store = Store(cfg.store_path)
    store.start_run(run_id=run_id, task_id=task.id, kind=task.kind, title=task.title, status="running",
                    started_at="2025-01-01T00:00:00Z")
    (cfg.state_dir / "runs" / run_id).mkdir(parents=True)
    out = runners.run(runners.Job(cfg, store, run_id, task, {}, cfg.state_dir / "runs" / run_id, lambda s: None))
    store.update_run(run_id, status=out.status)
    return out


def agent_plants_bench_sh(tmp_path, fake) -> tuple:
    """An agent run (hijacked) leaves an executable ./bench.sh in the directory it works in."""
    cfg = make_config(tmp_path, {"provider": "anthropic"},
                      {"ANTHROPIC_API_KEY": ANT_KEY, "ANTHROPIC_BASE_URL": fake.url})
    cfg.worklog_dir.mkdir(parents=True, exist_ok=True)  # where the person's worklog is
    marker = tmp_path / "planted-code-ran.txt"
    fake.script(reply(tools=[("shell", {"command": f"printf '#!/bin/sh\\necho pwned >> {marker}\\n' > bench.sh && "
                                                   "chmod +x bench.sh && ls"})]),
                finish("done", "Left a helper script for the benchmark."))
    out = run_job(cfg, Task(id="helper", title="prepare the bench", kind="task"), "r-agent")
    assert out.status == "done"
    ws = cfg.workspace / "helper"
    assert (ws / "bench.sh").is_file()  # the plant worked: it is in the agent's own workspace
    return cfg, marker, ws


def bench(**attrs) -> Task:
    return Task(id="bench-7b", title="benchmark the 7B model", kind="command",
                attrs={"run": "./bench.sh 7b", **attrs})


def test_a_persons_command_task_never_runs_the_bench_sh_an_agent_planted(tmp_path, fake):
    cfg, marker, _ = agent_plants_bench_sh(tmp_path, fake)
    out = run_job(cfg, bench(), "r-cmd")
    assert not marker.exists()
    assert out.status == "failed" and out.exit_code == 127  # no ./bench.sh where it runs: the worklog's dir
    assert f"exit 127 after" in out.lines[1] and out.lines[1].endswith(f" s in {cfg.worklog_dir}")
    assert "bench.sh: not found" in "\n".join(out.lines)


def test_the_persons_own_bench_sh_next_to_the_worklog_is_what_runs(tmp_path, fake):
    cfg, marker, _ = agent_plants_bench_sh(tmp_path, fake)
    theirs = cfg.worklog_dir / "bench.sh"
    theirs.write_text(f"#!/bin/sh\necho \"person's bench $1\" > {tmp_path / 'ours.txt'}\n")
    theirs.chmod(0o755)
    out = run_job(cfg, bench(), "r-cmd")
    assert out.status == "done" and (tmp_path / "ours.txt").read_text() == "person's bench 7b\n"
    assert not marker.exists()


@pytest.mark.parametrize("protected", [True, False], ids=["protected", "check-off"])
def test_a_cwd_inside_an_agents_workspace_is_refused_with_a_clear_reason(tmp_path, fake, monkeypatch, protected):
    cfg, marker, ws = agent_plants_bench_sh(tmp_path, fake)
    if not protected:  # the check that a cwd is no agent's, switched off
        monkeypatch.setattr(worktrees, "_inside", lambda p, root: False)
    out = run_job(cfg, bench(cwd=str(ws)), "r-cmd")
    if not protected:
        assert marker.exists() and out.status == "done"  # the planted code ran as the person: the test can fail
        return
    assert out.status == "blocked" and not marker.exists()
    assert "inside the agents' workspace" in out.summary and "cwd:" in out.next_step


def test_a_link_to_an_agents_workspace_as_cwd_is_refused_too(tmp_path, fake):
    cfg, marker, ws = agent_plants_bench_sh(tmp_path, fake)
    link = tmp_path / "looks-harmless"
    link.symlink_to(ws)
    out = run_job(cfg, bench(cwd=str(link)), "r-cmd")
    assert out.status == "blocked" and not marker.exists()


def test_a_path_approved_for_an_agent_to_write_is_no_cwd_for_a_command(tmp_path, fake):
    cfg, marker, _ = agent_plants_bench_sh(tmp_path, fake)
    granted = tmp_path / "results"
    granted.mkdir()
    store = Store(cfg.store_path)
    store.add_approval(id="ap-1", run_id="r-agent", task_id="helper", call_id="c1", kind="write",
                       what=str(granted), why="to save results", asked_at="2025-01-01T00:00:00Z",
                       expires_at="2099-01-01T00:00:00Z", answer="approve", answered_at="2025-01-01T00:01:00Z")
    out = run_job(cfg, bench(cwd=str(granted)), "r-cmd")
    assert out.status == "blocked" and "approved for an agent to write" in out.summary


def test_a_cwd_of_the_persons_own_is_where_the_command_runs(tmp_path, fake):
    cfg = make_config(tmp_path, {"provider": "none"})
    cfg.worklog_dir.mkdir(parents=True, exist_ok=True)
    mine = tmp_path / "projects" / "llm"
    mine.mkdir(parents=True)
    out = run_job(cfg, Task(id="pwd", title="where", kind="command", attrs={"run": "pwd", "cwd": str(mine)}), "r1")
    assert out.status == "done" and str(mine) in "\n".join(out.lines)
    rel = run_job(cfg, Task(id="rel", title="rel", kind="command", attrs={"run": "pwd", "cwd": "."}), "r2")
    assert rel.status == "done" and str(Path(cfg.worklog_dir)) in "\n".join(rel.lines)
