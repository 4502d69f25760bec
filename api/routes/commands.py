"""Remote commands and Docker actions, and the command history.

A command passes, in order: the operator role (404 for strangers, 403 for viewers), the server's
switch (off until an owner turns it on), the length limit, the command grammar (`commandline.py`:
words only, nothing a shell would read as syntax; 422 otherwise), the allowlist (decided on the
parsed command's canonical text: one pattern must match it in full when the list is not empty),
the per-user rate limit, and a connected agent (503 at once otherwise). It is then recorded in the
history (who, what, when), published as its canonical text (which `sh -c` on a legacy agent reads
as the same argv), and awaited up to its timeout (504 then; the agent may still run it). Every
attempt, refused or not, container log reads included, leaves an audit row.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from schemas import topics
from schemas.canonical import METRIC_SAMPLE, CommandRequest, CommandResult

from ..commandline import CommandRejected, allowed_by, parse
from ..db import commands as commands_db
from ..db.pool import connection
from ..deps import CurrentUser, ResourcesDep, UserDep, require_role
from ..errors import AgentOffline, BadGateway, Forbidden, NotFound, Unavailable, Unprocessable
from ..live.routes import LIVE_KEY
from ..live.service import LiveService
from ..models import (
    CommandHistoryOut,
    CommandHistoryPage,
    CommandIn,
    CommandOut,
    ContainerOut,
    ContainersOut,
    DockerActionOut,
    DockerLogsOut,
)
from ..observe import audit_always
from ..openapi import problems
from ..pagination import Keyset, PagerDep, RemovedBefore
from ..state import Resources

router = APIRouter(tags=["commands"])

COMMANDS = Keyset("commands", (datetime, uuid.UUID))

ContainerId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


async def _send(
    request: Request,
    resources: Resources,
    user: CurrentUser,
    server_id: uuid.UUID,
    action: Literal["shell", "start", "stop", "restart", "logs"],
    *,
    command: str | None = None,
    container_id: str | None = None,
    tail: int | None = None,
    timeout_seconds: float | None = None,
) -> CommandResult:
    settings = resources.settings
    command_id = uuid.uuid4()
    audit_always(request.state)  # a container log read is a GET, and still a command to an agent
    request.state.audit_detail = {
        "command_id": str(command_id),
        "action": action,
        **({"command": command} if command is not None else {}),
        **({"container_id": container_id} if container_id is not None else {}),
    }
    await require_role(resources.pool, user, server_id, "operator")
    async with connection(resources.pool) as conn:
        config = await commands_db.command_settings(conn, server_id)
    assert config is not None  # require_role found the server
    if not config["commands_enabled"]:
        resources.metrics.commands.labels("refused").inc()
        raise Forbidden("remote commands are disabled for this server (an owner can enable them)")
    if command is not None:
        if len(command) > settings.command_max_length:
            raise Unprocessable(
                f"the command is longer than {settings.command_max_length} characters",
                loc=("body", "command"),
                error_type="string_too_long",
            )
        try:
            parsed = parse(command)
        except CommandRejected as exc:
            resources.metrics.commands.labels("refused").inc()
            raise Unprocessable(
                f"the command is outside the accepted grammar: {exc}",
                loc=("body", "command"),
                error_type="command_grammar",
            ) from exc
        if not allowed_by(list(config["command_allowlist"]), parsed):
            resources.metrics.commands.labels("refused").inc()
            raise Forbidden("the command is not in this server's allowlist")
        # Every agent is sent the canonical text: what the allowlist decided on, and what both a
        # shell-less agent (shlex) and a legacy agent (`sh -c`) read as the same argv.
        command = parsed.canonical
    resources.command_limiter.hit((user.id, server_id), "commands")
    wait = min(timeout_seconds or settings.command_timeout_seconds, settings.command_timeout_seconds)
    async with connection(resources.pool) as conn:
        if not await commands_db.agent_connected(conn, server_id, settings.agent_presence_stale_seconds):
            resources.metrics.commands.labels("offline").inc()
            raise AgentOffline("the server's agent is not connected")
        now = datetime.now(UTC)
        await commands_db.insert_command_request(
            conn,
            command_id=command_id,
            server_id=server_id,
            requested_by=user.id,
            action=action,
            command=command,
            container_id=container_id,
            requested_at=now,
        )
    message = CommandRequest(
        command_id=command_id,
        server_id=server_id,
        action=action,
        command=command,
        container_id=container_id,
        tail=tail,
        timeout_seconds=wait,
        requested_by=user.id,
        requested_at=now,
        deadline=now + timedelta(seconds=wait),
    )
    try:
        result = await resources.commands.request(message, wait_seconds=wait + 1.0)
    except Exception:
        resources.metrics.commands.labels("timeout_or_error").inc()
        raise
    resources.metrics.commands.labels("success" if result.success else "failed").inc()
    async with connection(resources.pool) as conn:
        await commands_db.record_command_result(
            conn,
            command_id=command_id,
            success=result.success,
            output=result.output,
            error=result.error,
            exit_code=result.exit_code,
            duration_ms=result.duration_ms,
            message=result.message,
            finished_at=result.finished_at,
        )
    return result


@router.post(
    "/commands/{server_id}",
    openapi_extra=problems("forbidden", "rate-limited", "agent-offline", "agent-timeout"),
)
async def run_command(
    server_id: uuid.UUID, body: CommandIn, request: Request, user: UserDep, resources: ResourcesDep
) -> CommandOut:
    """Run a shell command on the server's agent and return its output, exit code and duration."""
    result = await _send(
        request,
        resources,
        user,
        server_id,
        "shell",
        command=body.command,
        timeout_seconds=body.timeout_seconds,
    )
    return CommandOut(
        command_id=result.command_id,
        success=result.success,
        output=result.output,
        error=result.error,
        exit_code=result.exit_code,
        duration_ms=result.duration_ms,
    )


@router.get("/commands/{server_id}/history", openapi_extra=problems("forbidden"))
async def history(
    server_id: uuid.UUID,
    user: UserDep,
    resources: ResourcesDep,
    pager: PagerDep,
    _before: RemovedBefore,
) -> CommandHistoryPage:
    """Commands sent to the server, newest first: who sent what, when, and the result."""
    await require_role(resources.pool, user, server_id, "operator")
    async with connection(resources.pool) as conn:
        rows = await commands_db.command_history(conn, server_id, pager.after(COMMANDS), pager.fetch)
    page, next_cursor = pager.cut(COMMANDS, rows, lambda row: (row["requested_at"], row["command_id"]))
    return CommandHistoryPage(items=[CommandHistoryOut(**dict(row)) for row in page], next_cursor=next_cursor)


@router.get("/docker/{server_id}/containers")
async def list_containers(server_id: uuid.UUID, user: UserDep, resources: ResourcesDep) -> ContainersOut:
    """The server's containers as its agent last reported them (from the newest samples on the
    metrics topic, scanned back at most `containers_scan_messages`); 404 when none reported any
    (no Docker on the host, or no recent sample)."""
    await require_role(resources.pool, user, server_id, "viewer")
    live: LiveService | None = resources.extras.get(LIVE_KEY)
    if live is None:
        raise Unavailable("the metrics stream is not being read by this process")
    key = topics.server_key(server_id)
    tp = await live.partition_of(topics.METRICS.name(resources.settings.common.topic_prefix), key)
    first, stop = await live.reader.bounds(tp)
    floor = max(first, stop - resources.settings.containers_scan_messages)
    step = 500
    while stop > floor:
        start = max(floor, stop - step)
        for record in reversed(await live.reader.replay(tp, key, start, stop)):
            try:
                sample = METRIC_SAMPLE.validate_json(record.value or b"")
            except ValueError:
                continue
            if sample.containers is not None:
                return ContainersOut(
                    server_id=server_id,
                    time=sample.time,
                    containers=[ContainerOut(**c.model_dump()) for c in sample.containers],
                )
        stop = start
    raise NotFound("no container list reported recently (is Docker present on the server?)")


@router.post(
    "/docker/{server_id}/containers/{container_id}/{action}",
    openapi_extra=problems("forbidden", "rate-limited", "agent-offline", "agent-timeout"),
)
async def docker_action(
    server_id: uuid.UUID,
    container_id: ContainerId,
    action: Literal["start", "stop", "restart"],
    request: Request,
    user: UserDep,
    resources: ResourcesDep,
) -> DockerActionOut:
    result = await _send(request, resources, user, server_id, action, container_id=container_id)
    return DockerActionOut(
        command_id=result.command_id,
        status="success" if result.success else "error",
        message=result.message or result.error,
    )


@router.get(
    "/docker/{server_id}/containers/{container_id}/logs",
    openapi_extra=problems("forbidden", "rate-limited", "agent-offline", "agent-timeout", "agent-error"),
)
async def docker_logs(
    server_id: uuid.UUID,
    container_id: ContainerId,
    request: Request,
    user: UserDep,
    resources: ResourcesDep,
    tail: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> DockerLogsOut:
    result = await _send(request, resources, user, server_id, "logs", container_id=container_id, tail=tail)
    if not result.success:
        raise BadGateway(f"the agent could not read the logs: {result.error or result.message}")
    return DockerLogsOut(
        command_id=result.command_id, container_id=container_id, logs=list(result.logs or ())
    )
