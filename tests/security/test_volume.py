"""No volume limits (issue 14), REST part: a 50 MB body was read whole before a 422, and 5 MB of
server metadata was stored. A body past FLEETPULSE_API_MAX_BODY_BYTES is refused with 413 while it
streams (a declared length at once, a chunked body as soon as it passes the limit), and metadata
past FLEETPULSE_API_METADATA_MAX_BYTES with 422."""

from __future__ import annotations

import asyncio

import pytest

from tests.security.conftest import Stack, register

pytestmark = pytest.mark.timeout(120)

STACK_SETTINGS = {
    "FLEETPULSE_API_MAX_BODY_BYTES": str(64 * 1024),
    "FLEETPULSE_API_METADATA_MAX_BYTES": "4096",
}


async def test_a_declared_large_body_is_refused_before_it_is_sent(stack: Stack) -> None:
    host, port = stack.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n{"
        )
        await writer.drain()
        # Not one more byte of the 50 MB is sent: the answer comes anyway.
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), head
        assert b"content-type: application/problem+json" in head.lower(), head
    finally:
        writer.close()


async def test_a_streamed_large_body_is_refused_once_past_the_limit(stack: Stack) -> None:
    # Chunked, no length declared: 256 KiB sent, then the client waits, the body unfinished. The
    # server must answer from what it read (past the 64 KiB limit), not wait for the rest.
    host, port = stack.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 16384
        for _ in range(16):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), head
    finally:
        writer.close()


async def test_metadata_is_bounded(stack: Stack) -> None:
    async with stack.client() as http:
        owner = await register(http)
        big = {"blob": "x" * 5000}
        answer = await http.post(
            "/api/v1/servers", json={"name": "meta", "metadata": big}, headers=owner.headers
        )
        assert answer.status_code == 422, answer.text
        answer = await http.post(
            "/api/v1/servers", json={"name": "meta", "metadata": {"rack": "b4"}}, headers=owner.headers
        )
        assert answer.status_code == 201, answer.text
        server_id = answer.json()["id"]
        answer = await http.put(f"/api/v1/servers/{server_id}", json={"metadata": big}, headers=owner.headers)
        assert answer.status_code == 422, answer.text
