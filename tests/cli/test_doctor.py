"""agentd.cli.doctor: OK/WARN/FAIL lines with fixes, exit 1 on any FAIL, no secrets printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentd.config import config
from agentd.cli import doctor
from agentd.platform import systemd

FAKEBIN = Path(__file__).resolve().parents[1] / "fakebin"


def make_env(tmp_path: Path, **extra: str) -> dict:
    home = tmp_path / "home"
    (tmp_path / "run").mkdir(mode=0o700, exist_ok=True)
    bin_dir = tmp_path / "bin"  # stand-ins without claude unless a test links it
    bin_dir.mkdir(exist_ok=True)
    for tool in ("systemctl", "loginctl"):
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(FAKEBIN / tool)
    env = {"HOME": str(home), "USER": "tester", "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_STATE_HOME": str(home / ".local" / "state"), "XDG_RUNTIME_DIR": str(tmp_path / "run"),
           "PATH": f"{bin_dir}:/usr/bin:/bin", "AGENTD_WORKLOG_DIR": str(tmp_path / "wl"),
           "FAKE_SYSTEMCTL_LOG": str(tmp_path / "systemctl.log")}
    env.update(extra)
    return env


def run(env: dict) -> tuple[int, str, list]:
    lines: list[str] = []
    checks = doctor.run_checks(lambda: config.load(env), torch=False)
    rc = doctor.doctor(lines.append, lambda: config.load(env), torch=False)
    return rc, "\n".join(lines), checks


def status_of(checks, fragment: str) -> str:
    found = [c.status for c in checks if fragment in c.what]
    assert found, f"no check mentions {fragment!r}: {[c.what for c in checks]}"
    return found[0]


def test_fresh_host_warns_with_fixes_and_exits_0(tmp_path):
    rc, text, checks = run(make_env(tmp_path))
    assert rc == 0
    assert status_of(checks, "worklog") == "WARN" and "run `agentd init`" in text
    assert status_of(checks, "state dir") == "WARN"
    assert status_of(checks, "not installed") == "WARN"
    assert status_of(checks, "provider auto") == "WARN"
    assert all(line.split()[0] in ("OK", "WARN", "FAIL", "fix:") for line in text.splitlines()[:-1]
               if line.strip() and not line.startswith("       "))
    assert text.splitlines()[-1].endswith("0 failed")


def test_config_problems_fail_and_are_listed(tmp_path):
    env = make_env(tmp_path)
    cfg_file = Path(env["XDG_CONFIG_HOME"]) / "agentd" / "config.yaml"
    cfg_file.parent.mkdir(parents=True)
    cfg_file.write_text("max_step: 3\nnice: 99\n")
    rc, text, checks = run(env)
    assert rc == 1
    assert checks[0].status == "FAIL" and "2 problem(s)" in checks[0].what
    assert "'max_step': unknown key (did you mean 'max_steps'?)" in text and "'nice'" in text


def test_a_healthy_install(tmp_path):
    env = make_env(tmp_path, AGENTD_PROVIDER="anthropic", FAKE_LINGER="yes")
    cfg = config.load(env)
    cfg.worklog_dir.mkdir(parents=True, exist_ok=True)
    cfg.worklog_path.write_text("")
    cfg.ensure_state_dir()
    assert systemd.install(cfg, out=lambda s: None) == 0
    systemd.env_file(cfg).write_text("# keys\nANTHROPIC_API_KEY='sk-ant-secret-value'\n")
    rc, text, checks = run(env)
    assert rc == 0, text
    assert [c.status for c in checks if c.status != "OK"] == [], text
    assert "match this install" in text and "linger is on" in text and "next wakes at" in text
    assert f"ANTHROPIC_API_KEY set in {systemd.env_file(cfg)}" in text
    assert "sk-ant-secret-value" not in text


def test_timer_check_tells_an_unreachable_user_manager_from_an_inactive_timer(tmp_path):
    env = make_env(tmp_path, AGENTD_PROVIDER="anthropic", FAKE_LINGER="yes")
    cfg = config.load(env)
    assert systemd.install(cfg, out=lambda s: None) == 0
    check = doctor.check_timer(config.load({**env, "FAKE_NEXT_ELAPSE": "n/a"}))
    assert (check.status, check.what) == ("WARN", "agentd.timer is not active")
    assert "enable --now agentd.timer" in check.fix
    # a su/sudo shell: no XDG_RUNTIME_DIR, and systemctl --user can't reach the bus
    no_bus = {k: v for k, v in env.items() if k != "XDG_RUNTIME_DIR"} | {"FAKE_SYSTEMCTL_FAIL": "1"}
    check = doctor.check_timer(config.load(no_bus))
    assert check.status == "WARN" and "cannot tell whether agentd.timer is active" in check.what
    assert "Failed to connect to bus" in check.what
    assert "export XDG_RUNTIME_DIR=/run/user/$(id -u)" in check.fix and "enable --now" not in check.fix
    check = doctor.check_timer(config.load({**env, "FAKE_SYSTEMCTL_FAIL": "1"}))
    assert "login session" in check.fix and "enable-linger" in check.fix and "enable --now" not in check.fix


def test_missing_api_key_fails_without_printing_values(tmp_path):
    env = make_env(tmp_path, AGENTD_PROVIDER="openai", ANTHROPIC_API_KEY="sk-ant-other")
    rc, text, checks = run(env)
    assert rc == 1 and status_of(checks, "OPENAI_API_KEY is not set") == "FAIL"
    assert "sk-ant-other" not in text
    rc, text, _ = run({**env, "OPENAI_API_KEY": "sk-openai-xyz"})
    assert rc == 0 and "OPENAI_API_KEY set in the environment" in text and "sk-openai-xyz" not in text


def test_cli_backend_must_be_on_path(tmp_path):
    env = make_env(tmp_path, AGENTD_PROVIDER="claude-cli")
    rc, text, checks = run(env)
    assert rc == 1 and status_of(checks, "`claude` is not on PATH") == "FAIL"
    (tmp_path / "bin" / "claude").symlink_to(FAKEBIN / "claude")
    rc, text, checks = run(env)
    assert rc == 0 and status_of(checks, "provider claude-cli: claude is") == "OK"


def test_state_dir_permissions_and_unwritable_worklog(tmp_path):
    env = make_env(tmp_path)
    cfg = config.load(env)
    cfg.state_dir.mkdir(parents=True, mode=0o755)
    cfg.state_dir.chmod(0o755)
    cfg.worklog_dir.mkdir(parents=True, exist_ok=True)
    cfg.worklog_path.write_text("")
    rc, text, checks = run(env)
    assert status_of(checks, "state dir") == "WARN" and f"chmod 700 {cfg.state_dir}" in text
    assert status_of(checks, "worklog") == "OK"
    (cfg.worklog_path).unlink()
    cfg.worklog_path.mkdir()
    rc, text, checks = run(env)
    assert rc == 1 and status_of(checks, "is not a file") == "FAIL"


def test_outdated_units_warn(tmp_path):
    env = make_env(tmp_path)
    assert systemd.install(config.load(env), out=lambda s: None) == 0
    rc, text, checks = run({**env, "AGENTD_NICE": "0"})
    assert status_of(checks, "differs from this install") == "WARN"
    assert "run `agentd install`" in text and "linger is off" in text


def test_disk_thresholds(tmp_path):
    paths = {"state dir": tmp_path / "not" / "yet", "workspace": tmp_path}
    [check] = doctor.check_disk(paths, warn_bytes=1, fail_bytes=0)
    assert check.status == "OK" and "state dir, workspace" in check.what
    [check] = doctor.check_disk(paths, warn_bytes=1 << 62, fail_bytes=0)
    assert check.status == "WARN"
    [check] = doctor.check_disk(paths, warn_bytes=1 << 62, fail_bytes=1 << 61)
    assert check.status == "FAIL" and "free disk space" in check.fix


def _python(tmp_path: Path, body: str) -> str:
    p = tmp_path / "python"
    p.write_text(f"#!/bin/sh\n{body}\n")
    p.chmod(0o755)
    return str(p)


def test_torch_check_reads_the_probe(tmp_path):
    ok = doctor.check_torch(_python(tmp_path, """echo '{"version": "2.9", "cuda": true, "device": "H100"}'"""))
    assert ok.status == "OK" and "CUDA (H100)" in ok.what
    bad = doctor.check_torch(_python(tmp_path, "echo \"ModuleNotFoundError: No module named 'torch'\" >&2; exit 1"))
    assert bad.status == "WARN" and "No module named 'torch'" in bad.what and "gpu" in bad.fix
    slow = doctor.check_torch(_python(tmp_path, "sleep 5"), timeout=0.5)
    assert slow.status == "WARN" and "took over" in slow.what


def test_doctor_in_a_subprocess(tmp_path):
    env = make_env(tmp_path, AGENTD_PROVIDER="codex-cli")
    code = "import sys\nfrom agentd.cli.doctor import doctor\nsys.exit(doctor(torch=False))\n"
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "FAIL provider codex-cli: `codex` is not on PATH" in p.stdout


@pytest.mark.slow
def test_cli_doctor(cli):
    p = cli("doctor", env={"AGENTD_PROVIDER": "codex-cli", "PATH": "/usr/bin:/bin"})
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "FAIL provider codex-cli" in p.stdout and "torch" in p.stdout
    assert p.stdout.splitlines()[-1].endswith(" failed") and not p.stdout.splitlines()[-1].endswith(" 0 failed")


def test_doctor_and_status_warn_about_unreadable_worklog_lines(cli, worklog):
    worklog.write_text("- [ ] good {id: good}\n- [ ] bad {value: lots}\n")
    s = cli("status")
    assert s.returncode == 0 and "1 line(s) of the worklog could not be read" in s.stdout
    d = cli("doctor")
    assert "WARN" in d.stdout and "could not be read" in d.stdout and "agentd queue" in d.stdout


def network_check(checks):
    found = [c for c in checks if c.what.startswith("network")]
    assert len(found) == 1, [c.what for c in checks]
    return found[0]


def test_doctor_says_which_network_each_kind_of_task_gets_by_default(tmp_path):
    _, text, checks = run(make_env(tmp_path))
    c = network_check(checks)
    assert c.status == "OK" and "config `network: false`" in c.what
    assert "API agents' shell: none\n" in text
    assert "CLI agents: their provider, through agentd's proxy (which adds the key), nothing else\n" in text
    assert "command tasks: the host's network (they run as you, outside the sandbox)" in text
    assert "{network: true} is the full network, no egress filter" in text


def test_doctor_names_the_hosts_of_a_network_list_in_the_config(tmp_path):
    _, text, checks = run(make_env(tmp_path, AGENTD_NETWORK="[pypi.org, GitHub.com]"))
    assert network_check(checks).status == "OK" and "config `network: [pypi.org, github.com]`" in text
    assert ("API agents' shell: only pypi.org, github.com (and their subdomains), through agentd's proxy\n"
            in text)
    assert ("CLI agents: their provider, through agentd's proxy (which adds the key), and pypi.org, github.com "
            "(and their subdomains)\n") in text


def test_doctor_says_plainly_when_every_agent_task_gets_the_full_network(tmp_path):
    _, text, checks = run(make_env(tmp_path, AGENTD_NETWORK="true"))
    assert network_check(checks).status == "WARN"
    assert "network: full network, no egress filter, for every agent task by default (`network: true`" in text
    assert "API agents' shell: full network, no egress filter\n" in text
    assert "CLI agents: full network, no egress filter\n" in text
    assert "fix: set `network:` to the hosts your tasks need" in text


def test_doctor_says_sandbox_off_is_the_full_network_for_every_task(tmp_path):
    _, text, checks = run(make_env(tmp_path, AGENTD_SANDBOX="off", AGENTD_NETWORK="[pypi.org]"))
    c = network_check(checks)
    assert c.status == "WARN" and "full network, no egress filter, for every task (`sandbox: off`)" in c.what
    assert "API agents' shell: full network, no egress filter" in text and "a task's own" not in text


@pytest.mark.skipif(not __import__("agentd.sandbox.bwrap").sandbox.bwrap.status().ok, reason="bwrap unusable here")
@pytest.mark.parametrize("network", ["true", "false"])
def test_the_canary_reaching_the_network_the_config_grants_is_a_warning_not_a_failure(tmp_path, network):
    """With `network: true` the canary's shell reaches the loopback server outside, as the config asks:
    doctor says `granted` and warns (exit 0); without it, nothing is reached."""
    _, text, checks = run(make_env(tmp_path, AGENTD_NETWORK=network))
    canary = next(c for c in checks if c.what.startswith("sandbox canary"))
    if network == "true":
        assert canary.status == "WARN" and "granted  network (a loopback server outside)" in canary.what, text
        assert "REACHED" not in canary.what and "full network, no egress filter" in canary.what
    else:
        assert canary.status == "OK" and "refused  network (a loopback server outside)" in canary.what, text
    assert "FAIL sandbox canary" not in text, text
