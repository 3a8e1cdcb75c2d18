"""Tasks on Slurm (runners/slurm.py), through real CLI wakes against a real one-node Slurm cluster
(tests/runners/slurm_cluster.py: munged, slurmctld and slurmd started once for the session, no
accounting, stopped after).

A task with ``slurm:`` is submitted with ``sbatch --parsable`` and parked; later wakes poll it without
waiting for it, run other tasks meanwhile, and collect its output, exit code, metrics and gates when it
ended.  CANCEL scancels its job; a task ``after:`` it waits for the job; sbatch missing or refusing is a
finding, not a traceback; a hostile partition reaches sbatch as one argv element (and, with that
protection off, runs a command: a strict xfail).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from agentd.store.store import Store
from agentd.worklog.attrs import parse_attrs
from agentd.worklog.lineerror import LineError
from agentd.worklog.parse import parse_bytes

from conftest import run_cli
from slurm_cluster import Cluster, missing


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    why = missing()
    if why:
        pytest.skip(f"no test Slurm cluster: {why}")
    c = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
    except Exception:
        c.stop()
        raise
    yield c
    c.stop()


def store_path(tmp_path) -> Path:
    return tmp_path / "home" / ".local" / "state" / "agentd" / "agentd.sqlite3"


def job_of(tmp_path, task: str) -> dict:
    s = Store(store_path(tmp_path))
    try:
        rows = [dict(r) for r in s.db.execute("SELECT * FROM slurm_jobs WHERE task_id=? ORDER BY rowid", (task,))]
    finally:
        s.close()
    assert rows, f"no Slurm job recorded for {task}"
    return rows[-1]


def run_dir_of(tmp_path, run_id: str) -> Path:
    s = Store(store_path(tmp_path))
    try:
        return Path(s.run(run_id)["run_dir"])
    finally:
        s.close()


def job_ended(cluster, run_dir: Path, wait_s: float = 60) -> None:
    """Wait until the job's batch script has saved its exit status in the run dir (it ran to its end)."""
    deadline = time.monotonic() + wait_s
    while not (run_dir / "slurm-exit").exists():
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.2)


def status(worklog: Path, task: str) -> str | None:
    return (parse_bytes(worklog.read_bytes()).latest.get(task) or {}).get("status")


def finding(worklog: Path, task: str) -> str:
    return [e for e in worklog.read_text().split("=== agentd entry ") if f"task={task} " in e][-1]


def wake(cluster, **env):
    return run_cli("wake", "--now", env={**cluster.env, **env})


def squeue_state(cluster, job_id: str) -> str:
    return cluster.run("squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--format=%T").stdout.strip()


def test_a_slurm_task_runs_through_sbatch_and_its_finding_metrics_and_gate_arrive_at_a_later_wake(
        cluster, worklog, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    worklog.write_text(
        "- [ ] train {id: train, cwd: '" + str(work) + "', run: 'while [ ! -e go ]; do sleep 0.2; done; "
        "echo METRIC tflops=120 TFLOP/s; echo trained', slurm: {partition: debug, time: \"5\"}, "
        "expect: {tflops: \">= 100\"}, value: 9}\n"
        "- [ ] evaluate {id: evaluate, run: 'echo evaluated', after: train, value: 8}\n"
        "- [ ] other {id: other, run: 'echo other work', value: 1}\n")
    r = wake(cluster)
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "train") == "waiting"
    job = job_of(tmp_path, "train")
    assert job["job_id"].isdigit()
    body = finding(worklog, "train")
    assert f"submitted to Slurm as job {job['job_id']}" in body and f"squeue -j {job['job_id']}" in body
    assert "--partition=debug" in body and "--time=5" in body
    run_dir = run_dir_of(tmp_path, job["run_id"])
    assert json.loads((run_dir / "manifest.json").read_text())["slurm"]["job_id"] == job["job_id"]
    assert f"agentd:train:{job['run_id']}" in cluster.run("squeue", "--noheader", "--format=%j",
                                                          f"--jobs={job['job_id']}").stdout

    # the job waits for `go`: the next wake polls it, does not wait, and runs another task
    r = wake(cluster)
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "other") == "done" and status(worklog, "train") == "waiting"
    q = run_cli("queue", env=cluster.env).stdout
    assert f"waits for train (Slurm job {job['job_id']}: " in q, q
    st = run_cli("status", env=cluster.env).stdout
    assert f"train: Slurm job {job['job_id']}: " in st and ("RUNNING" in st or "PENDING" in st), st

    (work / "go").touch()
    job_ended(cluster, run_dir)
    r = wake(cluster)
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "train") == "done", finding(worklog, "train")
    body = finding(worklog, "train")
    assert f"Slurm job {job['job_id']} ended COMPLETED, exit 0" in body
    assert "trained" in body and "gate: tflops 120 >= 100: pass" in body and "metrics: tflops=120 TFLOP/s" in body
    runs = {x["task_id"]: x for x in json.loads(run_cli("runs", "--json").stdout)}
    assert runs["train"]["status"] == "done" and runs["train"]["exit_code"] == 0
    m = json.loads(run_cli("metrics", "tflops", "--task", "train", "--json").stdout)
    assert [p["value"] for p in (m["points"] if isinstance(m, dict) else m)] == [120]

    r = wake(cluster)  # its dependant runs now
    assert status(worklog, "evaluate") == "done", r.stdout + r.stderr


def test_a_job_that_fails_records_failed_with_its_exit_code(cluster, worklog, tmp_path):
    worklog.write_text("- [ ] crash {id: crash, run: 'echo about to fail; echo bad input >&2; exit 7', "
                       "slurm: {}}\n")
    assert wake(cluster).returncode == 0
    job = job_of(tmp_path, "crash")
    run_dir = run_dir_of(tmp_path, job["run_id"])
    job_ended(cluster, run_dir)
    r = wake(cluster)
    assert r.returncode == 1, r.stdout + r.stderr
    assert status(worklog, "crash") == "failed"
    body = finding(worklog, "crash")
    assert "exit 7" in body and "bad input" in body and "about to fail" in body
    row = next(x for x in json.loads(run_cli("runs", "--json").stdout) if x["task_id"] == "crash")
    assert row["exit_code"] == 7 and row["reason"] == "exit code 7"


def test_cancel_scancels_the_running_job(cluster, worklog, tmp_path):
    worklog.write_text("- [ ] long {id: long, run: 'sleep 300', slurm: {partition: debug}}\n")
    assert wake(cluster).returncode == 0
    job = job_of(tmp_path, "long")
    deadline = time.monotonic() + 30
    while squeue_state(cluster, job["job_id"]) != "RUNNING":
        assert time.monotonic() < deadline, squeue_state(cluster, job["job_id"])
        time.sleep(0.2)
    with open(worklog, "a") as f:
        f.write("CANCEL: long\n")
    r = wake(cluster)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"scancel {job['job_id']}: its task was cancelled" in r.stdout
    deadline = time.monotonic() + 30
    while squeue_state(cluster, job["job_id"]) not in ("CANCELLED", ""):
        assert time.monotonic() < deadline, squeue_state(cluster, job["job_id"])
        time.sleep(0.2)
    row = next(x for x in json.loads(run_cli("runs", "--json").stdout) if x["task_id"] == "long")
    assert row["status"] == "cancelled" and f"scancel {job['job_id']}" in row["reason"]
    assert job_of(tmp_path, "long")["state"] == "CANCELLED"


def test_sbatch_missing_is_a_blocked_finding_without_a_traceback(cluster, worklog, tmp_path):
    worklog.write_text("- [ ] train {id: train, run: 'echo hi', slurm: {partition: debug}}\n")
    r = wake(cluster, PATH="/nonexistent")
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert status(worklog, "train") == "blocked"
    assert "sbatch is not on the PATH" in finding(worklog, "train")


def test_sbatch_refusing_the_job_is_a_failed_finding_saying_why(cluster, worklog, tmp_path):
    worklog.write_text("- [ ] train {id: train, run: 'echo hi', slurm: {partition: nosuchpartition}}\n")
    r = wake(cluster)
    assert "Traceback" not in r.stdout + r.stderr
    assert status(worklog, "train") == "failed"
    body = finding(worklog, "train")
    assert "sbatch did not take the job" in body and "partition" in body.lower()


# what dropping the argv protection means, in the wake's own process: every Slurm command through a shell
SHELL_ON = """\
import subprocess, agentd.runners.slurmcmd as s
def call(argv, env, cwd=None, timeout=None):
    p = subprocess.run(" ".join(argv), shell=True, env=env, cwd=cwd, capture_output=True, timeout=timeout or 20)
    return s.Said(p.returncode, p.stdout.decode(), p.stderr.decode())
s.call = call
"""


@pytest.mark.parametrize("protection", ["on", pytest.param("off", marks=pytest.mark.xfail(
    strict=True, reason="through a shell, the partition's `; touch` runs"))])
def test_a_hostile_partition_reaches_sbatch_as_one_argument_never_a_shell(cluster, worklog, tmp_path, protection):
    work = tmp_path / "work"
    work.mkdir()
    worklog.write_text("- [ ] train {id: train, cwd: '" + str(work) + "', run: 'echo hi', "
                       "slurm: {partition: 'debug; touch PWNED; echo'}}\n")
    env = {}
    if protection == "off":
        site = tmp_path / "off"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SHELL_ON)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    r = wake(cluster, **env)
    assert "Traceback" not in r.stdout + r.stderr
    assert not (work / "PWNED").exists()
    assert status(worklog, "train") == "failed"
    body = finding(worklog, "train")
    assert "'--partition=debug; touch PWNED; echo'" in body and "invalid partition" in body.lower()


@pytest.mark.parametrize("attrs, says", [
    ("{slurm: {partion: gpu}}", "'partion' is not a Slurm setting"),
    ("{slurm: {gpus: two}}", "gpus: must be a whole number"),
    ("{slurm: {time: soon}}", "time: 'soon' is not a Slurm time"),
    ("{slurm: {mem: lots}}", "mem: 'lots' is not a Slurm memory size"),
    ("{slurm: gpu}", "must be a map"),
])
def test_the_slurm_attr_is_checked_strictly_naming_the_key(attrs, says):
    with pytest.raises(LineError) as e:
        parse_attrs(attrs, "worklog:1")
    assert says in str(e.value) and "slurm" in str(e.value)


def test_a_good_slurm_attr_is_kept_as_given():
    a = parse_attrs('{run: "python train.py", slurm: {partition: gpu, gpus: 1, time: "2:00:00", mem: 16G}}', "w")
    assert a["slurm"] == {"partition": "gpu", "gpus": 1, "time": "2:00:00", "mem": "16G"}


def test_an_experiment_runs_on_slurm_and_its_result_arrives_at_a_later_wake(cluster, worklog, tmp_path):
    worklog.write_text("EXPERIMENT: health {id: checkup, slurm: {partition: debug}}\n")
    assert wake(cluster).returncode == 0
    assert status(worklog, "checkup") == "waiting"
    job = job_of(tmp_path, "checkup")
    run_dir = run_dir_of(tmp_path, job["run_id"])
    job_ended(cluster, run_dir)
    r = wake(cluster)
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "checkup") == "done", finding(worklog, "checkup")
    assert (run_dir / "result.json").exists()
    assert f"Slurm job {job['job_id']} ended COMPLETED, exit 0" in finding(worklog, "checkup")


def test_a_hung_squeue_costs_a_wake_its_timeout_and_the_wake_goes_on(cluster, worklog, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    worklog.write_text("- [ ] train {id: train, cwd: '" + str(work) + "', run: 'while [ ! -e go ]; do sleep 0.2; done', "
                       "slurm: {}, value: 9}\n"
                       "- [ ] other {id: other, run: 'echo other work', value: 1}\n")
    assert wake(cluster).returncode == 0
    assert status(worklog, "train") == "waiting"
    hung = tmp_path / "hung"
    hung.mkdir()
    (hung / "squeue").write_text("#!/bin/sh\nexec sleep 60\n")
    (hung / "squeue").chmod(0o755)
    site = tmp_path / "short"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import agentd.runners.slurmcmd as s\ns.TIMEOUT_S = 1\n")
    r = wake(cluster, PATH=f"{hung}:{os.environ['PATH']}",
             PYTHONPATH=os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p))
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "other") == "done" and status(worklog, "train") == "waiting"
    assert job_of(tmp_path, "train")["note"] == "not polled: squeue did not answer in 1 s"
    st = run_cli("status", env=cluster.env).stdout
    assert "not polled: squeue did not answer in 1 s" in st, st
    (work / "go").touch()


def test_a_job_cancelled_outside_agentd_is_failed_saying_it_kept_no_exit_status(cluster, worklog, tmp_path):
    worklog.write_text("- [ ] long {id: long, run: 'sleep 300', slurm: {}}\n")
    assert wake(cluster).returncode == 0
    job = job_of(tmp_path, "long")
    assert cluster.run("scancel", job["job_id"]).returncode == 0
    deadline = time.monotonic() + 30
    while squeue_state(cluster, job["job_id"]) not in ("CANCELLED", ""):
        assert time.monotonic() < deadline, squeue_state(cluster, job["job_id"])
        time.sleep(0.2)
    r = wake(cluster)
    assert r.returncode == 1, r.stdout + r.stderr
    assert status(worklog, "long") == "failed"
    assert f"Slurm job {job['job_id']} ended CANCELLED without an exit status" in finding(worklog, "long")


def test_a_wake_killed_after_sbatch_parks_the_run_on_its_job_and_never_submits_it_twice(cluster, worklog, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    worklog.write_text("- [ ] train {id: train, cwd: '" + str(work) + "', run: 'while [ ! -e go ]; do sleep 0.2; "
                       "done; echo trained', slurm: {}}\n")
    site = tmp_path / "die"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, agentd.store.slurm as s\nadd = s.add\n"
        "def dying(*a, **k):\n    add(*a, **k)\n    os._exit(9)\ns.add = dying\n")
    r = wake(cluster, PYTHONPATH=os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p))
    assert r.returncode == 9
    assert status(worklog, "train") == "running"
    r = wake(cluster)
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "train") == "waiting"
    job = job_of(tmp_path, "train")
    assert "the wake that submitted it was killed" in finding(worklog, "train")
    s = Store(store_path(tmp_path))
    try:
        assert s.db.execute("SELECT count(*) FROM slurm_jobs").fetchone()[0] == 1
    finally:
        s.close()
    (work / "go").touch()
    run_dir = run_dir_of(tmp_path, job["run_id"])
    job_ended(cluster, run_dir)
    assert wake(cluster).returncode == 0
    assert status(worklog, "train") == "done" and "trained" in finding(worklog, "train")


def with_site(tmp_path, name: str, code: str) -> str:
    """A PYTHONPATH whose sitecustomize.py runs ``code`` in the wake's own process."""
    site = tmp_path / name
    site.mkdir()
    (site / "sitecustomize.py").write_text(code)
    return os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)


def jobs_named(cluster, tmp_path, task: str) -> list[str]:
    """The ids of the cluster's jobs (any state it still remembers) submitted for this test's runs of ``task``."""
    s = Store(store_path(tmp_path))
    try:
        names = {f"agentd:{task}:{r[0]}" for r in s.db.execute("SELECT run_id FROM runs WHERE task_id=?", (task,))}
    finally:
        s.close()
    out = cluster.run("squeue", "--noheader", "--states=all", "--format=%i|%j").stdout
    return [i for i, _, name in (x.strip().partition("|") for x in out.splitlines()) if name in names]


def slow_sbatch(tmp_path, submits: bool) -> str:
    """A PATH whose sbatch outlives agentd's limit: after taking the job (``submits``) or without."""
    d = tmp_path / ("slow-sbatch" if submits else "mute-sbatch")
    d.mkdir()
    real = cluster_tool("sbatch")
    (d / "sbatch").write_text("#!/bin/sh\n" + (f"{real} \"$@\" > /dev/null\n" if submits else "") + "sleep 60\n")
    (d / "sbatch").chmod(0o755)
    return f"{d}:{os.environ['PATH']}"


def cluster_tool(name: str) -> str:
    import shutil
    return shutil.which(name)


SHORT_LIMIT = "import agentd.runners.slurmcmd as s\ns.TIMEOUT_S = 2\n"


def test_an_sbatch_that_times_out_after_taking_the_job_parks_the_run_and_the_next_wake_adopts_its_job(
        cluster, worklog, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    worklog.write_text("- [ ] train {id: train, cwd: '" + str(work) + "', run: 'while [ ! -e go ]; do sleep 0.2; "
                       "done; echo trained', slurm: {}}\n")
    r = wake(cluster, PATH=slow_sbatch(tmp_path, submits=True), PYTHONPATH=with_site(tmp_path, "short", SHORT_LIMIT))
    assert "Traceback" not in r.stdout + r.stderr
    assert status(worklog, "train") == "waiting", finding(worklog, "train")
    assert "sbatch did not answer in 2 s" in finding(worklog, "train")
    submitted = jobs_named(cluster, tmp_path, "train")
    assert len(submitted) == 1
    r = wake(cluster)
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "train") == "waiting"
    assert job_of(tmp_path, "train")["job_id"] == submitted[0]
    assert jobs_named(cluster, tmp_path, "train") == submitted  # adopted, never submitted again
    (work / "go").touch()
    job_ended(cluster, run_dir_of(tmp_path, job_of(tmp_path, "train")["run_id"]))
    assert wake(cluster).returncode == 0
    assert status(worklog, "train") == "done" and "trained" in finding(worklog, "train")
    assert f"Slurm job {submitted[0]} ended COMPLETED" in finding(worklog, "train")


def test_an_sbatch_that_times_out_without_taking_the_job_is_failed_at_the_next_wake(cluster, worklog, tmp_path):
    worklog.write_text("- [ ] train {id: train, run: 'echo hi', slurm: {}}\n")
    wake(cluster, PATH=slow_sbatch(tmp_path, submits=False), PYTHONPATH=with_site(tmp_path, "short", SHORT_LIMIT))
    assert status(worklog, "train") == "waiting"
    r = wake(cluster)
    assert "Traceback" not in r.stdout + r.stderr
    assert status(worklog, "train") == "failed"
    body = finding(worklog, "train")
    assert "no job named agentd:train:" in body and "not submitted" in body
    assert jobs_named(cluster, tmp_path, "train") == []


def test_a_wake_killed_between_sbatch_and_keeping_the_job_id_adopts_the_job_and_never_submits_twice(
        cluster, worklog, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    worklog.write_text("- [ ] train {id: train, cwd: '" + str(work) + "', run: 'while [ ! -e go ]; do sleep 0.2; "
                       "done; echo trained', slurm: {}}\n")
    die = ("import os, agentd.runners.slurmcmd as s\nsubmit = s.submit\n"
           "def dying(*a, **k):\n    submit(*a, **k)\n    os._exit(9)\ns.submit = dying\n")
    r = wake(cluster, PYTHONPATH=with_site(tmp_path, "die", die))
    assert r.returncode == 9
    submitted = jobs_named(cluster, tmp_path, "train")
    assert len(submitted) == 1
    r = wake(cluster)
    assert r.returncode == 0, r.stdout + r.stderr
    assert status(worklog, "train") == "waiting", finding(worklog, "train")
    assert jobs_named(cluster, tmp_path, "train") == submitted
    assert job_of(tmp_path, "train")["job_id"] == submitted[0]
    (work / "go").touch()
    job_ended(cluster, run_dir_of(tmp_path, job_of(tmp_path, "train")["run_id"]))
    assert wake(cluster).returncode == 0
    assert status(worklog, "train") == "done" and "trained" in finding(worklog, "train")
    assert jobs_named(cluster, tmp_path, "train") == submitted


def test_a_jobs_duration_is_the_jobs_own_not_the_collecting_wakes(cluster, worklog, tmp_path):
    worklog.write_text("- [ ] nap {id: nap, run: 'sleep 2; echo rested', slurm: {}}\n")
    assert wake(cluster).returncode == 0
    job = job_of(tmp_path, "nap")
    job_ended(cluster, run_dir_of(tmp_path, job["run_id"]))
    assert wake(cluster).returncode == 0
    assert status(worklog, "nap") == "done"
    body = finding(worklog, "nap")
    row = next(x for x in json.loads(run_cli("runs", "--json").stdout) if x["task_id"] == "nap")
    assert row["duration_s"] >= 2, row  # the job slept 2 s; the collecting wake took a fraction of that
    head = body.splitlines()[1]
    assert f"· {row['duration_s']:.1f} s" in head, head
    assert f"Slurm job {job['job_id']} ended COMPLETED, exit 0: waited " in body and " s in the queue, ran " in body
