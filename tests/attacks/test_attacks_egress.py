"""Issue 17, egress for the API agents: a hijacked model's shell tries hosts it was not given.

Driven through the real agent loop (real CLI wakes, the real SDK against the loopback model of
tests/fake_llm.py, real bwrap, real sockets).  The "internet" is two loopback stand-ins on addresses of
their own (``Site``: 127.0.0.2 allowed, 127.0.0.3 not).  Each attack is also run with its protection
switched off inside agentd's process only (a ``sitecustomize`` the test writes: an allowlist that allows
every host, a network approval that grants the whole network whatever it names), to show it can fail.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from agentd.agent import approvals
from conftest import Site, run_cli
from fake_llm import finish, reply
from conftest import _bwrap_usable
from fake_llm import approval_id, ask, env_for, tool_results

pytestmark = pytest.mark.skipif(_bwrap_usable() is not None,
                                reason=f"needs a usable bwrap (.ci/run installs it): {_bwrap_usable()}")
ALLOW_ALL = ("import agentd.sandbox.egress as p\np.allowed = lambda host, allow: True\n"
             "p.port_allowed = lambda host, port, allow: True\np.resolve = lambda host, port, allow: host\n")
GRANT_ALL = "import agentd.agent.approvals as a\na.network_hosts = lambda what: ([], None)\n"


def site(tmp_path, code: str) -> dict:
    """The environment that has agentd's process run ``code`` first (its ``sitecustomize``)."""
    d = tmp_path / "site"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(textwrap.dedent(code))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(d), os.environ.get("PYTHONPATH")]))}


def reach(allowed: Site, denied: Site) -> dict:
    """A shell call that tries the allowed host (plain HTTP and a CONNECT tunnel) and the other one
    every way it can: through the proxy, around it, from Python; and prints the egress socket's dir."""
    ok, no = f"127.0.0.2:{allowed.port}", f"127.0.0.3:{denied.port}"
    return reply(tools=[("shell", {"command": "\n".join([
        f"curl -s -m 10 http://{ok}/plain; echo ' allowed-plain='$?",
        f"curl -s -m 10 -p http://{ok}/tunnel; echo ' allowed-tunnel='$?",
        f"curl -s -m 10 http://{no}/plain; echo ' denied-plain='$?",
        f"curl -s -m 10 -p http://{no}/tunnel; echo ' denied-tunnel='$?",
        f"curl -s -m 5 --noproxy '*' http://{no}/direct; echo ' denied-direct='$?",
        f"python3 -c 'import urllib.request as u; print(u.urlopen(\"http://{no}/python\", timeout=10).read())' "
        "2>&1 | tail -1",
        "ls -d /tmp/agentd-egress-* 2>/dev/null; true"])})])


def manifest(tmp_path, run_cli_env) -> dict:
    run = json.loads(run_cli("runs", "--json", env=run_cli_env).stdout)[0]
    return json.loads((tmp_path / "home/.local/state/agentd/runs" / run["run_id"] / "manifest.json").read_text())


def egress_dirs(text: str) -> list[Path]:
    return [Path(x) for x in re.findall(r"^(/tmp/agentd-egress-\S+)$", text, re.M)]


# -- a task's {network: [hosts]}, or the config's list ----------------------------------------------
@pytest.mark.parametrize("on", [True, False], ids=["protected", "protection-off"])
@pytest.mark.parametrize("where", ["task", "config"])
def test_an_api_agents_shell_reaches_the_allowed_host_through_the_proxy_and_no_other(
        worklog, fake, tmp_path, sites, on, where):
    allowed, denied = sites
    attr = ", network: [127.0.0.2]" if where == "task" else ""
    worklog.write_text(f"DIRECTIVE: fetch the page {{id: net{attr}}}\n")
    fake.script(reach(allowed, denied), finish("done", "Fetched the allowed page; the other host was refused."))
    env = env_for(fake, **({"AGENTD_NETWORK": "[127.0.0.2]"} if where == "config" else {}),
                  **({} if on else site(tmp_path, ALLOW_ALL)))
    r = run_cli("wake", "--now", env=env)
    assert "net: done" in r.stdout, r.stdout + r.stderr
    out = tool_results(fake.requests[1])[-1]
    assert "hello from 127.0.0.2" in out and "allowed-plain=0" in out and "allowed-tunnel=0" in out, out
    assert sorted(allowed.paths) == ["/plain", "/tunnel"]
    if on:
        assert denied.paths == [], out
        assert "hello from 127.0.0.3" not in out
        assert out.count("not on this task's network allowlist") >= 2  # the 403's text, plain and CONNECT
        assert "denied-direct=7" in out  # around the proxy: the sandbox has no network of its own
        assert f"[agentd's proxy refused, not on this task's network allowlist (127.0.0.2): GET http://127.0.0.3:" \
               f"{denied.port}, CONNECT 127.0.0.3:{denied.port}" in out
        net = manifest(tmp_path, env)["network"]
        assert net["policy"] == "allowlist" and net["hosts"] == ["127.0.0.2"]
        assert f"CONNECT 127.0.0.3:{denied.port}" in net["refused"]
    else:
        assert denied.paths  # the allowlist is the only thing between the shell and the other host
    dirs = egress_dirs(out)
    assert len(dirs) == 1 and not dirs[0].exists()  # the run's proxy is gone with its run


@pytest.mark.parametrize("network, reached", [("true", True), (None, False), ("false", False)],
                         ids=["true: the whole network", "absent: none", "false: none"])
def test_network_true_is_the_whole_network_and_no_network_is_none(worklog, fake, tmp_path, sites, network,
                                                                   reached):
    allowed, denied = sites
    worklog.write_text(f"DIRECTIVE: fetch the page {{id: net{f', network: {network}' if network else ''}}}\n")
    fake.script(reach(allowed, denied), finish("done", "Tried both hosts; reported what was reachable."))
    r = run_cli("wake", "--now", env=env_for(fake))
    assert "net: done" in r.stdout, r.stdout + r.stderr
    out = tool_results(fake.requests[1])[-1]
    assert bool(denied.paths) is reached and bool(allowed.paths) is reached, out
    assert ("denied-direct=0" in out) is reached
    assert egress_dirs(out) == [] and "proxy refused" not in out  # no proxy: nothing to filter, or no way out


# -- approvals that add hosts ------------------------------------------------------------------------
@pytest.mark.parametrize("on", [True, False], ids=["protected", "protection-off"])
def test_a_network_approval_naming_a_host_adds_exactly_that_host(worklog, fake, tmp_path, sites, on):
    allowed, denied = sites
    worklog.write_text("DIRECTIVE: fetch the page {id: net}\n")
    fake.script(ask("network", "127.0.0.2", why="to fetch the page"), reach(allowed, denied),
                finish("done", "Fetched the allowed page once approved; the other was refused."))
    env = env_for(fake, **({} if on else site(tmp_path, GRANT_ALL)))
    assert "net: waiting" in run_cli("wake", "--now", env=env).stdout
    aid = approval_id(worklog)
    assert (f"asks for approval {aid}: network access for its shell, through agentd's proxy, to these hosts and "
            "their subdomains only: `127.0.0.2`") in worklog.read_text()
    assert run_cli("approve", aid, env=env).returncode == 0
    r = run_cli("wake", "--now", env=env)
    assert "net: done" in r.stdout, r.stdout + r.stderr
    told = tool_results(fake.requests[1])[-1]
    out = tool_results(fake.requests[2])[-1]
    assert sorted(allowed.paths) == ["/plain", "/tunnel"], out
    if on:
        assert "your shell can reach 127.0.0.2 (and their subdomains), through agentd's proxy now" in told, told
        assert denied.paths == [] and "denied-direct=7" in out, out
        assert f"CONNECT 127.0.0.3:{denied.port}" in out
    else:
        assert denied.paths


def test_a_network_approval_with_no_hosts_is_the_whole_network_as_before(worklog, fake, sites):
    allowed, denied = sites
    worklog.write_text("DIRECTIVE: fetch the page {id: net}\n")
    fake.script(ask("network", "", why="to fetch the page"), reach(allowed, denied),
                finish("done", "Fetched both pages once approved, as the person allowed."))
    env = env_for(fake)
    assert "net: waiting" in run_cli("wake", "--now", env=env).stdout
    aid = approval_id(worklog)
    assert f"asks for approval {aid}: network access for its shell\n" in worklog.read_text()
    assert run_cli("approve", aid, env=env).returncode == 0
    assert "net: done" in run_cli("wake", "--now", env=env).stdout
    assert denied.paths and "denied-direct=0" in tool_results(fake.requests[2])[-1]


@pytest.mark.parametrize("what", ["https://evil.example/x", "*.example.com", "pypi.org:443", "a b c/d"])
def test_a_network_request_naming_something_other_than_hosts_goes_back_to_the_model(what):
    problem = approvals.check_args({"kind": "network", "what": what, "why": "to fetch"})
    assert problem and "host names separated by spaces" in problem, problem
    assert approvals.check_args({"kind": "network", "what": "pypi.org, Files.PythonHosted.org.", "why": "x"}) is None
    assert approvals.network_hosts("pypi.org, Files.PythonHosted.org.") == (
        ["pypi.org", "files.pythonhosted.org"], None)


# -- the proxy's lifetime ----------------------------------------------------------------------------
def test_the_shells_proxy_starts_at_the_first_call_that_needs_it_and_stops_when_the_tools_close(tmp_path, sites):
    import socket

    from agentd.providers import ToolCall
    from agentd.agent.tools import Egress, Tools
    from fake_llm import make_config

    allowed, _ = sites
    dead = Path("/tmp") / f"{Egress.PREFIX}999999999-left"  # a killed agentd's (no such pid)
    dead.mkdir(exist_ok=True)
    cfg = make_config(tmp_path)
    with Tools(tmp_path / "ws" / "t1", cfg.env, cfg=cfg, attrs={"network": ["127.0.0.2"]}) as tools:
        assert tools.egress is None  # nothing started before a shell call
        r = tools.run(ToolCall("1", "shell", {"command": f"curl -s -m 10 http://127.0.0.2:{allowed.port}/x"}), 30)
        assert r.text.startswith("hello from 127.0.0.2"), r.text
        sock = tools.egress.sock
        assert sock.exists() and not dead.exists()
    assert not sock.parent.exists()
    with pytest.raises(OSError):
        socket.socket(socket.AF_UNIX).connect(str(sock))
