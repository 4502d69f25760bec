import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from schemas import tokens

SECRET = "s" * 64


def test_round_trip() -> None:
    user = uuid.uuid4()
    token, claims = tokens.encode(SECRET, user, "access", timedelta(minutes=5))
    decoded = tokens.decode(SECRET, token, "access")
    assert decoded == claims and decoded.subject == user


def test_refresh_token_is_not_an_access_token() -> None:
    token, _ = tokens.encode(SECRET, uuid.uuid4(), "refresh", timedelta(days=1), family_id=uuid.uuid4())
    with pytest.raises(tokens.TokenError, match="not an access token"):
        tokens.decode(SECRET, token, "access")


def test_expired_token_says_so() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    token, _ = tokens.encode(SECRET, uuid.uuid4(), "access", timedelta(minutes=5), now=past)
    with pytest.raises(tokens.TokenError) as info:
        tokens.decode(SECRET, token, "access")
    assert info.value.expired


def test_algorithm_is_pinned_against_none_and_other_keys() -> None:
    claims = {
        "sub": str(uuid.uuid4()),
        "typ": "access",
        "jti": str(uuid.uuid4()),
        "iat": 0,
        "exp": 2**31,
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
    }
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, unsigned, "access")
    other = jwt.encode(claims, SECRET, algorithm="HS512")
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, other, "access")
    forged = jwt.encode(claims, "x" * 64, algorithm="HS256")
    with pytest.raises(tokens.TokenError):
        tokens.decode(SECRET, forged, "access")
