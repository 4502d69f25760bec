"""One pagination for every list: a keyset cursor and a limit.

A list operation takes `?limit=` (1 to the setting `page_max_items`, default `page_default_items`)
and `?cursor=` (the previous page's `next_cursor`), and answers a page

    {"items": [...], "next_cursor": "..." | null}

with `Link: <the same URL with cursor=next_cursor>; rel="next"` while there is more (RFC 8288).
`next_cursor` is null on the last page.

Cursors are keyset positions, never offsets: the sort key of the last item of the page (a time and
an id, or an id), so the next page starts strictly after it whatever was inserted or deleted
meanwhile, and each page is one index range scan. They are opaque: base64url of the list's name and
the position, then an HMAC-SHA256 tag (a key derived from the JWT secret, so every API process
accepts every other's cursors). A cursor that was altered, cut, made up or taken from another list
is a 422 (`invalid_cursor` on `query.cursor`), never a query with odd values.

The legacy REST spec answers three lists as bare arrays (`GET /servers`, `GET
/api-keys/server/{id}`, `GET /alerts/thresholds`); see `negotiated` for how they keep that shape.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, TypeAdapter

from .deps import SettingsDep
from .errors import Unprocessable
from .models import Page

Row = TypeVar("Row")
Position = tuple[Any, ...]

# The media type a client names in `Accept` to get a page from a legacy list (see `negotiated`).
PAGE_MEDIA_TYPE = "application/vnd.fleetpulse.page+json"
# The key of a legacy list's `openapi_extra` naming its page model (`api/openapi.py` reads it).
PAGE_MODEL_KEY = "x-page-model"
CURSOR_MAX_LENGTH = 512
_TAG_BYTES = 16


@dataclass(frozen=True, slots=True)
class Keyset:
    """A list's sort key: its name (so one list's cursor is refused by another) and the types of
    the position's parts, in order."""

    name: str
    parts: tuple[type, ...]

    def dump(self, position: Position) -> list[Any]:
        if len(position) != len(self.parts):
            raise ValueError(f"{self.name}: a position has {len(self.parts)} parts")
        return [
            p.isoformat() if isinstance(p, datetime) else str(p) if isinstance(p, uuid.UUID) else p
            for p in position
        ]

    def load(self, values: Sequence[Any]) -> Position:
        if len(values) != len(self.parts):
            raise ValueError("wrong number of parts")
        loaded: list[Any] = []
        for kind, value in zip(self.parts, values, strict=True):
            if kind is datetime:
                if not isinstance(value, str):
                    raise ValueError("a time is text")
                time = datetime.fromisoformat(value)
                if time.tzinfo is None:
                    raise ValueError("naive time")
                loaded.append(time)
            elif kind is uuid.UUID:
                if not isinstance(value, str):
                    raise ValueError("an id is text")
                loaded.append(uuid.UUID(value))
            elif kind is int:
                if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
                    raise ValueError("an integer of 64 bits")
                loaded.append(value)
            else:  # pragma: no cover - a Keyset declares only these
                raise TypeError(kind)
        return tuple(loaded)


class CursorCodec:
    """Signs and checks cursors with a key derived from `secret`."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"fleetpulse cursor v1", hashlib.sha256).digest()

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, keyset: Keyset, position: Position) -> str:
        payload = orjson.dumps([keyset.name, *keyset.dump(position)])
        return f"{_b64(payload)}.{_b64(self._tag(payload))}"

    def decode(self, keyset: Keyset, cursor: str) -> Position:
        try:
            body, _, tag = cursor.partition(".")
            payload = _unb64(body)
            if not hmac.compare_digest(_unb64(tag), self._tag(payload)):
                raise ValueError("not one of our cursors")
            values = orjson.loads(payload)
            if not isinstance(values, list) or not values or values[0] != keyset.name:
                raise ValueError("a cursor of another list")
            return keyset.load(values[1:])
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise Unprocessable(
                "invalid cursor: pass back a next_cursor of this list, unchanged",
                loc=("query", "cursor"),
                error_type="invalid_cursor",
            ) from exc


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def codec_for(request: Request) -> CursorCodec:
    codec: CursorCodec | None = getattr(request.app.state, "cursor_codec", None)
    if codec is None:
        settings = request.app.state.settings
        codec = CursorCodec(settings.common.jwt_secret.get_secret_value().encode())
        request.app.state.cursor_codec = codec
    return codec


LimitQuery = Annotated[
    int | None,
    Query(
        ge=1,
        description="items per page, 1 to `page_max_items` (1000 by default); default "
        "`page_default_items` (100)",
        examples=[100],
    ),
]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=CURSOR_MAX_LENGTH,
        description="the previous page's `next_cursor`, unchanged; leave it out for the first page",
        examples=["WyJzZXJ2ZXJzIiwiMjAyNi0wMS0wMVQwMDowMDowMCswMDowMCIsIjNmMGMiXQ.c2lnbmF0dXJl"],
    ),
]


class Pager:
    """What a list route gets: the page's `limit` and where it starts (`after`, None for the
    first page); `page(...)` cuts the rows fetched (ask `fetch` = limit + 1) into the page and sets
    the `Link` header."""

    def __init__(self, request: Request, response: Response, limit: int, cursor: str | None) -> None:
        self.request = request
        self.response = response
        self.limit = limit
        self._cursor = cursor
        self._codec = codec_for(request)

    @property
    def fetch(self) -> int:
        """Rows to read: one more than the page tells whether another page follows."""
        return self.limit + 1

    def after(self, keyset: Keyset) -> Position | None:
        return None if self._cursor is None else self._codec.decode(keyset, self._cursor)

    def cut(
        self, keyset: Keyset, rows: Sequence[Row], position: Callable[[Row], Position]
    ) -> tuple[list[Row], str | None]:
        """The page's rows and the next cursor (None at the end); sets `Link` when there is more."""
        page = list(rows[: self.limit])
        if len(rows) <= self.limit or not page:
            return page, None
        next_cursor = self._codec.encode(keyset, position(page[-1]))
        url = self.request.url.include_query_params(cursor=next_cursor)
        self.response.headers["Link"] = f'<{url}>; rel="next"'
        return page, next_cursor


def pager(legacy_default: bool = False) -> Callable[..., Pager]:
    """The dependency of a list route. With `legacy_default`, a request without `limit` gets the
    most items a page may hold (a legacy client expects the whole list in one answer)."""

    def dependency(
        request: Request,
        response: Response,
        settings: SettingsDep,
        limit: LimitQuery = None,
        cursor: CursorQuery = None,
    ) -> Pager:
        most = settings.page_max_items
        if limit is None:
            limit = most if legacy_default else min(settings.page_default_items, most)
        elif limit > most:
            raise Unprocessable(
                f"limit is at most {most}", loc=("query", "limit"), error_type="less_than_equal"
            )
        return Pager(request, response, limit, cursor)

    return dependency


PagerDep = Annotated[Pager, Depends(pager())]
LegacyPagerDep = Annotated[Pager, Depends(pager(legacy_default=True))]


def wants_page(request: Request) -> bool:
    """Whether the client's `Accept` names the page media type (with a q above 0)."""
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() == PAGE_MEDIA_TYPE:
            q = next((p[2:] for p in params if p.lower().startswith("q=")), "1")
            try:
                return float(q) > 0
            except ValueError:
                return True
    return False


def negotiated(pager: Pager, page: Page[Any], adapter: TypeAdapter[Any]) -> Response:
    """A legacy list's answer. The legacy REST spec answers these lists as a bare JSON array, and
    old scripts iterate over the answer: a request that does not ask for more gets the page's items
    as that array (`application/json`); one whose `Accept` names `PAGE_MEDIA_TYPE` gets the page
    itself. Both are the same keyset page (`cursor`, `limit`, the `Link` header), so an old client
    that follows `Link` can page too; `Vary: Accept` keeps caches apart."""
    headers = {k: v for k, v in pager.response.headers.items() if k.lower() == "link"}
    headers["Vary"] = "Accept"
    if wants_page(pager.request):
        return Response(page.model_dump_json(), media_type=PAGE_MEDIA_TYPE, headers=headers)
    return Response(adapter.dump_json(page.items), media_type="application/json", headers=headers)


def legacy_page(page_model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a legacy list: the page model its negotiated page answer has
    (`api/openapi.py` adds it to the 200 response under `PAGE_MEDIA_TYPE`)."""
    schema = page_model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {PAGE_MODEL_KEY: {"name": page_model.__name__, "schema": schema}}


def removed(name: str) -> Any:
    """A query parameter lists used to take (`offset`, `before`): refused with a 422 that says to
    page by cursor, where ignoring it would answer the first page again and again."""
    # Built here, not in the signature: the module's postponed annotations cannot see `name`.
    parameter = Annotated[
        str | None,
        Query(
            alias=name,
            deprecated=True,
            max_length=100,
            description="removed: lists page by `cursor`; a request with it is refused (422)",
        ),
    ]

    def check(value: parameter = None) -> None:
        if value is not None:
            raise Unprocessable(
                f"{name} was removed: pass the previous answer's next_cursor (or follow its Link "
                "header) as cursor",
                loc=("query", name),
                error_type="parameter_removed",
            )

    check.__annotations__["value"] = parameter
    return Annotated[None, Depends(check)]


RemovedOffset = removed("offset")
RemovedBefore = removed("before")
