"""The one-line agent install: `GET /install.sh` and the wheels it installs from (`/agent/wheels/`).

Unauthenticated on purpose (a new server has nothing but its key, and the key is checked by
ingest when the agent connects): they serve only the public installer and the public agent and
dependency wheels, never anything of an account. The wheel folder is the setting
`agent_wheelhouse` (built by `fleetpulse-ops wheelhouse`); a file is served only if it is one of
that folder's `*.whl`, by its exact name. The listing carries each wheel's sha256, which pip
checks on download.
"""

from __future__ import annotations

import hashlib
import html
import re
import shlex
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse

from ..deps import SettingsDep
from ..errors import NotFound
from ..install import agent_socket_url
from ..openapi import problems
from ..settings import ApiSettings

router = APIRouter(tags=["agent install"])
SCRIPT = Path(__file__).resolve().parent.parent / "agent_install.sh"
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.+-]+\.whl$")


def public_url(settings: ApiSettings, request: Request) -> str:
    """This API as the monitored servers reach it: the setting, else the request's own base URL."""
    return settings.public_url or str(request.base_url).rstrip("/")


def render_script(public: str, agent_url: str) -> str:
    text = SCRIPT.read_text().replace("@@PUBLIC_URL@@", shlex.quote(public))
    return text.replace("@@AGENT_URL@@", shlex.quote(agent_url))


@router.get("/install.sh", response_class=PlainTextResponse)
async def install_script(request: Request, settings: SettingsDep) -> PlainTextResponse:
    """The agent's installer, with this FleetPulse's URLs in it (docs/agent-install.md)."""
    public = public_url(settings, request)
    script = render_script(public, agent_socket_url(public, settings.agent_public_url))
    return PlainTextResponse(script, media_type="text/x-shellscript")


@lru_cache(maxsize=256)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _wheels(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and _WHEEL_NAME.match(p.name))
    except OSError:
        return []


@router.get("/agent/wheels/", response_class=HTMLResponse, openapi_extra=problems("not-found"))
async def wheel_index(settings: SettingsDep) -> HTMLResponse:
    """A find-links page: one link per wheel, with its sha256."""
    wheels = _wheels(settings.wheelhouse)
    if not wheels:
        raise NotFound("no agent wheels here: build them with `fleetpulse-ops wheelhouse`")
    links = []
    for wheel in wheels:
        st = wheel.stat()
        name = html.escape(wheel.name)
        links.append(f'<a href="{name}#sha256={_sha256(wheel, st.st_mtime_ns, st.st_size)}">{name}</a><br>')
    body = "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"
    return HTMLResponse(body)


@router.get("/agent/wheels/{name}")
async def wheel_file(name: str, settings: SettingsDep) -> FileResponse:
    for wheel in _wheels(settings.wheelhouse):
        if wheel.name == name:
            return FileResponse(wheel, media_type="application/octet-stream", filename=name)
    raise NotFound(f"no wheel {name!r}")
