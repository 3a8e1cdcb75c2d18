"""cgroup limits around the agent's tools (sandbox/cgroups.py and its cgroup_* parts): a fork bomb and a memory hog in the agent's real
shell are stopped by the run's pids and memory limits and the run says so; the manifest records the
limits; the group is removed and nothing is left running; with no writable cgroup the run and doctor
say why.  Real bwrap and the host's real cgroups (v1 here: /sys/fs/cgroup/pids, memory as root); each
limit test has a twin with the limit off that lets the same bomb through."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agentd.sandbox import cgroup_files, cgroups
from agentd.config import config, limits
from agentd.providers import ToolCall
from agentd.agent.tools import Tools
from conftest import run_cli
from fake_llm import finish, make_config, reply
from conftest import _bwrap_usable
from fake_llm import env_for, tool_results

PIDS = Path("/sys/fs/cgroup/pids")


def _v1_writable(c: str) -> str | None:
    d = Path("/sys/fs/cgroup") / c
    if not (d / "cgroup.procs").exists():
        return f"no cgroup v1 {c} hierarchy at {d}"
    cgroups.reset_cache()
    h = cgroups.host(dict(os.environ))
    return None if c in h.dirs else f"{d} is not writable here ({h.mechanism}: {h.why_none or h.notes})"


needs_bwrap = pytest.mark.skipif(_bwrap_usable() is not None, reason=f"needs a usable bwrap: {_bwrap_usable()}")
needs_pids = pytest.mark.skipif(_v1_writable("pids") is not None,
                                reason=f"needs a writable cgroup pids hierarchy: {_v1_writable('pids')}")
needs_memory = pytest.mark.skipif(_v1_writable("memory") is not None,
                                  reason=f"needs a writable cgroup memory hierarchy: {_v1_writable('memory')}")
BOMB = ("i=0; while [ $i -lt 300 ]; do sleep 5 & echo $i >> started; i=$((i+1)); done; echo spawned $i")


@pytest.fixture(autouse=True)
def fresh_probe():
    cgroups.reset_cache()
    yield
    cgroups.reset_cache()


def sleepers(workspace: Path) -> list[int]:
    """Processes still running in the workspace (the bomb's sleeps)."""
    out = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(p / "cwd") == str(workspace):
                out.append(int(p.name))
        except OSError:
            continue
    return out


def groups_of(run_id: str) -> list[Path]:
    return [d for root in (PIDS, Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup/cpu"))
            for d in root.rglob(f"{run_id}.*") if d.is_dir()]


@needs_bwrap
@needs_pids
@pytest.mark.parametrize("on", [True, False], ids=["limited", "protection-off"])
def test_a_bounded_fork_bomb_in_the_agents_shell_is_stopped_by_its_pids_limit_and_the_run_says_so(
        worklog, fake, tmp_path, on):
    worklog.write_text("DIRECTIVE: run the build {id: bomb}\n")
    fake.script(reply(tools=[("shell", {"command": BOMB})]), finish("done", "Ran it."))
    r = run_cli("wake", "--now", env=env_for(fake, AGENTD_LIMIT_PIDS="64" if on else "none"))
    # (limited, its one tool call failed: a run whose every tool call failed is not done)
    assert ("bomb: failed" if on else "bomb: done") in r.stdout, r.stdout + r.stderr
    run = json.loads(run_cli("runs", "--json").stdout)[0]
    manifest = json.loads((Path(run["run_dir"]) / "manifest.json").read_text())
    ws = Path(manifest["workspace"])
    started = len((ws / "started").read_text().split())
    out = tool_results(fake.requests[1])[-1]
    if on:
        assert started < 64, f"{started} processes started under a pids limit of 64"
        assert "the pids limit (64) was reached: fork failed" in out, out
        lim = manifest["limits"]
        assert lim["mechanism"] == "cgroup-v1" and lim["pids"] == 64, lim
        assert any("pids limit (64) was reached" in h for h in lim["hits"]), lim
    else:
        assert started == 300, out  # the same bomb, unlimited, forks every time
        assert "limit" not in out and manifest["limits"]["pids"] is None
    assert groups_of(run["run_id"]) == []  # the run's groups are removed
    assert sleepers(ws) == []  # and nothing is left running (the sandbox's pid namespace ends with it)


@needs_bwrap
@needs_memory
@pytest.mark.parametrize("on", [True, False], ids=["limited", "protection-off"])
def test_a_memory_hog_under_the_memory_limit_is_killed_and_the_shell_says_oom(tmp_path, on):
    cfg = make_config(tmp_path, {"limit_memory": "100M" if on else "none"}, {"AGENTD_RUN_ID": "rmem"})
    hog = "python3 -c 'b = bytearray(300 * 2**20); b[::4096] = b\"x\" * len(b[::4096]); print(\"allocated\", len(b))'"
    r = Tools(cfg.workspace, cfg.env, cfg=cfg).run(ToolCall("c1", "shell", {"command": hog}), 60)
    if on:
        assert r.is_error and "allocated" not in r.text, r.text
        assert "the memory limit (100M) was reached: the kernel killed 1 process(es) (OOM)" in r.text, r.text
    else:
        assert "allocated 314572800" in r.text and "OOM" not in r.text, r.text
    assert groups_of("rmem") == []


@needs_bwrap
@needs_pids
@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "protection-off"])
def test_the_sandboxed_shell_cannot_move_itself_out_of_its_group(tmp_path, sandboxed):
    cfg = make_config(tmp_path, {"limit_pids": 64, **({} if sandboxed else {"sandbox": "off"})})
    r = Tools(cfg.workspace, cfg.env, cfg=cfg).run(ToolCall("c1", "shell", {
        "command": f"echo $$ > {PIDS}/cgroup.procs && echo moved; grep pids /proc/self/cgroup"}), 30)
    if sandboxed:
        assert "moved" not in r.text and "Read-only file system" in r.text, r.text
    else:  # bwrap's read-only root is what keeps it in: without it, root leaves its group
        assert "moved" in r.text and ":pids:/\n" in r.text + "\n", r.text


@needs_pids
def test_groups_a_killed_agentd_left_are_emptied_and_removed_by_the_next_probe(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    base = Path(cgroups.host(dict(os.environ)).dirs["pids"])
    empty, busy, live = (base / f"rold.{dead.pid}.0", base / f"rold.{dead.pid}.1", base / f"rold.{os.getpid()}.7")
    for d in (empty, busy, live):
        d.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"])
    (busy / "cgroup.procs").write_text(str(sleeper.pid))
    try:
        cgroups.reset_cache()
        cgroups.host(dict(os.environ))
        assert not empty.exists() and not busy.exists()
        assert sleeper.wait(timeout=10) == -9  # its leftover was killed first
        assert live.exists()  # ours (this process runs): kept
    finally:
        sleeper.kill()
        cgroups.remove(live, "cgroup-v1")


def test_with_no_writable_cgroup_the_run_runs_unlimited_and_the_manifest_and_doctor_say_why(
        tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "ROOT", tmp_path / "empty-cgroup-root")
    (tmp_path / "empty-cgroup-root").mkdir()
    cfg = make_config(tmp_path, {}, {"XDG_RUNTIME_DIR": str(tmp_path / "run")})
    d = cgroups.describe(cfg)
    assert d["mechanism"] == "none" and d["pids"] is None and d["memory"] is None
    assert "no cgroup v1 pids, memory or cpu hierarchy" in d["why_none"]
    assert "no user systemd manager answers" in d["why_none"]
    status, what, fix = cgroups.doctor_line(cfg)
    assert status == "WARN" and "none possible here" in what and "Delegate=yes" in fix
    if _bwrap_usable() is None:
        r = Tools(cfg.workspace, cfg.env, cfg=cfg).run(ToolCall("c1", "shell", {"command": "echo ran"}), 30)
        assert r.text.startswith("ran") and not r.is_error


def test_limits_off_in_the_config_are_recorded_as_off(tmp_path):
    cfg = make_config(tmp_path, {"limit_pids": "none", "limit_memory": 0, "limit_cpu_weight": False})
    assert limits.limits(cfg).wanted() == {}
    assert cgroups.describe(cfg)["why_none"].endswith("are off in the config")
    assert cgroups.doctor_line(cfg)[0] == "OK"


def test_the_limit_keys_are_checked_and_a_bad_value_names_the_key(tmp_path):
    cfg = make_config(tmp_path, {"limit_memory": "25%", "limit_pids": 200})
    assert limits.limits(cfg).memory == limits.mem_total() // 4 and limits.limits(cfg).pids == 200
    auto = make_config(tmp_path, {})
    assert limits.limits(auto).memory == min(limits.mem_total() // 2, 8 * 2**30)
    assert limits.parse_size("1.5G") == 3 * 2**29 and limits.parse_size("512MiB") == 512 * 2**20
    for key, bad, says in (("limit_memory", "lots", "a size like 512M"), ("limit_memory", "1K", "at least 16M"),
                           ("limit_pids", -1, "a whole number"), ("limit_pids", 3, "at least 8"),
                           ("limit_cpu_weight", 20000, "up to 10000")):
        with pytest.raises(config.ConfigError) as e:
            make_config(tmp_path, {key: bad})
        assert any(f"'{key}'" in p and says in p for p in e.value.problems), e.value.problems


def test_systemd_run_wraps_the_command_in_a_limited_user_scope_and_the_probe_says_no_without_a_manager(tmp_path):
    argv = cgroups.systemd_run_argv(["bwrap", "--", "sh"], limits.Limits(pids=64, memory=2**30, cpu_weight=50),
                                    "r1.9.0", "/run/user/1000")
    assert argv == ["env", "XDG_RUNTIME_DIR=/run/user/1000", "systemd-run", "--user", "--scope", "--quiet",
                    "--collect", "--unit=agentd-r1.9.0", "-p", "TasksMax=64", "-p", f"MemoryMax={2**30}", "-p",
                    "MemorySwapMax=0", "-p", "CPUWeight=50", "--", "env", "-u", "XDG_RUNTIME_DIR", "bwrap", "--",
                    "sh"]
    why = cgroups.systemd_run_missing({"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(tmp_path)})
    assert why is not None and ("no user systemd manager answers" in why or "not installed" in why)


def test_a_delegated_cgroup_v2_tree_gets_the_run_groups_and_their_limit_files(tmp_path, monkeypatch):
    """cgroup v2 as files in a temp dir (this host's v2 tree offers no controllers): the probe finds the
    delegated dir, enables the controllers for its children, and a run group gets its limit files."""
    own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
               if line.startswith("0::"))
    root = tmp_path / "v2"
    mine = root / own.lstrip("/")
    mine.mkdir(parents=True, exist_ok=True)
    for d in {root, mine}:
        (d / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (d / "cgroup.subtree_control").write_text("")
        (d / "cgroup.procs").write_text("")
    monkeypatch.setattr(cgroups, "ROOT", root)
    cfg = make_config(tmp_path, {"limit_pids": 64, "limit_memory": "1G", "limit_cpu_weight": 30})
    h = cgroups.host(cfg.env)
    assert h.mechanism == "cgroup-v2" and set(h.dirs) == {"pids", "memory", "cpu"}, h
    assert (mine / "cgroup.subtree_control").read_text().startswith("+")  # (a file keeps the last write)
    g = cgroups.group(cfg, "r2").__enter__()
    d = mine / f"agentd-{g.name}"
    assert (d / "pids.max").read_text() == "64" and (d / "memory.max").read_text() == str(2**30)
    assert (d / "cpu.weight").read_text() == "30"
    assert g.wrap(["bwrap"])[-3:] == [str(d / "cgroup.procs"), "--", "bwrap"]
    assert g.describe() == {"mechanism": "cgroup-v2", "pids": 64, "memory": 2**30, "cpu_weight": 30}


@needs_bwrap
@needs_pids
@needs_memory
def test_a_limit_the_kernel_refuses_is_said_and_the_others_still_apply(tmp_path, monkeypatch):
    """A memory cgroup's mkdir or a pids.max write can fail at run time (ENOSPC once leaked groups use up the
    kernel's ids): the other limits still hold, and the shell's output and the manifest say which did not."""
    import errno

    cgroups.reset_cache()
    cfg = make_config(tmp_path, {"limit_pids": 64, "limit_memory": "100M"}, {"AGENTD_RUN_ID": "rrefused"})
    run_dir = cfg.runs_dir / "rrefused"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"limits": cgroups.describe(cfg)}))
    real = cgroup_files.write

    def refuse_pids(p, text):
        if p.name == "pids.max":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(p, text)

    monkeypatch.setattr(cgroup_files, "write", refuse_pids)  # where every cgroup file write goes
    hog = "python3 -c 'b = bytearray(300 * 2**20); b[::4096] = b\"x\" * len(b[::4096]); print(\"allocated\", len(b))'"
    r = Tools(cfg.workspace, cfg.env, cfg=cfg).run(ToolCall("c1", "shell", {"command": hog}), 60)
    assert "limits not applied to this command: pids (No space left on device)" in r.text, r.text
    assert "allocated" not in r.text and "the memory limit (100M) was reached" in r.text, r.text  # it still held
    lim = json.loads((run_dir / "manifest.json").read_text())["limits"]
    assert lim["pids"] is None and lim["memory"] == 100 * 2**20, lim
    assert lim["not_applied"] == {"pids": "No space left on device"}, lim
    assert groups_of("rrefused") == []
