"""The one-line install's command and URLs (api/install.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.install import agent_socket_url, check_public_url, install_command
from api.routes.install import _wheels, render_script
from api.settings import ApiSettings


def test_public_url_is_normalised_and_checked() -> None:
    assert check_public_url("http://10.0.0.5:8000/") == "http://10.0.0.5:8000"
    assert check_public_url(" https://fleet.example.com/pulse/ ") == "https://fleet.example.com/pulse"
    for bad in ("fleet.example.com", "ftp://x", "http://", "http://x/?a=1", "http://x/#top"):
        with pytest.raises(ValueError, match="must"):
            check_public_url(bad)


def test_public_url_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETPULSE_API_PUBLIC_URL", "fleet.example.com")
    with pytest.raises(ValidationError, match="public_url"):
        ApiSettings()
    monkeypatch.setenv("FLEETPULSE_API_PUBLIC_URL", "https://fleet.example.com/")
    assert ApiSettings().public_url == "https://fleet.example.com"


def test_agent_socket_url_beside_the_api_or_explicit() -> None:
    assert agent_socket_url("http://h:8000", None) == "ws://h:8000/api/v1/agents/ws"
    assert agent_socket_url("https://h/pulse", None) == "wss://h/pulse/api/v1/agents/ws"
    assert agent_socket_url("https://h", "https://ingest.h:8443") == "wss://ingest.h:8443/api/v1/agents/ws"
    assert agent_socket_url("https://h", "wss://ingest.h/custom/ws") == "wss://ingest.h/custom/ws"


def test_install_command_is_the_documented_line() -> None:
    key = "fpk_abcdefghijkl_" + "x" * 43
    assert install_command("http://h:8000/", key) == (
        f"curl -fsSL http://h:8000/install.sh | sudo sh -s -- --key {key}"
    )
    # Anything a shell would read specially is quoted.
    assert (
        install_command("http://h/a b", "k;rm")
        == "curl -fsSL 'http://h/a b/install.sh' | sudo sh -s -- --key 'k;rm'"
    )


def test_the_served_script_carries_the_urls_quoted_and_is_valid_sh(tmp_path: Path) -> None:
    script = render_script("https://fleet.example.com", "wss://fleet.example.com/api/v1/agents/ws")
    assert "FLEETPULSE_URL=https://fleet.example.com\n" in script and "@@" not in script
    hostile = render_script("http://h/$(reboot)", "ws://h/`id`")
    assert "FLEETPULSE_URL='http://h/$(reboot)'" in hostile and "AGENT_URL='ws://h/`id`'" in hostile
    path = tmp_path / "install.sh"
    path.write_text(script)
    assert subprocess.run(["sh", "-n", str(path)], check=False).returncode == 0
    # Without root and without --root it stops at once, saying how to run it.
    if os.geteuid() != 0:
        done = subprocess.run(["sh", str(path), "--key", "k"], capture_output=True, text=True, check=False)
        assert done.returncode == 1 and "run as root" in done.stderr


def test_only_the_wheelhouse_files_are_served(tmp_path: Path) -> None:
    (tmp_path / "fleetpulse_agent-1-py3-none-any.whl").write_bytes(b"w")
    (tmp_path / "notes.txt").write_text("not a wheel")
    (tmp_path / ".fleetpulse-wheelhouse").write_text("stamp")
    assert [p.name for p in _wheels(tmp_path)] == ["fleetpulse_agent-1-py3-none-any.whl"]
    assert _wheels(tmp_path / "missing") == []
