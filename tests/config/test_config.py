"""agentd.config.config: defaults, the file, AGENTD_<KEY> overrides, and every error at once."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from agentd.config import config
from agentd.errors import ConfigError


def env(**extra) -> dict:
    e = dict(os.environ)
    e.update(extra)
    return e


@pytest.fixture
def config_file(home) -> Path:
    p = home / ".config" / "agentd" / "config.yaml"
    p.parent.mkdir(parents=True)
    return p


def problems(e: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.load(e if e is not None else env())
    return info.value.problems


def test_without_a_file_the_defaults_apply(home, tmp_path):
    cfg = config.load(env())
    assert cfg["max_steps"] == 30 and cfg["max_attempts"] == 3 and cfg["provider"] == "auto"
    assert cfg["critical_max_passovers"] == 2 and cfg.duration("retry_backoff") == 1800
    assert cfg["budget"]["usd_per_run"] == 2.0
    assert cfg.config_file == home / ".config" / "agentd" / "config.yaml"
    assert cfg.state_dir == home / ".local" / "state" / "agentd"
    assert cfg.worklog_path == tmp_path / "wl" / "testhost_worklog.txt"
    assert cfg.tasks_dir == tmp_path / "wl" / "tasks"
    assert cfg.warnings == []


def test_values_come_from_the_config_file(config_file, home, monkeypatch):
    monkeypatch.delenv("AGENTD_WORKLOG_DIR")
    config_file.write_text("worklog_dir: ~/notes\nmax_steps: 7\nprovider: none\ninterval: 2h\n"
                           "quiet_hours: '22:00-07:00'\nbudget:\n  usd_per_day: 3.5\n")
    cfg = config.load(env())
    assert cfg["max_steps"] == 7 and cfg["provider"] == "none" and cfg["interval"] == "2h"
    assert cfg["budget"]["usd_per_day"] == 3.5 and cfg["budget"]["usd_per_run"] == 2.0
    assert cfg.worklog_path == home / "notes" / "testhost_worklog.txt"


def test_an_empty_config_file_means_defaults(config_file):
    config_file.write_text("# nothing yet\n")
    assert config.load(env())["max_steps"] == 30


def test_every_problem_is_listed_at_once_with_file_line_and_key(config_file):
    config_file.write_text("provider: none\n"          # 1 fine
                           "max_step: 5\n"             # 2 misspelt
                           "max_attempts: many\n"      # 3 wrong type
                           "retry_backoff: soon\n"     # 4 not a duration
                           "budget:\n"                 # 5
                           "  usd_per_rn: 1\n"         # 6 misspelt nested
                           "  tokens_per_day: -5\n"    # 7 out of range
                           "io_idle: maybe\n")         # 8 not a bool
    probs = problems()
    f = str(config_file)
    assert len(probs) == 6, probs
    want = [(2, "'max_step'", "did you mean 'max_steps'"), (3, "'max_attempts'", "must be an integer"),
            (4, "'retry_backoff'", "duration"), (6, "'budget.usd_per_rn'", "did you mean 'usd_per_run'"),
            (7, "'budget.tokens_per_day'", "at least 1"), (8, "'io_idle'", "true or false")]
    for line, key, words in want:
        assert any(p.startswith(f"{f}:{line}: {key}") and words in p for p in probs), (line, key, probs)


def test_invalid_yaml_names_the_file_and_line(config_file):
    config_file.write_text("max_steps: 3\nprovider: [auto\n")
    (p,) = problems()
    assert p.startswith(f"{config_file}:") and "not valid YAML" in p


def test_a_config_that_is_not_a_mapping_is_an_error(config_file):
    config_file.write_text("- max_steps\n- 3\n")
    (p,) = problems()
    assert p.startswith(f"{config_file}:1") and "mapping" in p


def test_an_environment_value_is_read_as_a_yaml_scalar(config_file):
    config_file.write_text("max_steps: 7\n")
    cfg = config.load(env(AGENTD_MAX_STEPS="6", AGENTD_IO_IDLE="no", AGENTD_MAX_LOAD="1.5",
                          AGENTD_PROVIDER="none", AGENTD_QUIET_HOURS="22:00-07:00", AGENTD_MODEL="null"))
    assert cfg["max_steps"] == 6 and type(cfg["max_steps"]) is int
    assert cfg["io_idle"] is False
    assert cfg["max_load"] == 1.5
    assert cfg["provider"] == "none" and cfg["quiet_hours"] == "22:00-07:00"
    assert cfg["model"] is None


def test_every_top_level_key_can_be_set_from_the_environment(tmp_path):
    cfg = config.load(env(AGENTD_WORKLOG_DIR=str(tmp_path / "elsewhere"), AGENTD_WORKSPACE=str(tmp_path / "ws"),
                          AGENTD_STATE_DIR=str(tmp_path / "st"), AGENTD_TASKS_DIR=str(tmp_path / "tk")))
    assert cfg.worklog_path == tmp_path / "elsewhere" / "testhost_worklog.txt"
    assert cfg.workspace == tmp_path / "ws" and cfg.state_dir == tmp_path / "st"
    assert cfg.tasks_dir == tmp_path / "tk" and cfg.index_path.parent == tmp_path / "st"


SAMPLE = {"str": "x", "path": "/tmp/x", "bool": "true", "duration": "7m", "time_range": "01:00-02:00",
          "prices": "{m: {input: 1, output: 2}}", "map": "{}", "network": "[pypi.org]", "count": "20", "size": "1G"}


@pytest.mark.parametrize("key", sorted(config.CONFIG_FIELDS))
def test_each_top_level_key_is_accepted_from_the_environment(key):
    f = config.CONFIG_FIELDS[key]
    if f.kind == "bool":
        raw = "no" if f.default else "yes"
    elif f.kind == "enum":
        raw = f.choices[-1]
    elif f.kind in ("int", "float"):
        raw = str(int(f.lo) + 1 if f.lo is not None else 1)
    else:
        raw = SAMPLE[f.kind]
    cfg = config.load(env(**{f"AGENTD_{key.upper()}": raw}))
    assert cfg.warnings == []
    assert cfg[key] is not None and cfg[key] != f.default or f.kind == "map"


def test_a_bad_environment_value_is_an_error_naming_the_variable():
    (p,) = problems(env(AGENTD_MAX_STEPS="abc"))
    assert "AGENTD_MAX_STEPS" in p and "'max_steps'" in p and "integer" in p


def test_environment_values_are_checked_by_the_same_schema():
    (p,) = problems(env(AGENTD_MAX_STEPS="0"))
    assert "AGENTD_MAX_STEPS" in p and "between 1" in p
    (p,) = problems(env(AGENTD_PROVIDER="antrophic"))
    assert "AGENTD_PROVIDER" in p and "anthropic" in p


def test_file_and_environment_problems_are_listed_together(config_file):
    config_file.write_text("max_step: 5\n")
    probs = problems(env(AGENTD_MAX_ATTEMPTS="lots", AGENTD_INTERVAL="often"))
    assert len(probs) == 3
    assert any(str(config_file) in p for p in probs)
    assert any("AGENTD_MAX_ATTEMPTS" in p for p in probs) and any("AGENTD_INTERVAL" in p for p in probs)


def test_the_environment_wins_over_the_file(config_file):
    config_file.write_text("max_attempts: 5\n")
    assert config.load(env(AGENTD_MAX_ATTEMPTS="2"))["max_attempts"] == 2


def test_an_unknown_agentd_variable_gets_a_warning_naming_it():
    cfg = config.load(env(AGENTD_FOO="1", AGENTD_MAX_STEP="3"))
    assert len(cfg.warnings) == 2
    assert any("AGENTD_FOO" in w for w in cfg.warnings)
    assert any("AGENTD_MAX_STEP" in w for w in cfg.warnings)
    assert cfg["max_steps"] == 30


@pytest.mark.parametrize("text, words", [
    ("prices:\n  m: {input: x, output: 1}\n", "'prices': each model must be {input: X, output: Y}"),
    ("prices:\n  m: {input: 1}\n", "'m': not {'input': 1}"),
    ("prices:\n  m: {input: 1, output: 1, context: 0.5}\n", "'m': not {'input': 1, 'output': 1, 'context': 0.5}"),
    ("prices:\n  a: {input: x, output: 1}\n  b: {input: 1}\n", "'a': not {'input': 'x', 'output': 1}; 'b': not"),
    ("prices: 5\n", "'prices': must be a mapping"),
    ("models:\n  anthropic: claude-x\n  anthropc: y\n", "'models.anthropc': unknown key (did you mean 'anthropic'?)"),
    ("workspace: 5\n", "'workspace': must be a path, not an integer 5"),
    ("max_steps: 5\nmax_steps: 6\n", ":2: 'max_steps': given twice (first on line 1)"),
    ("budget:\n  usd_per_day: 1\n  usd_per_day: 2\n", ":3: 'budget.usd_per_day': given twice"),
])
def test_values_the_schema_refuses(config_file, text, words):
    config_file.write_text(text)
    listed = problems(env())
    assert any(words in p for p in listed), listed


@pytest.mark.parametrize("raw, want", [("2024", "2024"), ("yes", "yes"), ("~", "~"), ("~/notes", "~/notes")])
def test_a_path_from_the_environment_is_taken_as_written(raw, want, home):
    cfg = config.load(env(AGENTD_WORKLOG_DIR=raw))
    assert cfg["worklog_dir"] == want
    if want.startswith("~"):
        assert "~" not in str(cfg.worklog_dir)  # expanded to the home directory
    else:
        assert cfg.worklog_dir.name == want


def test_a_key_with_no_value_means_its_default(config_file):
    config_file.write_text("worklog_dir:\nmax_steps:\n")
    e = env()
    e.pop("AGENTD_WORKLOG_DIR", None)
    cfg = config.load(e)
    assert cfg["worklog_dir"] == "~/agentd" and cfg["max_steps"] == 30


def test_a_key_given_twice_does_not_hide_the_other_problems(config_file):
    config_file.write_text("max_steps: 5\nmax_steps: 6\nmax_step: 1\nworkspace: 5\n")
    listed = problems(env())
    assert any("given twice" in p for p in listed) and any("'max_step': unknown key" in p for p in listed)
    assert any("'workspace': must be a path" in p for p in listed)


def test_prices_and_models_that_are_right_are_kept(config_file):
    config_file.write_text("prices:\n  my-model: {input: 0.5, output: 2, cache_read: 0.05}\n"
                           "models:\n  openai: gpt-x\n")
    cfg = config.load(env())
    assert cfg["prices"] == {"my-model": {"input": 0.5, "output": 2, "cache_read": 0.05}}
    assert cfg["models"]["openai"] == "gpt-x" and cfg["models"]["anthropic"] is None


def test_unknown_variables_are_still_named_when_a_setting_is_wrong():
    """AGENTD_MAX_STEP=abc with AGENTD_FOO=1: the config error lists the misspelt one too."""
    with pytest.raises(ConfigError) as info:
        config.load(env(AGENTD_MAX_STEPS="abc", AGENTD_FOO="1"))
    assert len(info.value.problems) == 1 and "AGENTD_MAX_STEPS" in info.value.problems[0]
    assert "AGENTD_FOO is not an agentd setting" in str(info.value)  # shown, though not counted as a problem


@pytest.mark.parametrize("host", ["../evil", "a/b", ".hidden", "two words", "x" * 65])
def test_a_host_name_that_cannot_name_a_worklog_is_a_config_error(host):
    (p,) = problems(env(AGENTD_HOST=host))
    assert "AGENTD_HOST" in p and repr(host) in p


def test_host_config_and_debug_variables_are_not_warned_about(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("max_steps: 4\n")
    cfg = config.load(env(AGENTD_HOST="h", AGENTD_CONFIG=str(other), AGENTD_DEBUG="1"))
    assert cfg.warnings == []


def test_agentd_config_points_at_another_file(tmp_path, config_file):
    config_file.write_text("max_steps: 9\n")
    other = tmp_path / "other.yaml"
    other.write_text("max_steps: 4\nmax_stepz: 1\n")
    (p,) = problems(env(AGENTD_CONFIG=str(other)))
    assert p.startswith(f"{other}:2: 'max_stepz'")
    other.write_text("max_steps: 4\n")
    cfg = config.load(env(AGENTD_CONFIG=str(other)))
    assert cfg["max_steps"] == 4 and cfg.config_file == other


def test_agentd_config_naming_a_missing_file_is_an_error(tmp_path):
    (p,) = problems(env(AGENTD_CONFIG=str(tmp_path / "nope.yaml")))
    assert str(tmp_path / "nope.yaml") in p


def test_the_host_comes_from_agentd_host():
    cfg = config.load(env(AGENTD_HOST="gpu-box"))
    assert cfg.host == "gpu-box" and cfg.worklog_path.name == "gpu-box_worklog.txt"


def test_without_agentd_host_the_short_hostname_is_used():
    e = env()
    del e["AGENTD_HOST"]
    cfg = config.load(e)
    assert cfg.host == socket.gethostname().split(".")[0]
    assert "." not in cfg.host


def test_the_env_file_in_the_config_dir_is_read_but_the_real_environment_wins(home):
    d = home / ".config" / "agentd"
    d.mkdir(parents=True)
    (d / "env").write_text("# systemd EnvironmentFile\nAGENTD_MAX_STEPS=8\nexport AGENTD_MAX_ATTEMPTS='4'\n")
    cfg = config.load(env())
    assert cfg["max_steps"] == 8 and cfg["max_attempts"] == 4
    assert config.load(env(AGENTD_MAX_STEPS="2"))["max_steps"] == 2


def test_xdg_paths_are_used(tmp_path):
    cfg = config.load(env(XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_STATE_HOME=str(tmp_path / "state")))
    assert cfg.config_file == tmp_path / "cfg" / "agentd" / "config.yaml"
    assert cfg.state_dir == tmp_path / "state" / "agentd"
    assert cfg.store_path.parent == cfg.state_dir


def test_a_mapping_set_by_environment_variable_keeps_the_other_keys(monkeypatch):
    from agentd.config import config

    monkeypatch.setenv("AGENTD_BUDGET", "{usd_per_run: 0.5}")
    cfg = config.load()
    assert cfg["budget"]["usd_per_run"] == 0.5
    assert cfg["budget"]["tokens_per_run"] == config.BUDGET_FIELDS["tokens_per_run"].default
    monkeypatch.setenv("AGENTD_REVIEW", "{enabled: true}")
    assert config.load()["review"] == {"enabled": True, "provider": None, "model": None}


@pytest.mark.parametrize("target", ["/nonexistent/config.yaml", "config.yaml"])  # dangling; a loop
def test_a_config_symlink_to_nothing_readable_is_an_error_not_no_config(config_file, target):
    config_file.symlink_to(target)
    assert any("is a symlink to nothing readable" in p and str(config_file) in p for p in problems(env()))


def test_the_file_s_problems_are_listed_in_the_order_of_their_lines(config_file):
    config_file.write_text("max_step: 3\nbudget:\n  wat: 1\n  usd_per_day: lots\n"
                           "interval: 2h\ninterval: 3h\nprovider: nope\n")
    listed = problems(env(AGENTD_MAX_STEPS="many"))
    lines = [int(p.split(f"{config_file}:", 1)[1].split(":", 1)[0]) for p in listed if p.startswith(f"{config_file}:")]
    assert lines == [1, 3, 4, 6, 7], listed
    assert "given twice" in listed[3]
    assert listed[-1].startswith("environment variable AGENTD_MAX_STEPS")  # after the file's, as before
