"""`python -m api.openapi_dump`: the API's OpenAPI document as JSON on standard output, built
offline from the app factory (no server, database or Kafka: nothing opens before the lifespan).

`make client` pipes it into openapi-typescript to write the dashboard's API types
(`web/src/api/schema.d.ts`); `make lint` does the same with `--check` and fails when the
committed types are not what the current document gives.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any

from pydantic import SecretStr

from schemas.settings import CommonSettings

from .app import create_app
from .settings import ApiSettings


def document() -> dict[str, Any]:
    """The document `/openapi.json` serves. The secrets are throwaway ones: the document holds
    none, and a development secret would otherwise be written into the state folder."""
    common = CommonSettings(
        key_pepper=SecretStr(secrets.token_urlsafe(48)),
        jwt_secret=SecretStr(secrets.token_urlsafe(48)),
    )
    return create_app(ApiSettings(common=common)).openapi()


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(prog="python -m api.openapi_dump", description=__doc__).parse_args(argv)
    json.dump(document(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
