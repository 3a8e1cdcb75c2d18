"""agentd.platform.systemd: rendered units pass systemd's own checks; install/uninstall
against stand-in systemctl/loginctl (tests/fakebin) and, where the sandbox
allows, a real systemd user manager."""

from __future__ import annotations

import datetime as dt
import filecmp
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agentd.config import config
from agentd.platform import systemd
from agentd.errors import ConfigError, UsageError

REPO = Path(__file__).resolve().parents[2]
FAKEBIN = Path(__file__).resolve().parents[1] / "fakebin"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def make_env(tmp_path: Path, **extra: str) -> dict:
    home = tmp_path / "home"
    (tmp_path / "run").mkdir(mode=0o700, exist_ok=True)
    env = {
        "HOME": str(home), "USER": "tester", "LANG": "C.UTF-8",
        "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "PATH": f"{FAKEBIN}:/usr/local/bin:/usr/bin:/bin",
        "FAKE_SYSTEMCTL_LOG": str(tmp_path / "systemctl.log"),
        "FAKE_LOGINCTL_LOG": str(tmp_path / "loginctl.log"),
    }
    env.update(extra)
    return env


def fake_exe(tmp_path: Path, name: str = "agentd") -> str:
    p = tmp_path / "bin" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("#!/bin/sh\nexit 0\n")
    p.chmod(0o755)
    return str(p)


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def changing_calls(tmp_path: Path) -> list[str]:
    return [c for c in calls(tmp_path) if " show " not in f" {c} "]


def write_units(units: dict, d: Path) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in units.items():
        (d / name).write_text(text)
    return [str(d / n) for n in units]


def verify(paths: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    run = tmp_path / "verify-run"
    run.mkdir(mode=0o700, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
           "XDG_RUNTIME_DIR": str(run), "LANG": "C.UTF-8"}
    return subprocess.run([ANALYZE, "--user", "verify", "--man=no", *paths], env=env,
                          capture_output=True, text=True, timeout=60)


# -- the templates ----------------------------------------------------------------
def test_packaged_units_are_byte_identical_to_units_dir():
    src, pkg = REPO / "units", REPO / "daemon" / "agentd" / "platform" / "units"
    names = sorted(p.name for p in src.iterdir())
    assert names == sorted(systemd.UNITS)
    assert sorted(p.name for p in pkg.iterdir() if p.name != "__pycache__") == names
    for n in names:
        assert filecmp.cmp(src / n, pkg / n, shallow=False), f"{n} differs between units/ and agentd/platform/units/"


@needs_analyze
@pytest.mark.parametrize("every,settings", [
    (None, {}),
    ("45m", {"AGENTD_IO_IDLE": "false", "AGENTD_NICE": "-5"}),
    ("1d", {"AGENTD_RUN_TIMEOUT": "3h", "AGENTD_NOTIFY": "notify-send agentd"}),
])
def test_rendered_units_pass_systemd_analyze_verify(tmp_path, every, settings):
    env = make_env(tmp_path, **settings)
    env["PATH"] = f"/opt/with space/bin:/opt/100%/bin:{env['PATH']}"
    cfg = config.load(env)
    units = systemd.render(cfg, every, agentd_exe=fake_exe(tmp_path))
    p = verify(write_units(units, tmp_path / "units"), tmp_path)
    assert (p.returncode, p.stderr, p.stdout) == (0, "", "")


@needs_analyze
def test_verify_notices_a_broken_unit(tmp_path):
    """The check above is worth something: a missing binary makes verify fail."""
    cfg = config.load(make_env(tmp_path))
    units = systemd.render(cfg, agentd_exe=str(tmp_path / "missing" / "agentd"))
    p = verify(write_units(units, tmp_path / "units"), tmp_path)
    assert p.returncode != 0 and "missing/agentd" in p.stderr


def test_render_fills_the_values(tmp_path):
    env = make_env(tmp_path, AGENTD_NICE="5", AGENTD_IO_IDLE="false", AGENTD_COMMAND_TIMEOUT="2h",
                   AGENTD_RUN_TIMEOUT="30m", AGENTD_CALL_TIMEOUT="5m")
    cfg = config.load(env)
    exe = fake_exe(tmp_path)
    units = systemd.render(cfg, "6h", agentd_exe=exe, path_env="/x/bin:/usr/bin")
    service, timer, notify = (units[n] for n in systemd.UNITS)
    for text in units.values():
        assert "@" not in re.sub(r"(?m)^#.*$", "", text).replace("agentd-notify@", "")
    assert f"\nExecStart={exe} wake\n" in service
    assert "\nEnvironment=PATH=/x/bin:/usr/bin AGENTD_COMMAND_TIMEOUT=2h AGENTD_RUN_TIMEOUT=30m " \
           "AGENTD_CALL_TIMEOUT=5m\n" in service  # settings made by env var at install reach the service
    assert "\nEnvironmentFile=-%h/.config/agentd/env\n" in service
    assert "\nTimeoutStartSec=2h 10min\n" in service  # 2h + call_timeout 5m + 5m margin
    assert "\nNice=5\n" in service and "\nIOSchedulingClass=best-effort\n" in service
    assert "\nType=oneshot\n" in service and "\nSuccessExitStatus=75\n" in service
    assert "\nOnFailure=agentd-notify@%n.service\n" in service
    assert "\nKillMode=control-group\n" in service and "\nNoNewPrivileges=yes\n" in service
    assert "\nSyslogIdentifier=agentd\n" in service
    assert "\nOnCalendar=*-*-* 00/6:00:00\n" in timer and "\nPersistent=true\n" in timer
    assert "\nRandomizedDelaySec=15min\n" in timer and "\nWantedBy=timers.target\n" in timer
    assert f"\nExecStart={exe} notify --unit %i\n" in notify
    assert systemd.render(cfg, "6h", agentd_exe=exe, path_env="/x/bin:/usr/bin") == units  # deterministic


def test_installed_units_explain_themselves_not_the_template(tmp_path):
    """The template's notes on its @NAME@ placeholders stay in units/; an installed copy
    says where it came from and how to change it."""
    cfg = config.load(make_env(tmp_path))
    units = systemd.render(cfg, "6h", agentd_exe=fake_exe(tmp_path))
    for name, text in units.items():
        assert not re.search(r"@[A-Z_]+@", text) and "This is a template" not in text, name
        assert "Written by `agentd install`" in text and str(cfg.config_file) in text, name
    assert units["agentd.timer"].startswith("# agentd.timer: wakes agentd every 6h.\n")
    assert "Persistent=true works" in units["agentd.timer"]  # the template's other notes stay
    assert "so %i is\n# \"agentd.service\"" in units["agentd-notify@.service"]
    for name in systemd.UNITS:  # the template itself still documents the placeholders
        assert "This is a template" in (REPO / "units" / name).read_text()


def test_render_passes_non_default_locations(tmp_path):
    env = make_env(tmp_path, XDG_CONFIG_HOME=str(tmp_path / "cfg"), AGENTD_HOST="box1")
    cfg = config.load(env)
    service = systemd.render(cfg, agentd_exe="/opt/agent d/bin/agentd", path_env="/a b:/c")["agentd.service"]
    assert '\nExecStart="/opt/agent d/bin/agentd" wake\n' in service
    assert f'Environment="PATH=/a b:/c" AGENTD_HOST=box1 XDG_CONFIG_HOME={tmp_path}/cfg\n' in service
    assert f"\nEnvironmentFile=-{tmp_path}/cfg/agentd/env\n" in service
    assert systemd.user_unit_dir(env) == tmp_path / "cfg" / "systemd" / "user"


def test_default_agentd_exe_is_this_installs_script():
    exe = systemd.default_agentd_exe()
    assert os.path.isabs(exe) and os.access(exe, os.X_OK) and exe.endswith("/agentd")


# -- interval -> OnCalendar ----------------------------------------------------------
def _elapses(expr: str, n: int) -> list[dt.datetime]:
    p = subprocess.run([ANALYZE, "calendar", f"--iterations={n}", expr], capture_output=True, text=True,
                       env={"TZ": "UTC", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
                       timeout=30)
    assert p.returncode == 0, p.stderr
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", p.stdout)
    assert len(stamps) == n, p.stdout
    return [dt.datetime.fromisoformat(s) for s in stamps]


@needs_analyze
@pytest.mark.parametrize("interval,minutes", [
    ("1m", 1), ("5m", 5), ("15m", 15), ("16m", 16), ("30m", 30), ("45m", 45), ("1h", 60), ("90m", 90),
    ("1.5h", 90), ("2h", 120), ("3h", 180), ("4h", 240), ("6h", 360), ("8h", 480), ("12h", 720),
    ("24h", 1440), ("1d", 1440), ("7d", 10080),
])
def test_on_calendar_is_accepted_and_evenly_spaced(interval, minutes):
    exprs = systemd.on_calendar(interval)
    if interval == "6h":
        assert exprs == ["*-*-* 00/6:00:00"]
    if interval == "30m":
        assert exprs == ["*-*-* *:00/30:00"]
    if interval == "1d":
        assert exprs == ["daily"]
    n = 30
    times = sorted({t for e in exprs for t in _elapses(e, n)})[:n]
    gaps = {(b - a).total_seconds() / 60 for a, b in zip(times, times[1:])}
    assert gaps == {minutes}, (exprs, times)
    if minutes <= 1440:  # aligned to midnight: the same times every day
        assert all((t.hour * 60 + t.minute) % minutes == 0 for t in times)


@pytest.mark.parametrize("bad", ["7h", "25h", "90s", "2d", "50m", "1.1h"])
def test_intervals_that_do_not_divide_a_day_are_refused(tmp_path, bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        systemd.on_calendar(bad)
    cfg = config.load(make_env(tmp_path))
    with pytest.raises(UsageError, match=re.escape(repr(bad))):
        systemd.render(cfg, bad, agentd_exe="/bin/true")
    cfg = config.load(make_env(tmp_path, AGENTD_INTERVAL=bad))
    with pytest.raises(ConfigError, match=r"'interval'.*" + re.escape(repr(bad))):
        systemd.render(cfg, agentd_exe="/bin/true")


# -- install / uninstall with stand-ins ----------------------------------------------------
def test_dry_run_writes_units_and_runs_nothing(tmp_path):
    env = make_env(tmp_path)
    cfg = config.load(env)
    out: list[str] = []
    assert systemd.install(cfg, "2h", dry_run=True, unit_dir=tmp_path / "dry", out=out.append) == 0
    assert sorted(p.name for p in (tmp_path / "dry").iterdir()) == sorted(systemd.UNITS)
    assert "OnCalendar=*-*-* 00/2:00:00" in (tmp_path / "dry" / "agentd.timer").read_text()
    assert calls(tmp_path) == [] and not (tmp_path / "systemctl.log").exists()
    assert not systemd.user_unit_dir(env).exists() and not systemd.env_file(cfg).exists()
    assert any("dry run" in line for line in out)


def test_dry_run_without_unit_dir_uses_a_fresh_temp_dir(tmp_path):
    cfg = config.load(make_env(tmp_path))
    out: list[str] = []
    assert systemd.install(cfg, dry_run=True, out=out.append) == 0
    written = [Path(line.split(" ", 1)[1]) for line in out if line.startswith("wrote ")]
    assert len(written) == 3 and all(p.is_file() for p in written)
    shutil.rmtree(written[0].parent)
    assert calls(tmp_path) == []


def test_unit_dir_goes_only_with_dry_run(tmp_path):
    cfg = config.load(make_env(tmp_path))
    with pytest.raises(UsageError, match="--dry-run"):
        systemd.install(cfg, unit_dir=tmp_path / "x", out=lambda s: None)


def test_install_writes_units_env_file_and_enables_timer(tmp_path):
    env = make_env(tmp_path)
    cfg = config.load(env)
    out: list[str] = []
    assert systemd.install(cfg, out=out.append) == 0
    unit_dir = tmp_path / "home" / ".config" / "systemd" / "user"
    assert sorted(p.name for p in unit_dir.iterdir()) == sorted(systemd.UNITS)
    assert changing_calls(tmp_path) == ["--user daemon-reload", "--user enable --now agentd.timer"]
    env_file = tmp_path / "home" / ".config" / "agentd" / "env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "ANTHROPIC_API_KEY" in env_file.read_text()
    text = "\n".join(out)
    assert "loginctl enable-linger" in text  # the stand-in says Linger=no
    assert "next wake: Sun 2026-11-22 18:00:00 UTC" in text
    assert systemd.units_match(cfg)[0]

    # Again: idempotent; the env file (now holding a key) is kept as it is.
    env_file.write_text("ANTHROPIC_API_KEY=sk-test\n")
    before = {p.name: p.read_text() for p in unit_dir.iterdir()}
    out.clear()
    assert systemd.install(cfg, out=out.append) == 0
    assert {p.name: p.read_text() for p in unit_dir.iterdir()} == before
    assert env_file.read_text() == "ANTHROPIC_API_KEY=sk-test\n"
    assert sum(line.startswith("unchanged ") for line in out) == 3
    assert changing_calls(tmp_path)[2:] == ["--user daemon-reload", "--user enable --now agentd.timer"]


def test_install_says_nothing_about_linger_when_it_is_on(tmp_path):
    cfg = config.load(make_env(tmp_path, FAKE_LINGER="yes"))
    out: list[str] = []
    assert systemd.install(cfg, out=out.append) == 0
    assert not any("linger" in line for line in out)
    assert (tmp_path / "loginctl.log").read_text().split() == ["show-user", "tester", "--property=Linger"]


def test_install_with_every_is_what_units_match_compares_against(tmp_path):
    env = make_env(tmp_path)
    cfg = config.load(env)
    assert systemd.install(cfg, "2h", out=lambda s: None) == 0
    ok, message = systemd.units_match(cfg)
    assert ok, message
    assert "every 2h" in message
    changed = config.load({**env, "AGENTD_NICE": "3"})
    ok, message = systemd.units_match(changed)
    assert not ok and "Nice=10" in message and "Nice=3" in message


def test_units_match_when_not_installed(tmp_path):
    ok, message = systemd.units_match(config.load(make_env(tmp_path)))
    assert not ok and "not installed" in message


def test_uninstall_removes_units_keeps_env_and_state(tmp_path):
    env = make_env(tmp_path)
    cfg = config.load(env)
    assert systemd.install(cfg, out=lambda s: None) == 0
    cfg.state_dir.mkdir(parents=True)
    (cfg.state_dir / "agentd.sqlite3").write_text("x")
    wants = systemd.user_unit_dir(env) / "timers.target.wants"
    wants.mkdir()
    (wants / "agentd.timer").symlink_to("../agentd.timer")  # what a real enable leaves
    n = len(calls(tmp_path))
    out: list[str] = []
    assert systemd.uninstall(cfg, out=out.append) == 0
    assert not any(systemd.user_unit_dir(env).glob("agentd*"))
    assert not (wants / "agentd.timer").is_symlink()
    assert [c for c in calls(tmp_path)[n:] if "reset-failed" not in c] == [
        "--user disable --now agentd.timer", "--user daemon-reload"]
    assert systemd.env_file(cfg).exists() and (cfg.state_dir / "agentd.sqlite3").exists()
    assert "kept" in out[-1]
    out.clear()
    assert systemd.uninstall(cfg, out=out.append) == 0  # idempotent
    assert any("no agentd units" in line for line in out)


def _run_install_in_subprocess(env: dict, func: str = "install") -> subprocess.CompletedProcess:
    code = ("import sys\nfrom agentd.config import config\nfrom agentd.platform import systemd\n"
            f"sys.exit(systemd.{func}(config.load()))\n")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_install_without_systemctl_says_so_and_fails_cleanly(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = make_env(tmp_path, PATH=str(empty))
    p = _run_install_in_subprocess(env)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert "systemctl is not on PATH" in p.stderr and "cron" in p.stderr
    assert not (tmp_path / "home" / ".config" / "systemd").exists()
    p = _run_install_in_subprocess(env, "uninstall")  # nothing to undo, nothing to complain about
    assert p.returncode == 0 and "Traceback" not in p.stderr


def test_install_when_the_user_manager_is_unreachable(tmp_path):
    env = make_env(tmp_path, FAKE_SYSTEMCTL_FAIL="1")
    del env["XDG_RUNTIME_DIR"]
    p = _run_install_in_subprocess(env)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "daemon-reload` failed: Failed to connect to bus" in p.stderr
    assert "XDG_RUNTIME_DIR" in p.stderr and "enable-linger" in p.stderr
    assert calls(tmp_path) == ["--user daemon-reload"]


def test_uninstall_when_the_user_manager_is_unreachable(tmp_path):
    env = make_env(tmp_path)
    assert systemd.install(config.load(env), out=lambda s: None) == 0
    cfg = config.load({**env, "FAKE_SYSTEMCTL_FAIL": "1"})
    errors: list[str] = []
    # the files are removed, which is what uninstall does (docs/operations.md): 0, and one line saying
    # the manager was not told
    assert systemd.uninstall(cfg, out=lambda s: None, err=errors.append) == 0
    assert not any(systemd.user_unit_dir(env).glob("agentd*"))
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert "the unit files are removed, but the user manager was not told" in errors[0]
    assert "`systemctl --user disable --now agentd.timer` failed: Failed to connect to bus" in errors[0]
    # the files are gone, so running uninstall again would do nothing: the advice is the reload
    assert "`systemctl --user daemon-reload`" in errors[0]
    errors.clear()
    kept: list[str] = []
    cfg.worklog_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.worklog_path.write_text("")
    assert systemd.uninstall(cfg, out=kept.append, err=errors.append) == 0
    line = next(x for x in kept if x.startswith("kept "))
    assert f"the worklog {cfg.worklog_path}" in line and f"the env file {systemd.env_file(cfg)}" in line
    assert "the config" not in line  # there is none: only what exists is named


def test_uninstall_without_a_user_manager_exits_0_with_one_line(tmp_path):
    env = make_env(tmp_path)
    assert systemd.install(config.load(env), out=lambda s: None) == 0
    env = {**env, "FAKE_SYSTEMCTL_FAIL": "1"}
    del env["XDG_RUNTIME_DIR"]  # a `su` shell: no user manager to reach
    p = _run_install_in_subprocess(env, "uninstall")
    assert p.returncode == 0, p.stderr
    assert not any(systemd.user_unit_dir(env).glob("agentd*"))
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "the unit files are removed, but the user manager was not told" in p.stderr


def test_timer_next_elapse(tmp_path):
    assert systemd.timer_next_elapse(make_env(tmp_path)) == "Sun 2026-11-22 18:00:00 UTC"
    assert systemd.timer_next_elapse(make_env(tmp_path, FAKE_NEXT_ELAPSE="")) is None
    assert systemd.timer_next_elapse(make_env(tmp_path, FAKE_SYSTEMCTL_FAIL="1")) is None
    (tmp_path / "e").mkdir()
    assert systemd.timer_next_elapse(make_env(tmp_path, PATH=str(tmp_path / "e"))) is None


def test_linger_from_loginctl_or_the_linger_file(tmp_path):
    assert systemd.linger_enabled(make_env(tmp_path, FAKE_LINGER="yes")) is True
    assert systemd.linger_enabled(make_env(tmp_path, FAKE_LINGER="no")) is False
    (tmp_path / "e").mkdir()
    env = make_env(tmp_path, PATH=str(tmp_path / "e"))
    linger = tmp_path / "linger"
    assert systemd.linger_enabled(env, linger_dir=linger) is None
    linger.mkdir()
    assert systemd.linger_enabled(env, linger_dir=linger) is False
    (linger / "tester").touch()
    assert systemd.linger_enabled(env, linger_dir=linger) is True


# -- a real systemd user manager ---------------------------------------------------------
# The driver runs as root inside `unshare -m --propagation private`: it hides the
# host's /run/systemd behind an empty directory, moves itself into a fresh cgroup,
# starts `systemd --user` with tmp HOME/XDG dirs, and then drives agentd.platform.systemd
# against it.  It prints one JSON object of observations; exit 77 means "skip".
E2E_SETUP = r'''
import json, os, subprocess, sys, time
from pathlib import Path

T = Path(sys.argv[1])
CG_ROOT = Path("/sys/fs/cgroup/unified")
cg = CG_ROOT / f"agentd-e2e-{os.getpid()}"
seen = {}

def skip(why):
    print(json.dumps({"skip": why}))
    sys.exit(77)

def sh(*args, timeout=30, env=None):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, (p.stdout + p.stderr).strip()

def missed_a_day():
    """An old timer stamp, as if the machine was off: Persistent=true must catch up at once."""
    stamp = T / "data" / "systemd" / "timers" / "stamp-agentd.timer"
    stamp.parent.mkdir(parents=True)
    stamp.touch()
    os.utime(stamp, (time.time() - 86400, time.time() - 86400))

env = dict(os.environ)
for d in ("rs/system", "home", "run", "cfg", "data"):
    (T / d).mkdir(parents=True, exist_ok=True)
(T / "run").chmod(0o700)
rc, why = sh("mount", "--bind", str(T / "rs"), "/run/systemd")
if rc:
    skip(f"cannot bind-mount over /run/systemd: {why}")
try:
    cg.mkdir()
    (cg / "cgroup.procs").write_text(str(os.getpid()))
except OSError as e:
    skip(f"cannot make a cgroup under {CG_ROOT}: {e}")
manager = None
try:
    env.update(HOME=str(T / "home"), XDG_RUNTIME_DIR=str(T / "run"), XDG_CONFIG_HOME=str(T / "cfg"),
               XDG_DATA_HOME=str(T / "data"), USER="root")
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    manager = subprocess.Popen(["/lib/systemd/systemd", "--user"], env=env, stdout=open(T / "manager.log", "w"),
                               stderr=subprocess.STDOUT)
    for _ in range(100):
        rc, state = sh("systemctl", "--user", "is-system-running", env=env, timeout=5)
        if state in ("running", "degraded"):
            break
        time.sleep(0.1)
    else:
        skip(f"systemd --user did not come up: {state}; {(T / 'manager.log').read_text()[-500:]}")

'''

E2E_TEARDOWN = r'''finally:
    if manager is not None:
        manager.terminate()
        try:
            manager.wait(15)
        except subprocess.TimeoutExpired:
            manager.kill()
            manager.wait(5)
    (CG_ROOT / "cgroup.procs").write_text(str(os.getpid()))
    for d in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        d.rmdir()
    cg.rmdir()
print(json.dumps(seen))
'''

E2E_DRIVER = E2E_SETUP + r'''    from agentd.config import config; from agentd.platform import systemd
    stub = T / "bin" / "agentd"
    stub.parent.mkdir()
    stub.write_text(f"""#!/bin/sh
if [ "$1" = notify ]; then exec {sys.argv[2]} "$@"; fi
echo "$*" >> {T}/calls
env > {T}/service-env
awk '{{print $19}}' /proc/$$/stat > {T}/nice
exit $(cat {T}/exit_code 2>/dev/null || echo 0)
""")
    stub.chmod(0o755)
    (T / "cfg" / "agentd").mkdir(parents=True)
    (T / "cfg" / "agentd" / "config.yaml").write_text(f"notify: cat > {T}/notified\n")
    # An old stamp: the timer missed its elapses "while the machine was off";
    # Persistent=true must catch up right after enable.
    missed_a_day()
    cfg = config.load(env)
    lines = []
    seen["install_rc"] = systemd.install(cfg, every="1m", out=lines.append, err=lines.append,
                                         agentd_exe=str(stub))
    seen["install_out"] = lines
    seen["env_file_mode"] = oct(systemd.env_file(cfg).stat().st_mode & 0o777)
    systemd.env_file(cfg).write_text("ANTHROPIC_API_KEY=sk-e2e\n")
    seen["is_enabled"] = sh("systemctl", "--user", "is-enabled", "agentd.timer", env=env)[1]
    seen["is_active"] = sh("systemctl", "--user", "is-active", "agentd.timer", env=env)[1]
    seen["next_elapse"] = systemd.timer_next_elapse(env)
    for _ in range(600):  # the catch-up wake (RandomizedDelaySec=6s for 1m; slow when the machine is busy)
        if (T / "calls").exists():
            break
        time.sleep(0.1)
    seen["caught_up"] = (T / "calls").read_text() if (T / "calls").exists() else None
    sh("systemctl", "--user", "stop", "agentd.timer", env=env)
    time.sleep(0.3)

    def start(code):
        (T / "exit_code").write_text(str(code))
        rc, _ = sh("systemctl", "--user", "start", "agentd.service", env=env, timeout=60)
        _, show = sh("systemctl", "--user", "show", "agentd.service", "-p", "Result", "-p", "ExecMainStatus",
                     env=env)
        return {"rc": rc, "show": show}

    seen["run_0"] = start(0)
    seen["service_env"] = dict(l.split("=", 1) for l in (T / "service-env").read_text().splitlines() if "=" in l)
    seen["nice"] = (T / "nice").read_text().strip()
    seen["run_75"] = start(75)
    seen["notified_after_75"] = (T / "notified").exists()
    seen["run_1"] = start(1)
    for _ in range(100):
        if (T / "notified").exists() and (T / "notified").read_text():
            break
        time.sleep(0.1)
    seen["notified"] = (T / "notified").read_text() if (T / "notified").exists() else None
    seen["notify_unit"] = sh("systemctl", "--user", "show", "agentd-notify@agentd.service.service",
                             "-p", "Result", env=env)[1]
    lines = []
    seen["uninstall_rc"] = systemd.uninstall(cfg, out=lines.append, err=lines.append)
    seen["uninstall_out"] = lines
    seen["units_left"] = sorted(p.name for p in systemd.user_unit_dir(env).glob("agentd*"))
    seen["after_uninstall"] = sh("systemctl", "--user", "is-enabled", "agentd.timer", env=env)[1]
    seen["uninstall_again_rc"] = systemd.uninstall(cfg, out=lambda s: None, err=lambda s: None)
''' + E2E_TEARDOWN


def run_e2e(tmp_path: Path, driver_text: str, **env_extra: str) -> tuple[dict, dict]:
    """Run an e2e driver under its own mount namespace and systemd --user; (what it saw, its env).
    Skips, saying why, where this machine can't start one."""
    for need in ("/lib/systemd/systemd", "/sys/fs/cgroup/unified/cgroup.procs"):
        if not os.path.exists(need):
            pytest.skip(f"needs {need}")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("systemctl"):
        pytest.skip("needs root, unshare and systemctl to start a private systemd --user")
    driver = tmp_path / "driver.py"
    driver.write_text(driver_text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTD_", "XDG_", "JOURNAL_", "FAKE_"))}
    env.update(env_extra)
    p = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, str(driver),
                        str(tmp_path / "e2e"), systemd.default_agentd_exe()],
                       env=env, capture_output=True, text=True, timeout=240)
    if p.returncode == 77:
        pytest.skip(json.loads(p.stdout.splitlines()[-1])["skip"])
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout.splitlines()[-1]), env


@pytest.mark.slow
def test_real_user_manager_install_timer_run_notify_uninstall(tmp_path):
    seen, env = run_e2e(tmp_path, E2E_DRIVER, PATH="/opt/with space/bin:/opt/100%/bin:/usr/local/bin:/usr/bin:/bin")
    assert seen["install_rc"] == 0, seen["install_out"]
    assert seen["env_file_mode"] == "0o600"
    assert (seen["is_enabled"], seen["is_active"]) == ("enabled", "active")
    assert seen["next_elapse"]
    assert seen["caught_up"] == "wake\n", "Persistent=true did not catch up the missed wake"
    assert seen["run_0"]["rc"] == 0 and "Result=success" in seen["run_0"]["show"]
    assert seen["service_env"]["PATH"] == env["PATH"]
    assert seen["service_env"]["ANTHROPIC_API_KEY"] == "sk-e2e"  # from the env file
    assert seen["nice"] == "10"
    assert seen["run_75"]["rc"] == 0 and "ExecMainStatus=75" in seen["run_75"]["show"]
    assert "Result=success" in seen["run_75"]["show"] and not seen["notified_after_75"]
    assert seen["run_1"]["rc"] != 0 and "Result=exit-code" in seen["run_1"]["show"]
    assert seen["notified"] and seen["notified"].startswith("agentd@"), seen
    assert "agentd.service failed" in seen["notified"]
    assert seen["notify_unit"] == "Result=success"
    assert seen["uninstall_rc"] == 0, seen["uninstall_out"]
    assert seen["units_left"] == [] and seen["after_uninstall"] != "enabled"
    assert seen["uninstall_again_rc"] == 0


# -- through the CLI (tests/conftest.py's `cli` runs `python -m agentd` in a subprocess) ------
def test_cli_install_dry_run_install_uninstall(tmp_path, cli):
    env = {"PATH": f"{FAKEBIN}:/usr/bin:/bin", "FAKE_SYSTEMCTL_LOG": str(tmp_path / "systemctl.log"),
           "FAKE_LOGINCTL_LOG": str(tmp_path / "loginctl.log")}
    p = cli("install", "--dry-run", "--unit-dir", str(tmp_path / "dry"), "--every", "30m", env=env)
    assert p.returncode == 0, p.stderr
    assert "OnCalendar=*-*-* *:00/30:00" in (tmp_path / "dry" / "agentd.timer").read_text()
    assert calls(tmp_path) == []
    p = cli("install", "--every", "7h", env=env)
    assert p.returncode == 2 and "'7h' does not divide a day evenly" in p.stderr and "Traceback" not in p.stderr
    p = cli("install", env=env)
    assert p.returncode == 0, p.stderr
    assert changing_calls(tmp_path) == ["--user daemon-reload", "--user enable --now agentd.timer"]
    p = cli("uninstall", env=env)
    assert p.returncode == 0 and "removed" in p.stdout
    (tmp_path / "nothing").mkdir()
    p = cli("install", env={"PATH": str(tmp_path / "nothing")})
    assert p.returncode == 1 and "systemctl is not on PATH" in p.stderr and "Traceback" not in p.stderr


E2E_WAKE = E2E_SETUP + r"""
    from agentd.config import config
    from agentd.platform import systemd
    wl = T / "wl"
    wl.mkdir()
    (wl / "e2e_worklog.txt").write_text("- [ ] say hello {id: hello, run: 'echo hello-from-the-timer'}\n")
    (T / "cfg" / "agentd").mkdir(parents=True)
    (T / "cfg" / "agentd" / "config.yaml").write_text(f"worklog_dir: {wl}\nmax_load: 1000\n")
    env.update(AGENTD_HOST="e2e", XDG_STATE_HOME=str(T / "state"))
    missed_a_day()
    cfg = config.load(env)
    lines = []
    seen["install_rc"] = systemd.install(cfg, every="1m", out=lines.append, err=lines.append,
                                         agentd_exe=sys.argv[2])
    seen["install_out"] = lines
    for _ in range(600):  # Persistent=true: the missed elapse fires right after enable
        if "status=done" in (wl / "e2e_worklog.txt").read_text():
            break
        time.sleep(0.1)
    seen["worklog"] = (wl / "e2e_worklog.txt").read_text()
    seen["status"] = json.loads(subprocess.run([sys.argv[2], "status", "--json"], env=env, capture_output=True,
                                               text=True, timeout=60).stdout)
    seen["logs"] = subprocess.run([sys.argv[2], "logs"], env=env, capture_output=True, text=True,
                                  timeout=60).stdout
    seen["service"] = sh("systemctl", "--user", "status", "agentd.service", env=env)[1]
    systemd.uninstall(cfg, out=lambda s: None, err=lambda s: None)
""" + E2E_TEARDOWN


@pytest.mark.slow
def test_real_user_manager_timer_runs_a_real_wake_that_shows_in_status_and_logs(tmp_path):
    seen, _ = run_e2e(tmp_path, E2E_WAKE)
    assert seen["install_rc"] == 0, seen["install_out"]
    assert "> hello-from-the-timer" in seen["worklog"], (seen["worklog"], seen["service"])
    assert "task=hello status=done" in seen["worklog"]
    assert seen["status"]["timer_installed"] and seen["status"]["timer_next_elapse"]
    assert seen["status"]["last_run"]["task_id"] == "hello"
    assert "wake summary" in seen["logs"] and "hello" in seen["logs"], seen["logs"]


@needs_analyze
def test_settings_made_by_environment_variable_at_install_reach_the_service(tmp_path):
    env = make_env(tmp_path, AGENTD_WORKLOG_DIR=str(tmp_path / "my worklogs"), AGENTD_PROVIDER="openai",
                   AGENTD_NOTIFY='notify-send agentd "$AGENTD_SUMMARY"')
    cfg = config.load(env)
    units = systemd.render(cfg, "6h", agentd_exe=fake_exe(tmp_path))
    service = units["agentd.service"]
    assert f'"AGENTD_WORKLOG_DIR={tmp_path / "my worklogs"}"' in service
    assert "AGENTD_PROVIDER=openai" in service and "AGENTD_NOTIFY=" in service
    p = verify(write_units(units, tmp_path / "units"), tmp_path)
    assert (p.returncode, p.stderr, p.stdout) == (0, "", "")


E2E_RESET_DRIVER = E2E_SETUP + r'''    from agentd.config import config; from agentd.platform import systemd
    from agentd.times import iso
    stub = T / "bin" / "agentd"
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\necho \"$*\" >> {T}/calls\n")
    stub.chmod(0o755)
    cfg = config.load(env)
    seen["before_install"] = systemd.schedule_wake(cfg, iso(time.time() + 2), "r1")
    seen["install_rc"] = systemd.install(cfg, every="1d", out=lambda s: None, err=lambda s: None,
                                         agentd_exe=str(stub))
    (T / "calls").unlink(missing_ok=True)  # a catch-up wake, if any
    when = time.time() + 3
    seen["scheduled"] = systemd.schedule_wake(cfg, iso(when), "r20300317-174700-ab12")
    seen["timers"] = sh("systemctl", "--user", "list-timers", "--all", "--no-pager", env=env)[1]
    for _ in range(300):
        if (T / "calls").exists():
            break
        time.sleep(0.1)
    seen["woke"] = (T / "calls").read_text() if (T / "calls").exists() else None
    seen["late_s"] = time.time() - when
''' + E2E_TEARDOWN


@pytest.mark.slow
def test_a_usage_reset_schedules_a_one_shot_wake_that_starts_the_service_at_that_time(tmp_path):
    seen, _ = run_e2e(tmp_path, E2E_RESET_DRIVER)
    assert seen["before_install"].startswith("the timer is not installed")
    assert seen["install_rc"] == 0
    assert seen["scheduled"].startswith("a wake is scheduled for ") and "agentd-reset-r20300317-174700-ab12.timer" \
        in seen["scheduled"], seen
    assert "agentd-reset-r20300317-174700-ab12.timer" in seen["timers"]
    assert seen["woke"] == "wake\n", seen  # the transient timer started agentd.service, which ran `agentd wake`
    assert seen["late_s"] < 30
