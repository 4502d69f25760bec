"""The API's error answers (`api/errors.py`): a validation error echoes any input safely, the shared
input types refuse what storage cannot hold with a 422 that says so, and an unhandled exception is
a 500 that leaves the kept-alive connection usable."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

from api import errors
from api.models import ApiKeyIn, ApiTime, Metadata, ServerIn


def test_any_input_is_echoed_as_json_can_carry_it() -> None:
    echoed = errors.echo(
        {
            "nan": math.nan,
            "inf": math.inf,
            "-inf": -math.inf,
            "lone": "a\ud800b",
            "raw": b"\xff\x00",
            "big": 2**70,
            "long": "x" * 1000,
            "deep": [[[[[["too deep"]]]]]],
            "\udfff key": None,
            "items": list(range(100)),
        }
    )
    text = json.dumps(echoed, allow_nan=False, ensure_ascii=False).encode("utf-8")  # must not raise
    assert echoed["nan"] == "NaN" and echoed["inf"] == "Infinity" and echoed["-inf"] == "-Infinity"
    assert echoed["lone"] == "a\\ud800b" and echoed["raw"] == "\ufffd\x00" and echoed["big"] == 2**70
    assert len(echoed["long"]) == errors.ECHO_TEXT + 3 and echoed["deep"] == [[["..."]]]  # cut 4 levels down
    assert "\\udfff key" in echoed and len(echoed["items"]) == errors.ECHO_ITEMS
    assert text


class _Body(BaseModel):
    threshold: float
    name: str


def _errors_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        _Body.model_validate(body)
    return errors.validation_errors(info.value.errors())


def test_validation_errors_keep_fastapis_shape_and_encode() -> None:
    answer = _errors_of({"threshold": "NaN?", "name": math.inf})
    json.dumps(answer, allow_nan=False)
    assert [e["loc"] for e in answer] == [["threshold"], ["name"]]
    assert answer[1]["input"] == "Infinity" and answer[1]["type"] == "string_type"


@pytest.mark.parametrize(
    ("model", "body", "says"),
    [
        (ApiKeyIn, {"expires_at": "9999-12-31T23:59:59-01:00"}, "out of range once converted to UTC"),
        (ApiKeyIn, {"expires_at": "0001-01-01T00:00:00+01:00"}, "out of range once converted to UTC"),
        (ApiKeyIn, {"expires_at": "0001-01-01T00:00:00Z"}, "time must be from 1970-01-01"),
        (ApiKeyIn, {"expires_at": "2200-01-01T00:00:00Z"}, "before 2200-01-01"),
        (ApiKeyIn, {"expires_at": "2030-01-01T00:00:00"}, "must carry a UTC offset"),
        (ServerIn, {"name": "a\ud800"}, "unable to parse raw data as a unicode string"),
        (ServerIn, {"name": "a\x00b"}, "must not contain NUL"),
        (ServerIn, {"name": "s", "metadata": {"k": math.nan}}, "metadata numbers must be finite"),
        (ServerIn, {"name": "s", "metadata": {"k": [{"x": "\x00"}]}}, "must not contain NUL"),
        (ServerIn, {"name": "s", "metadata": {"\ud800": 1}}, "must not contain NUL"),
        (ServerIn, {"name": "s", "metadata": {"k": 2**64}}, "metadata integers must fit 64 bits"),
        (ServerIn, {"name": "s", "metadata": {"k": list(range(2000))}}, "metadata holds at most 1000"),
    ],
)
def test_shared_input_types_refuse_what_cannot_be_stored(
    model: type[BaseModel], body: Any, says: str
) -> None:
    base = {"server_id": "00000000-0000-4000-8000-000000000001"} if model is ApiKeyIn else {}
    with pytest.raises(ValidationError, match=says):
        model.model_validate({**base, **body})


def test_the_api_time_range_and_metadata_accept_what_they_should() -> None:
    class Query(BaseModel):
        at: ApiTime
        metadata: Metadata

    ok = Query.model_validate(
        {
            "at": "1970-01-01T01:00:00+01:00",
            "metadata": {"env": "prod", "n": [1, 2.5, None, True], "é": {"x": 1}},
        }
    )
    assert ok.at.utcoffset() is not None and ok.at.year == 1970


async def test_an_unhandled_exception_is_a_500_and_the_connection_stays_usable() -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        return {"ok": "yes"}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical"))
    task = asyncio.create_task(server._serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
            first = await client.get("/boom")
            assert (first.status_code, first.headers["content-type"]) == (500, "application/problem+json")
            assert first.json() == {
                "type": "/problems/internal-error",
                "title": "Internal error",
                "status": 500,
                "detail": "internal error",
                "instance": "/boom",
            }
            # The same kept-alive connection answers the next request (Starlette's own guard
            # re-raises, and uvicorn then closed it: this request failed with a ReadError).
            second = await client.get("/fine")
            assert second.json() == {"ok": "yes"}
            assert first.extensions["network_stream"] is second.extensions["network_stream"]
    finally:
        server.should_exit = True
        await task
