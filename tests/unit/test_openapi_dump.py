"""`python -m api.openapi_dump` (what `make client` and the types' check read) prints the document
the API serves, built without a server, and leaves nothing behind in the state folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.app import create_app
from api.openapi_dump import main
from api.settings import ApiSettings
from schemas.settings import CommonSettings


def test_the_dump_is_the_served_document(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("FLEETPULSE_STATE_DIR", str(state))
    main([])
    dumped = json.loads(capsys.readouterr().out)
    assert not state.exists()  # no development secret was generated for it
    served = create_app(ApiSettings(common=CommonSettings(state_dir=tmp_path / "other"))).openapi()
    assert dumped == served
    assert "/api/v1/servers" in dumped["paths"] and "ServerOut" in dumped["components"]["schemas"]
