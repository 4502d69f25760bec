"""No Docker engine runs here, so the compose path is checked for what can be checked without one:
the file parses, its services are the ones the README names, images are pinned, the deployables
run commands that exist, have healthchecks, get no usable secret by default, and every
FLEETPULSE_ variable they set is a real setting."""

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from api.settings import ApiSettings
from ingest.settings import IngestSettings
from schemas.settings import CommonSettings
from stream_processors.settings import ProcessorSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOYABLES = {"ingest", "api", "stream_processors", "migrate"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_services_and_pinned_images() -> None:
    services = compose()["services"]
    assert {"kafka", "timescaledb"} | DEPLOYABLES <= set(services)
    assert services["kafka"]["image"] == "apache/kafka:3.9.2"
    assert re.fullmatch(r"timescale/timescaledb:2\.19\.\d+-pg15", services["timescaledb"]["image"])
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name} image is not pinned: {image!r}"


def test_the_readme_names_only_services_that_exist() -> None:
    services = set(compose()["services"])
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"docker compose (?:up|logs|restart) ([a-z_]+)", readme))
    assert named, "the README shows no compose command"
    assert named <= services


def test_deployables_run_real_commands_with_healthchecks() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    services = compose()["services"]
    for name in DEPLOYABLES:
        command = services[name]["command"]
        assert command[0] in scripts, f"{name} runs {command[0]}, which pyproject does not install"
        if name != "migrate":
            assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert (ROOT / services["api"]["build"]["dockerfile"]).is_file()


def test_secrets_have_no_default_and_settings_exist() -> None:
    known = {f"FLEETPULSE_{f.upper()}" for f in CommonSettings.model_fields}
    for cls, prefix in (
        (IngestSettings, "FLEETPULSE_INGEST_"),
        (ApiSettings, "FLEETPULSE_API_"),
        (ProcessorSettings, "FLEETPULSE_PROCESSORS_"),
    ):
        known |= {f"{prefix}{f.upper()}" for f in cls.model_fields}
    services = compose()["services"]
    for name in DEPLOYABLES:
        env = services[name]["environment"]
        assert env["FLEETPULSE_ENV"] == "production"
        for secret in ("FLEETPULSE_JWT_SECRET", "FLEETPULSE_KEY_PEPPER"):
            assert env[secret].startswith("${") and ":?" in env[secret], f"{name}: {secret} must be required"
        for var in env:
            assert var in known, f"{name} sets {var}, which no settings class reads"


def test_the_image_serves_the_agent_install() -> None:
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    built = re.search(r"python -m ops wheelhouse --dest (\S+)", dockerfile)
    served = re.search(r"FLEETPULSE_API_AGENT_WHEELHOUSE=(\S+)", dockerfile)
    assert built and served and built.group(1) == served.group(1)
    assert "agent_wheelhouse" in ApiSettings.model_fields
    # The installer ships inside the api package when it is installed (not editable) in the image.
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert all((ROOT / "api" / name).is_file() for name in package_data["api"])
    assert "agent_install.sh" in package_data["api"]
