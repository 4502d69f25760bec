"""Cursors of api/pagination.py: a round trip for every kind of position part, and every way a
cursor can be wrong is one 422 naming `query.cursor`, never a query with odd values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from api.errors import Unprocessable
from api.pagination import CursorCodec, Keyset, wants_page

TIMED = Keyset("servers", (datetime, uuid.UUID))
NUMBERED = Keyset("audit", (int,))
CODEC = CursorCodec(b"k" * 32)


@given(
    st.datetimes(timezones=st.just(UTC), min_value=datetime(1970, 1, 1), max_value=datetime(2199, 12, 31)),
    st.uuids(),
)
def test_time_and_id_round_trip(time: datetime, item_id: uuid.UUID) -> None:
    assert CODEC.decode(TIMED, CODEC.encode(TIMED, (time, item_id))) == (time, item_id)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_integer_round_trip(value: int) -> None:
    assert CODEC.decode(NUMBERED, CODEC.encode(NUMBERED, (value,))) == (value,)


def _refused(keyset: Keyset, cursor: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        CODEC.decode(keyset, cursor)
    errors = caught.value.errors
    assert errors is not None and errors[0]["loc"] == ["query", "cursor"]
    assert errors[0]["type"] == "invalid_cursor"


def test_wrong_cursors_are_refused() -> None:
    good = CODEC.encode(TIMED, (datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4()))
    body, _, tag = good.partition(".")
    for bad in (
        "",
        "nonsense",
        body,  # no tag
        f"{body}.{tag[:-1]}",  # a cut tag
        f"{body}x.{tag}",  # an altered body
        f"{body}.{'A' * len(tag)}",  # a made-up tag
        "é.é",  # not ASCII
        "\x00",
    ):
        _refused(TIMED, bad)
    # Another list's cursor, and the same list's cursor signed with another secret.
    _refused(NUMBERED, good)
    _refused(TIMED, CursorCodec(b"o" * 32).encode(TIMED, (datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4())))
    # Well signed but of the wrong shape: the codec checks parts, not only the signature.
    _refused(NUMBERED, CODEC.encode(Keyset("audit", (datetime,)), (datetime(2026, 1, 1, tzinfo=UTC),)))
    _refused(NUMBERED, CODEC.encode(Keyset("audit", (int, int)), (1, 2)))


def _request(accept: str | None) -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""})


@pytest.mark.parametrize(
    ("accept", "page"),
    [
        (None, False),
        ("application/json", False),
        ("*/*", False),
        ("application/vnd.fleetpulse.page+json", True),
        ("application/json;q=0.5, Application/Vnd.Fleetpulse.Page+JSON", True),
        ("application/vnd.fleetpulse.page+json;q=0", False),
        ("application/vnd.fleetpulse.page+json; q=0.1", True),
    ],
)
def test_page_media_type_is_negotiated(accept: str | None, page: bool) -> None:
    assert wants_page(_request(accept)) is page
