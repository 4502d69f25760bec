"""Log tailing: new lines only, rotation (rename and copytruncate), rate limit with counted drops."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from fleetpulse_agent.logtail import LogTailer, guess_level
from fleetpulse_agent.pacing import TokenBucket


def tailer(*paths: Path, rate: float = 1000, burst: int = 1000) -> LogTailer:
    return LogTailer(list(paths), TokenBucket(rate, burst), max_line_bytes=200)


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_starts_at_the_end_and_reads_complete_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("old line\n")
    t = tailer(log)
    assert t.poll() == []
    append(log, "ERROR disk failing\nhalf a li")
    entries = t.poll()
    assert [(e.level, e.message) for e in entries] == [("ERROR", "ERROR disk failing")]
    assert entries[0].source == str(log)
    append(log, "ne\n")
    assert [e.message for e in t.poll()] == ["half a line"]
    t.close()


def test_rotation_by_rename_reads_the_rest_of_the_old_file_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    t = tailer(log)
    append(log, "one\n")
    assert [e.message for e in t.poll()] == ["one"]
    append(log, "two\n")  # written before rotation, not yet read
    os.rename(log, tmp_path / "app.log.1")
    log.write_text("three\n")
    assert [e.message for e in t.poll()] == ["two", "three"]
    append(log, "four\n")
    assert [e.message for e in t.poll()] == ["four"]
    t.close()


def test_copytruncate_is_noticed(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    t = tailer(log)
    append(log, "a fairly long first line\n")
    assert len(t.poll()) == 1
    log.write_text("new\n")  # truncated and rewritten, shorter than before
    assert [e.message for e in t.poll()] == ["new"]
    t.close()


def test_a_file_created_later_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    t = tailer(log)
    assert t.poll() == []
    log.write_text("hello\n")
    assert [e.message for e in t.poll()] == ["hello"]
    t.close()


def test_rate_limit_drops_counts_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "noisy.log"
    log.write_text("")
    t = tailer(log, rate=0.001, burst=10)
    append(log, "".join(f"line {i}\n" for i in range(50)))
    with caplog.at_level(logging.WARNING, logger="agent.logtail"):
        entries = t.poll()
    assert len(entries) == 10
    assert t.dropped == 40
    assert "dropped 40 line(s)" in caplog.text
    t.close()


def test_long_lines_are_cut() -> None:
    assert guess_level("2026-01-01 WARN something") == "WARN"
    assert guess_level("plain") == "INFO"


def test_a_line_longer_than_the_limit_is_cut_not_held(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("")
    t = tailer(log)
    append(log, "x" * 1000)  # no newline, longer than max_line_bytes (200)
    entries = t.poll()
    assert len(entries) == 1 and len(entries[0].message) == 200
    t.close()


def test_a_nul_byte_in_a_line_is_replaced_so_the_line_can_be_stored(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    tailer = LogTailer([log], TokenBucket(100, 100), 8192)
    with log.open("ab") as f:
        f.write(b"binary\x00junk ERROR here\n")
    (entry,) = tailer.poll()
    assert entry.message == "binary\ufffdjunk ERROR here" and entry.level == "ERROR"
    tailer.close()
