"""The faust app of every processor: a plain faust app with the project's conventions (it only
hosts services and web pages: no agent or table, whose recovery faust-streaming gets wrong)."""

from pathlib import Path

import faust

from schemas.settings import CommonSettings, Environment
from stream_processors import app as processors_app
from stream_processors.alerts import service as alerts_service
from stream_processors.faust_app import create_faust_app
from stream_processors.settings import ProcessorSettings


async def test_every_processor_app_follows_the_conventions(tmp_path: Path) -> None:
    common = CommonSettings(env=Environment.TEST, state_dir=tmp_path, topic_prefix="t.")
    app = create_faust_app(
        common, app_id="unit", web_port=6099, session_timeout_seconds=10, heartbeat_interval_seconds=3
    )
    assert isinstance(app, faust.App)
    assert app.conf.id == "t.unit"
    assert app.conf.web_host == "127.0.0.1"
    assert app.conf.producer_acks == -1
    assert app.conf.broker_session_timeout == 10
    assert (tmp_path / "faust").is_dir()


async def test_no_processor_app_runs_a_faust_agent_or_table(tmp_path: Path) -> None:
    # The guarantee the module's docstring states: every consumer is an aiokafka group of ours.
    common = CommonSettings(env=Environment.TEST, state_dir=tmp_path, topic_prefix="t.")
    settings = ProcessorSettings(common=common)
    apps = [
        processors_app.create_app(settings),
        alerts_service.create_alert_app(common, settings.alerts, app_id="unit-alerts", web_port=6098),
    ]
    for app in apps:
        assert not app.agents
        assert not app.tables
