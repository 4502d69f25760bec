"""Access and refresh tokens: JWTs signed with HS256, the algorithm pinned on both sides.

The API issues them; the API's REST routes and its frontend sockets verify them. A token's header
never chooses the algorithm: `decode` accepts HS256 only, and requires `exp`, `iat`, `sub`, `aud`,
`iss` and `typ` (access or refresh), so a refresh token is never accepted as an access token.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

ALGORITHM = "HS256"
ISSUER = "fleetpulse"
AUDIENCE = "fleetpulse-api"
TokenType = Literal["access", "refresh"]


class TokenError(Exception):
    """A token is malformed, expired, of the wrong type or not signed by us."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: uuid.UUID  # the user id
    token_type: TokenType
    token_id: uuid.UUID  # jti: refresh tokens are tracked (rotation, reuse detection) by it
    family_id: uuid.UUID | None  # refresh tokens: the family a reused token revokes
    issued_at: datetime
    expires_at: datetime


def encode(
    secret: str,
    subject: uuid.UUID,
    token_type: TokenType,
    lifetime: timedelta,
    *,
    family_id: uuid.UUID | None = None,
    token_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> tuple[str, TokenClaims]:
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    claims = TokenClaims(
        subject=subject,
        token_type=token_type,
        token_id=token_id or uuid.uuid4(),
        family_id=family_id,
        issued_at=issued,
        expires_at=issued + lifetime,
    )
    payload: dict[str, object] = {
        "sub": str(subject),
        "typ": token_type,
        "jti": str(claims.token_id),
        "iat": int(issued.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    if family_id is not None:
        payload["fam"] = str(family_id)
    return jwt.encode(payload, secret, algorithm=ALGORITHM), claims


def decode(secret: str, token: str, expected_type: TokenType, *, leeway: float = 0) -> TokenClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # pinned: the header's "alg" is never trusted
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=leeway,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "typ", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token expired", expired=True) from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    if payload.get("typ") != expected_type:
        raise TokenError(f"not an {expected_type} token")
    try:
        return TokenClaims(
            subject=uuid.UUID(payload["sub"]),
            token_type=expected_type,
            token_id=uuid.UUID(payload["jti"]),
            family_id=uuid.UUID(payload["fam"]) if "fam" in payload else None,
            issued_at=datetime.fromtimestamp(payload["iat"], UTC),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise TokenError(f"invalid token claims: {exc}") from exc
