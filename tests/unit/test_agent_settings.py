"""Agent settings: URL derivation, the configuration file, refusals that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetpulse_agent.errors import ConfigError
from fleetpulse_agent.settings import AgentSettings, agent_socket_url, load


def test_socket_url_from_a_base_url() -> None:
    assert agent_socket_url("https://fp.example.com") == "wss://fp.example.com/api/v1/agents/ws"
    assert agent_socket_url("http://10.0.0.5:8001/") == "ws://10.0.0.5:8001/api/v1/agents/ws"
    assert agent_socket_url("wss://fp.example.com/custom/ws") == "wss://fp.example.com/custom/ws"
    with pytest.raises(ConfigError, match="SERVER_URL"):
        agent_socket_url("ftp://nope")


def test_commands_are_off_by_default() -> None:
    s = AgentSettings()
    assert s.commands_enabled is False and s.command_allowlist == []
    assert s.docker_actions_enabled is False
    assert s.interval_seconds == 5.0


def test_configuration_file_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETPULSE_AGENT_INTERVAL_SECONDS", "7")
    monkeypatch.setenv("FLEETPULSE_AGENT_TOP_PROCESSES", "3")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        '[agent]\nserver_url = "https://fp.example.com"\napi_key = "fpk_x"\ninterval_seconds = 10\n'
        'commands_enabled = true\ncommand_allowlist = ["uptime", "systemctl status [a-z-]+"]\n'
    )
    s = load(cfg, overrides={"state_dir": tmp_path / "st", "top_processes": None})
    assert s.server_url == "wss://fp.example.com/api/v1/agents/ws"
    assert s.interval_seconds == 10  # the file wins over the environment
    assert s.top_processes == 3  # the environment fills in the rest
    assert s.spool_path == tmp_path / "st" / "spool.sqlite3"
    assert s.require_key() == "fpk_x"


def test_bad_values_are_refused_by_name(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('command_allowlist = ["(unclosed"]\n')
    with pytest.raises(ConfigError, match="command_allowlist"):
        load(cfg)
    cfg.write_text("unknown_setting = 1\n")
    with pytest.raises(ConfigError, match="unknown_setting"):
        load(cfg)
    with pytest.raises(ConfigError, match="API_KEY"):
        load(None, environ={}).require_key()


def test_the_shipped_example_configuration_loads_with_commands_off() -> None:
    example = Path(__file__).resolve().parents[2] / "infra" / "agent" / "agent.toml.example"
    s = load(example)
    assert s.server_url == "wss://fleetpulse.example.com/api/v1/agents/ws"
    assert s.commands_enabled is False and s.docker_actions_enabled is False
    assert s.spool_path == Path("/var/lib/fleetpulse-agent/spool.sqlite3")
    assert "uptime" in s.command_allowlist


def test_the_systemd_unit_runs_unprivileged_and_does_not_restart_on_a_refused_key() -> None:
    unit = (Path(__file__).resolve().parents[2] / "infra" / "agent" / "fleetpulse-agent.service").read_text()
    assert "User=fleetpulse-agent" in unit and "User=root" not in unit
    assert "RestartPreventExitStatus=2 3 4" in unit
    assert "--config /etc/fleetpulse/agent.toml" in unit


def test_environment_values_are_converted_and_checked() -> None:
    env = {
        "FLEETPULSE_AGENT_INTERVAL_SECONDS": "2.5",
        "FLEETPULSE_AGENT_COMMANDS_ENABLED": "yes",
        "FLEETPULSE_AGENT_LOG_FILES": '["/var/log/syslog", "/var/log/app.log"]',
        "FLEETPULSE_AGENT_JOURNAL_UNITS": '["nginx.service"]',
        "FLEETPULSE_AGENT_TLS_CA_FILE": "/etc/ca.pem",
    }
    s = load(None, environ=env)
    assert s.interval_seconds == 2.5 and s.commands_enabled is True
    assert s.log_files == [Path("/var/log/syslog"), Path("/var/log/app.log")]
    assert s.journal_units == ["nginx.service"] and s.tls_ca_file == Path("/etc/ca.pem")
    for name, value, what in [
        ("INTERVAL_SECONDS", "0.1", "interval_seconds"),  # below its bound
        ("INTERVAL_SECONDS", "fast", "INTERVAL_SECONDS"),
        ("TOP_PROCESSES", "201", "top_processes"),
        ("COMMANDS_ENABLED", "maybe", "COMMANDS_ENABLED"),
        ("LOG_FILES", "/var/log/syslog", "LOG_FILES"),  # not a JSON list
        ("JOURNAL_UNITS", '["-f"]', "journal_units"),  # an option, not a unit
    ]:
        with pytest.raises(ConfigError, match=what):
            load(None, environ={f"FLEETPULSE_AGENT_{name}": value})


def test_the_file_is_checked_like_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('interval_seconds = "soon"\n')
    with pytest.raises(ConfigError, match="interval_seconds"):
        load(cfg, environ={})
    cfg.write_text("top_processes = true\n")  # a boolean is no count
    with pytest.raises(ConfigError, match="top_processes"):
        load(cfg, environ={})
    cfg.write_text("[agent\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load(cfg, environ={})
