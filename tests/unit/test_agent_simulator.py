"""The fleet simulator: realistic, valid frames; many agents over real sockets that come and go."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from websockets.asyncio.server import Server, ServerConnection, serve

from fleetpulse_agent.simulator import Fleet, FleetConfig, Walk
from fleetpulse_agent.wire import LogsFrame
from schemas.agent_wire import AGENT_FRAME, AckFrame, AuthFrame, AuthSuccessFrame, SeedMetricsFrame


def test_a_walk_gives_valid_frames_with_bursts_and_growing_counters() -> None:
    walk = Walk.new(random.Random(7))
    frames = [walk.step(5.0) for _ in range(500)]
    for f in frames:
        again = AGENT_FRAME.validate_json(f.with_seq(1).to_bytes())
        assert isinstance(again, SeedMetricsFrame)
    cpus = [f.cpu_percent for f in frames]
    assert max(cpus) >= 85 and min(cpus) < 60  # bursts happen, and pass
    sent = [f.network[0].bytes_sent for f in frames]
    assert sent == sorted(sent)
    logs = [e for _ in range(100) for e in walk.logs()]
    assert logs and AGENT_FRAME.validate_json(LogsFrame(entries=logs[:50]).to_bytes())


async def test_agents_with_their_own_keys_come_and_go_and_replay() -> None:
    seqs: dict[str, list[int]] = defaultdict(list)
    connects: dict[str, int] = defaultdict(int)

    async def handler(ws: ServerConnection) -> None:
        auth = AGENT_FRAME.validate_json(await ws.recv())
        assert isinstance(auth, AuthFrame)
        connects[auth.api_key] += 1
        await ws.send(AuthSuccessFrame(server_id="00000000-0000-0000-0000-000000000001").to_bytes().decode())
        async for raw in ws:
            frame = AGENT_FRAME.validate_json(raw)
            seq = getattr(frame, "seq", None)
            if isinstance(frame, SeedMetricsFrame):
                seqs[auth.api_key].append(frame.seq or 0)
            if seq is not None:
                await ws.send(AckFrame(seq=seq).to_bytes().decode())

    server: Server = await serve(handler, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    keys = [f"fpk_sim_{i}" for i in range(5)]
    fleet = Fleet(
        FleetConfig(
            url=f"ws://127.0.0.1:{port}/api/v1/agents/ws",
            keys=keys,
            interval=0.1,
            churn_mean_seconds=0.5,
            away_seconds=(0.2, 0.4),
            startup_spread_seconds=0.2,
            seed=3,
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not (
            all(connects[k] >= 2 for k in keys)
            and all(len(seqs[k]) >= 10 for k in keys)
            and all(c.stats.replayed > 0 for c in fleet.connections)
        ):
            assert asyncio.get_running_loop().time() < deadline, (dict(connects), fleet.summary())
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        server.close()
        await server.wait_closed()
    assert set(seqs) == set(keys)  # one socket and one key per simulated agent
    for k in keys:
        assert min(seqs[k]) == 1  # each agent numbers its own frames
    # Every agent left at least once while sampling, and replayed what it spooled when it came back.
    assert all(c.stats.replayed > 0 for c in fleet.connections), [c.stats for c in fleet.connections]
    summary = fleet.summary()
    assert summary["agents"] == 5 and summary["acked"] > 0 and summary["replayed"] > 0
