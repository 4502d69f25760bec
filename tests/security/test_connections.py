"""Bounded memory (issue 14), the sockets part: a client could open sockets and send nothing, or
dribble a request head a byte at a time, and each held memory until the process ran out (10,000
idle sockets). Per process at most FLEETPULSE_API_MAX_CONNECTIONS connections, at most
_MAX_CONNECTIONS_PER_ADDRESS from one address (past either, a new one is closed before anything is
read), and a request head must be complete within _REQUEST_HEAD_TIMEOUT seconds.

(A browser socket that never reads is bounded by its outbox: tests/integration/test_live_fanout.py
closes a stalled logs socket with 4008 and coalesces a stalled metrics socket.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.security.conftest import Stack

pytestmark = pytest.mark.timeout(180)

PER_ADDRESS, TOTAL, HEAD_TIMEOUT = 20, 50, 8
STACK_SETTINGS = {
    "FLEETPULSE_API_MAX_CONNECTIONS": str(TOTAL),
    "FLEETPULSE_API_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
    "FLEETPULSE_API_REQUEST_HEAD_TIMEOUT": str(HEAD_TIMEOUT),
}

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _port(stack: Stack) -> int:
    return int(stack.url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def idle(stack: Stack, address: str, count: int) -> AsyncIterator[list[Conn]]:
    """`count` connections from `address` that send nothing."""
    conns = [
        await asyncio.open_connection("127.0.0.1", _port(stack), local_addr=(address, 0))
        for _ in range(count)
    ]
    try:
        await asyncio.sleep(0.5)  # let the server accept (and count) every one
        yield conns
    finally:
        for _, writer in conns:
            writer.close()


async def closed_by_server(conn: Conn, within: float) -> bool:
    """True when the server closes `conn` (EOF or reset) within `within` seconds, having sent
    nothing."""
    reader, _ = conn
    try:
        async with asyncio.timeout(within):
            return await reader.read(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def health(stack: Stack, address: str) -> int:
    async with stack.client(address) as http:
        return (await http.get("/health")).status_code


async def test_idle_sockets_from_one_address_are_capped_and_time_out(stack: Stack) -> None:
    async with idle(stack, "127.0.0.41", PER_ADDRESS) as held:
        # One more from the same address: closed at once, before anything is read.
        async with idle(stack, "127.0.0.41", 1) as [extra]:
            assert await closed_by_server(extra, within=10)
        # Another address is served meanwhile.
        assert await health(stack, "127.0.0.42") == 200
        # None of the held ones sent a request head: each is closed after the deadline.
        results = await asyncio.gather(*(closed_by_server(c, within=HEAD_TIMEOUT + 30) for c in held))
        assert all(results), results
    # Their counts were released: the address is served again.
    assert await health(stack, "127.0.0.41") == 200


async def test_a_request_head_dribbled_byte_by_byte_is_cut_off(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(stack), local_addr=("127.0.0.43", 0))
    try:
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200
        closed = False
        for byte in head:  # one byte every 0.1 s: over 20 s for the head, far past the deadline
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            if reader.at_eof():
                closed = True
                break
            await asyncio.sleep(0.1)
        if not closed:
            closed = await closed_by_server((reader, writer), within=10)
        assert closed, "a request head that never completes held its connection"
    finally:
        writer.close()


async def test_the_process_wide_cap_holds_across_addresses(stack: Stack) -> None:
    async with (
        idle(stack, "127.0.0.51", PER_ADDRESS),
        idle(stack, "127.0.0.52", PER_ADDRESS),
        idle(stack, "127.0.0.53", TOTAL - 2 * PER_ADDRESS),
        idle(stack, "127.0.0.54", 1) as [extra],
    ):
        assert await closed_by_server(extra, within=10)
