"""Bounded types: what FleetPulse can store and encode, defined once per concept.

The wire frames (`agent_wire.py`), the canonical payloads (`canonical.py`) and the REST models use
these, so a value that storage cannot hold is refused where it enters, with a validation error
naming the field, instead of failing later where nobody can answer for it (an `OverflowError` in
the database writer, a `TypeError` from the JSON encoder, an `OverflowError` converting a time).

- `Count`, 0 .. 2^63-1: counts, sizes, durations, `seq` (a `bigint` column; orjson encodes no
  integer past 2^64-1);
- `SmallCount`, 0 .. 2^31-1: cores (an `integer` column), a process id (32 bits);
- `Int4`, -2^31 .. 2^31-1: an exit code (`command_history.exit_code integer`);
- `Percent`, 0 .. 100 and `Measure`, >= 0, both finite: `double precision` holds NaN and
  infinities, but they are not measurements, JSON has no literal for them and orjson writes NaN
  as null (the value would change on its way to the database);
- `Gib`, 0 <= v < 2^33: legacy GiB, `round(v * 2^30)` bytes must fit a `bigint`;
- `text(n)` (`Name`, `Status`, `Line`, `Output`): at most n characters, no NUL (PostgreSQL text
  cannot hold it) and no lone surrogate (UTF-8 cannot encode it);
- `UtcDatetime`: aware and representable in UTC (`astimezone` overflows at year 1 with a
  positive offset, at year 9999 with a negative one); `AgentTime`: also within the ingest window
  (`TimeWindow`, settings of ingest).

Lists are bounded where they are declared (`Field(max_length=...)`), next to the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema

INT4_MIN: Final = -(2**31)
INT4_MAX: Final = 2**31 - 1
INT8_MAX: Final = 2**63 - 1
GIB: Final = 1024**3
# The first GiB value whose bytes do not fit a bigint: 2^63 / 2^30. Exclusive, because the float
# nearest below INT8_MAX / GIB rounds up to exactly 2^33.
GIB_LIMIT: Final = 2**33

Count = Annotated[int, Field(ge=0, le=INT8_MAX)]
"""A non-negative integer that fits a `bigint`: bytes, counters, seconds, milliseconds, seq."""

SmallCount = Annotated[int, Field(ge=0, le=INT4_MAX)]
"""A non-negative integer that fits an `integer`: cores, a process id."""

Int4 = Annotated[int, Field(ge=INT4_MIN, le=INT4_MAX)]
"""A signed 32-bit integer: an exit code."""

Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Measure = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""A non-negative, finite measurement."""

Finite = Annotated[float, Field(allow_inf_nan=False)]
"""Any finite float (a threshold, a value that may be negative)."""

Gib = Annotated[float, Field(ge=0, lt=GIB_LIMIT, allow_inf_nan=False)]
"""GiB as the legacy agent reports them; `gib_to_bytes` of one always fits a `bigint`."""


def gib_to_bytes(value: float) -> int:
    return round(value * GIB)


# --- text --------------------------------------------------------------------------------------

_NUL: Final = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """`value`, if PostgreSQL text and UTF-8 can hold it (no NUL, no lone surrogate)."""
    if _NUL.search(value) is not None:
        raise PydanticCustomError(
            "text_not_storable",
            "text must not contain NUL (\\u0000) or lone surrogate (\\ud800-\\udfff) characters",
        )
    return value


class _Storable:
    """Annotated marker for `str`: no NUL character and no lone surrogate, checked after the
    other constraints (so the JSON schema and the length errors stay pydantic's own)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(storable_text, handler(source))


STORABLE: Final = _Storable()


def text(max_length: int) -> Any:
    """A string of at most `max_length` characters that PostgreSQL and UTF-8 can hold."""
    return Annotated[str, Field(max_length=max_length), STORABLE]


# Lengths shared by the wire and the canonical payloads.
NAME: Final = 256  # mounts, interfaces, process and container names, users, sources, ids
STATUS: Final = 256  # states and statuses ("running", "Up 2 hours")
LINE: Final = 64 * 1024  # a log message, an error, one line of container logs
OUTPUT: Final = 1024 * 1024  # a command's output (a frame is smaller anyway: max_frame_bytes)

Name = Annotated[str, Field(max_length=NAME), STORABLE]
Status = Annotated[str, Field(max_length=STATUS), STORABLE]
Line = Annotated[str, Field(max_length=LINE), STORABLE]
Output = Annotated[str, Field(max_length=OUTPUT), STORABLE]


# --- times -------------------------------------------------------------------------------------


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # Year 1 with a positive offset, year 9999 with a negative one: not a time in UTC.
        raise ValueError("timestamp is out of range once converted to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
"""An aware datetime, normalised to UTC; a naive one, or one UTC cannot represent, is refused."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The agent timestamps ingest accepts: from `earliest` to `ahead` past the receiving clock.

    The bounds are settings of ingest (`FLEETPULSE_INGEST_TIMESTAMP_EARLIEST`,
    `..._TIMESTAMP_AHEAD_SECONDS`); decoding a frame with `context=window.context(now)` applies them
    to every `AgentTime` of the frame, with one reading of the clock per frame."""

    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    ahead: timedelta = timedelta(days=1)

    def context(self, now: datetime) -> dict[str, Any]:
        return {_WINDOW: (self.earliest, now + self.ahead)}


_WINDOW: Final = "fleetpulse.time_window"
DEFAULT_WINDOW: Final = TimeWindow()


def _in_window(value: datetime, info: ValidationInfo) -> datetime:
    bounds = (info.context or {}).get(_WINDOW)
    earliest, latest = bounds or DEFAULT_WINDOW.context(datetime.now(UTC))[_WINDOW]
    if value < earliest:
        raise PydanticCustomError(
            "timestamp_too_old",
            "timestamp must not be before {earliest}",
            {"earliest": earliest.isoformat()},
        )
    if value > latest:
        raise PydanticCustomError(
            "timestamp_in_future",
            "timestamp must not be after {latest} (the receiving clock plus the allowed skew)",
            {"latest": latest.isoformat()},
        )
    return value


AgentTime = Annotated[datetime, AfterValidator(_to_utc), AfterValidator(_in_window)]
"""A timestamp an agent reported: `UtcDatetime`, within the ingest window (`TimeWindow`)."""
