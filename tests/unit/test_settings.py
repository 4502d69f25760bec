from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from schemas.settings import CommonSettings, Environment

GOOD = "x" * 40


def test_production_refuses_a_missing_secret(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="FLEETPULSE_KEY_PEPPER"):
        CommonSettings(env=Environment.PRODUCTION, state_dir=tmp_path, jwt_secret=SecretStr(GOOD))


@pytest.mark.parametrize("placeholder", ["changeme", "secret", "short"])
def test_production_refuses_a_placeholder_secret(tmp_path: Path, placeholder: str) -> None:
    with pytest.raises(ValidationError, match="FLEETPULSE_JWT_SECRET"):
        CommonSettings(
            env=Environment.PRODUCTION,
            state_dir=tmp_path,
            key_pepper=SecretStr(GOOD),
            jwt_secret=SecretStr(placeholder),
        )


def test_production_accepts_real_secrets(tmp_path: Path) -> None:
    s = CommonSettings(
        env=Environment.PRODUCTION,
        state_dir=tmp_path,
        key_pepper=SecretStr(GOOD),
        jwt_secret=SecretStr(GOOD + "y"),
    )
    assert s.jwt_secret.get_secret_value() == GOOD + "y"
    assert not (tmp_path / "secrets").exists()


def test_development_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    first = CommonSettings(env=Environment.DEVELOPMENT, state_dir=tmp_path)
    second = CommonSettings(env=Environment.DEVELOPMENT, state_dir=tmp_path)
    secret = first.jwt_secret.get_secret_value()
    assert len(secret) >= 32
    assert second.jwt_secret.get_secret_value() == secret
    assert first.key_pepper.get_secret_value() != secret
    assert (tmp_path / "secrets" / "jwt_secret").stat().st_mode & 0o077 == 0


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLEETPULSE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("FLEETPULSE_STATE_DIR", str(tmp_path))
    assert CommonSettings().kafka_bootstrap == "127.0.0.1:1"
