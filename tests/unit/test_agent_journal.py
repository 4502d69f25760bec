"""journald: `journalctl -o json -f` lines become entries (levels, times, units); a follower that
exits is started again after the last cursor, so nothing repeats. A fake journalctl script stands
in for the real one (the `journalctl` setting names the command)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from fleetpulse_agent.journal import JournalReader, journal_argv, parse_entry
from fleetpulse_agent.pacing import Backoff, TokenBucket
from fleetpulse_agent.wire import LogsFrame
from schemas.agent_wire import AGENT_FRAME


def line(message: object, priority: str = "6", cursor: str = "c1", unit: str = "nginx.service") -> bytes:
    entry = {
        "MESSAGE": message,
        "PRIORITY": priority,
        "__REALTIME_TIMESTAMP": "1767268800000000",  # 2026-01-01T12:00:00Z
        "_SYSTEMD_UNIT": unit,
        "__CURSOR": cursor,
    }
    return json.dumps(entry).encode() + b"\n"


def test_entries_are_parsed_with_level_time_and_unit() -> None:
    parsed = parse_entry(line("upstream timed out", "3"), 8192)
    assert parsed is not None
    entry, cursor = parsed
    assert entry.level == "ERROR" and entry.message == "upstream timed out" and cursor == "c1"
    assert entry.timestamp == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert entry.source == "journal:nginx.service"
    binary = parse_entry(line([104, 105, 255]), 8192)  # journald's form for non-UTF-8 messages
    assert binary is not None and binary[0].message == "hi\ufffd"
    assert parse_entry(b"not json\n", 8192) is None and parse_entry(line(""), 8192) is None
    # What the server accepts, levels mapped from syslog priorities.
    entries = [parse_entry(line("m", p), 8192)[0] for p in "01234567"]  # type: ignore[index]
    assert [e.level for e in entries] == ["CRITICAL"] * 3 + ["ERROR", "WARNING", "INFO", "INFO", "DEBUG"]
    AGENT_FRAME.validate_json(LogsFrame(entries=entries).with_seq(1).to_bytes())


def test_the_command_follows_the_named_units_from_now_or_after_a_cursor() -> None:
    assert journal_argv("journalctl", ["a.service", "b.service"], None) == [
        "journalctl", "--output=json", "--follow", "--no-pager", "--quiet", "--lines=0",
        "--unit", "a.service", "--unit", "b.service",
    ]  # fmt: skip
    assert "--after-cursor=c9" in journal_argv("journalctl", ["a"], "c9")


async def test_a_follower_that_exits_is_restarted_after_its_last_cursor(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "journalctl"
    # Prints two entries (cursor c1, c2) on its first run, one (c3) on later runs, then exits.
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "after = [a for a in sys.argv if a.startswith('--after-cursor=')]\n"
        "cursors = ['c3'] if after else ['c1', 'c2']\n"
        "for c in cursors:\n"
        "    print(json.dumps({'MESSAGE': 'line ' + c, 'PRIORITY': '4', '__CURSOR': c,"
        " '_SYSTEMD_UNIT': 'app.service'}), flush=True)\n"
    )
    fake.chmod(0o755)
    reader = JournalReader(
        ["app.service"], TokenBucket(1000, 1000), 8192, command=str(fake), backoff=Backoff(0.05, 0.1)
    )
    await reader.start()
    got: list[str] = []
    try:
        async with asyncio.timeout(20):
            while len(got) < 3:
                got += [e.message for e in reader.poll()]
                await asyncio.sleep(0.05)
    finally:
        await reader.close()
        await reader.close()  # twice is safe
    assert got[:3] == ["line c1", "line c2", "line c3"]
    runs = calls.read_text().splitlines()
    assert "--lines=0" in runs[0] and "--after-cursor=c2" in runs[1]


async def test_a_missing_journalctl_is_reported_not_fatal(tmp_path: Path) -> None:
    reader = JournalReader(["x.service"], TokenBucket(10, 10), 8192, command=str(tmp_path / "nope"))
    await reader.start()
    await asyncio.sleep(0.2)
    assert reader.poll() == [] and reader.starts == 0
    await reader.close()


async def test_lines_over_the_rate_limit_are_dropped_and_counted(tmp_path: Path) -> None:
    fake = tmp_path / "journalctl"
    fake.write_text(
        f"#!{sys.executable}\nimport json, time\n"
        "for i in range(50):\n    print(json.dumps({'MESSAGE': f'l{i}', '__CURSOR': str(i)}), flush=True)\n"
        "time.sleep(30)\n"
    )
    fake.chmod(0o755)
    reader = JournalReader(["a"], TokenBucket(0.001, 10), 8192, command=str(fake))
    await reader.start()
    try:
        async with asyncio.timeout(20):
            while reader.dropped < 40:
                await asyncio.sleep(0.05)
    finally:
        await reader.close()
    assert len(reader.poll()) == 10 and reader.dropped == 40
