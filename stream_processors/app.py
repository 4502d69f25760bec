"""The faust application factory: raw bytes on every topic, decoded through `schemas/`."""

from __future__ import annotations

from typing import Any

import faust

from .settings import ProcessorSettings


def create_app(settings: ProcessorSettings) -> faust.App:
    common = settings.common
    app = faust.App(
        f"{common.topic_prefix}{settings.app_id}",
        broker=f"kafka://{common.kafka_bootstrap}",
        # Never the pickle codec: values are raw bytes, decoded by schemas' TypeAdapters.
        value_serializer="raw",
        key_serializer="raw",
        web_port=settings.web_port,
        web_host="127.0.0.1",
        datadir=str(common.state_dir / "faust" / settings.app_id),
        topic_partitions=common.topic_partitions,
        topic_replication_factor=1,
        producer_acks=-1,
    )

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    return app
