"""The one-line install's command and URLs (api/install.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.install import agent_socket_url, check_public_url, install_command
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
