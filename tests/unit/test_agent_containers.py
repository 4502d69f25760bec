"""Containers: listed through the Docker Engine API when a daemon answers (a fake SDK client here),
and no containers (None, not an error) when none does."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fleetpulse_agent.collector import Collector, ContainerSource
from schemas.agent_wire import AGENT_FRAME, SeedMetricsFrame


class FakeContainers:
    def __init__(self, items: list[Any], fail: bool = False) -> None:
        self.items = items
        self.fail = fail

    def list(self, all: bool = False) -> list[Any]:
        assert all is True  # stopped containers are reported too
        if self.fail:
            raise ConnectionError("daemon went away")
        return self.items


def container(short_id: str, name: str, status: str, image: str | None) -> SimpleNamespace:
    attrs = {"State": {"Status": status}, "Config": {"Image": image} if image else {}}
    return SimpleNamespace(short_id=short_id, id=short_id * 4, name=name, status=status, attrs=attrs)


def test_containers_are_listed_running_and_stopped_and_sent_as_the_server_reads_them() -> None:
    client = SimpleNamespace(
        containers=FakeContainers(
            [container("a1b2c3", "web", "running", "nginx:1.27"), container("d4e5f6", "job", "exited", None)]
        )
    )
    source = ContainerSource(client)
    listed = source.containers()
    assert listed is not None
    assert [(c.id, c.name, c.state, c.image) for c in listed] == [
        ("a1b2c3", "web", "running", "nginx:1.27"),
        ("d4e5f6", "job", "exited", None),
    ]
    frame = Collector(top_processes=0, docker=source).sample()
    server = AGENT_FRAME.validate_json(frame.with_seq(1).to_bytes())
    assert isinstance(server, SeedMetricsFrame) and server.containers is not None
    assert [c.name for c in server.containers] == ["web", "job"]


def test_a_daemon_that_goes_away_reports_no_containers_this_time() -> None:
    source = ContainerSource(SimpleNamespace(containers=FakeContainers([], fail=True)))
    assert source.containers() is None


def test_no_reachable_daemon_means_no_container_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")  # nothing listens there
    assert ContainerSource.connect(timeout=1) is None
    frame = Collector(top_processes=0, docker=None).sample()
    assert frame.containers is None  # "no Docker", not "no containers"
