"""A TCP balancer in front of a deployable's replicas, as a load balancer in production is.

Each new connection goes to the next replica in turn; a replica that refuses the connection (it
is down) is skipped, so clients that reconnect land on a live one. `cut()` resets every open
connection and refuses new ones until `restore()`: for an agent's own listener, that is the
network cut between one server and FleetPulse.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable


class Balancer:
    def __init__(self, name: str, upstreams: Callable[[], list[int]], host: str = "127.0.0.1") -> None:
        self.name = name
        self.host = host
        self.port = 0
        self._upstreams = upstreams
        self._next = 0
        self._server: asyncio.Server | None = None
        self._pairs: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted: Counter[int] = Counter()  # upstream port -> connections sent to it
        self.open: Counter[int] = Counter()  # upstream port -> connections open now
        self.refused = 0  # connections no replica accepted

    async def start(self, port: int = 0) -> Balancer:
        self._server = await asyncio.start_server(
            self._accept, self.host, port or self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    @property
    def cut_off(self) -> bool:
        return self._server is None

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pairs):
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
        self._pairs.clear()

    async def restore(self) -> None:
        if self._server is None:
            await self.start(self.port)

    async def close(self) -> None:
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connect_upstream(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        ports = self._upstreams()
        # The turn is taken before the first await: connections accepted together spread too.
        first = self._next
        self._next += 1
        for i in range(len(ports)):
            port = ports[(first + i) % len(ports)]
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, port), 3)
            except (OSError, TimeoutError):
                continue
            return port, reader, writer
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            up = await self._connect_upstream()
            if up is None:
                self.refused += 1
                writer.transport.abort()
                return
            port, up_reader, up_writer = up
            self.accepted[port] += 1
            self.open[port] += 1
            self._pairs.update((writer, up_writer))
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                self.open[port] -= 1
                self._pairs.discard(writer)
                self._pairs.discard(up_writer)
        finally:
            if task is not None:
                self._tasks.discard(task)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError, ConnectionError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    # One side ended: end the other too (a killed replica's sockets look reset to the client).
    transport = dst.transport
    if isinstance(transport, asyncio.Transport):
        transport.abort()
