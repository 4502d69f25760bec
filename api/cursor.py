"""Opaque keyset cursors for list endpoints: a (time, id) position, base64 text.

A page answers `next_cursor` (null at the end); passing it back as `cursor` continues strictly
after the last item of that page, whatever was inserted or deleted meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from .errors import Unprocessable


def encode(time: datetime, item_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{time.isoformat()}|{item_id}".encode()).decode()


def decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        time_text, _, id_text = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        time = datetime.fromisoformat(time_text)
        if time.tzinfo is None:
            raise ValueError("naive time")
        return time, uuid.UUID(id_text)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise Unprocessable("invalid cursor") from exc
