"""The chaos report: per fault, what was sampled, acknowledged, stored and delivered live, what
was lost or duplicated, and the time to recover; JSON for machines, Markdown for the note.

A sample belongs to the phase during which it was sampled. After the run every sample must be
stored exactly once (the agents keep what is not acknowledged, and sampling stops before the
count, so anything missing is a loss) and received by its server's socket: `lost` and
`live lost` must be 0. Duplicates are counted where they can happen:
- `dup stored`: rows of one sample beyond the first (the natural key forbids them: must be 0);
- `kafka copies`: records of one sample beyond the first in the metrics topic: an agent resends
  a frame whose ack it never got, which is at-least-once delivery into Kafka, by design;
- `dup live`: frames of one sample on one socket beyond the first. Those explained by Kafka
  copies (each copy is a record of its own, with its own position) are counted and shown;
  those that are not (`dup live, socket`: the same record twice, a resume that went back) fail.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .ledger import AgentLedger, SocketLedger
from .run import Run
from .services import ROOT

SCHEMA = "fleetpulse.chaos/1"


@dataclass
class Row:
    phase: str
    detail: str = ""
    sent: int = 0
    acked: int = 0
    stored: int = 0
    lost: int = 0  # sampled, never stored
    acked_not_stored: int = 0  # the hard guarantee: acknowledged means stored
    dup_stored: int = 0
    kafka_copies: int = 0
    live_expected: int = 0
    live_delivered: int = 0
    live_lost: int = 0
    dup_live_kafka: int = 0
    dup_live_socket: int = 0
    recovered_s: float | None = None
    repaired_s: float | None = None
    first_ack_s: float | None = None  # from the fault until every agent had a fresh sample acked

    def add(self, other: Row) -> None:
        for name in (
            "sent", "acked", "stored", "lost", "acked_not_stored", "dup_stored", "kafka_copies",
            "live_expected", "live_delivered", "live_lost", "dup_live_kafka", "dup_live_socket",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Report:
    schema: str
    mode: str
    ok: bool
    failures: list[str]
    rows: list[Row]
    total: Row
    agents: list[dict[str, Any]]
    sockets: list[dict[str, Any]]
    config: dict[str, Any]
    events: list[str]
    environment: dict[str, Any] = field(default_factory=dict)


def _window(run: Run, index: int) -> tuple[float, float]:
    start = run.phases[index].started
    end = run.phases[index + 1].started if index + 1 < len(run.phases) else float("inf")
    return start, end


def _first_fresh_ack(ledgers: list[AgentLedger], since: float) -> float | None:
    worst = 0.0
    for a in ledgers:
        n = a.sampled_before(since) + 1  # the first sample taken at or after `since`
        times = [t for m, t in a.acked.items() if m >= n]
        if not times:
            return None
        worst = max(worst, min(times) - since)
    return worst


def build(run: Run) -> Report:
    sockets_of: dict[str, list[SocketLedger]] = {}
    for s in run.sockets:
        sockets_of.setdefault(s.agent.name, []).append(s)
    rows: list[Row] = []
    for index, phase in enumerate(run.phases):
        lo, hi = _window(run, index)
        row = Row(phase.name, phase.detail, recovered_s=phase.recovered_s, repaired_s=phase.repaired_s)
        if phase.injected_at is not None:
            row.first_ack_s = _first_fresh_ack(run.ledgers, phase.injected_at)
        for a in run.ledgers:
            stored: Counter[int] = run.in_db.get(a.name, Counter())
            kafka: Counter[int] = run.kafka.get(a.name, Counter())
            numbers = [n for n in range(1, len(a.sampled_at) + 1) if lo <= a.sampled_at[n - 1] < hi]
            for n in numbers:
                row.sent += 1
                acked = n in a.acked
                row.acked += acked
                rows_of = stored.get(n, 0)
                row.stored += rows_of > 0
                row.lost += rows_of == 0
                row.acked_not_stored += acked and rows_of == 0
                row.dup_stored += max(0, rows_of - 1)
                copies = kafka.get(n, 0)
                row.kafka_copies += max(0, copies - 1)
                for s in sockets_of.get(a.name, []):
                    got = s.received.get(n, 0)
                    if rows_of:
                        row.live_expected += 1
                        row.live_delivered += got > 0
                        row.live_lost += got == 0
                    extra = max(0, got - 1)
                    explained = min(extra, max(0, copies - 1))
                    row.dup_live_kafka += explained
                    row.dup_live_socket += extra - explained
        rows.append(row)
    total = Row("total", "")
    for row in rows:
        total.add(row)

    failures: list[str] = []
    if total.lost:
        failures.append(
            f"{total.lost} sample(s) never stored ({total.acked_not_stored} of them acknowledged)"
        )
    if total.dup_stored:
        failures.append(f"{total.dup_stored} duplicate row(s) stored")
    if total.live_lost:
        failures.append(f"{total.live_lost} stored sample(s) never reached their socket")
    if total.dup_live_socket:
        failures.append(
            f"{total.dup_live_socket} duplicate frame(s) on sockets not explained by Kafka copies"
        )
    if not run.drained:
        failures.append("the spools did not drain (or the count did not catch up) within the timeout")
    for phase in run.phases:
        if phase.injected_at is not None and phase.recovered_s is None:
            failures.append(f"{phase.name}: not recovered within {run.config.recover_timeout:g} s")
    agents: list[dict[str, Any]] = []
    for a in run.ledgers:
        unknown_rows = run.in_db.get(a.name, Counter())[-1]
        unknown_records = run.kafka.get(a.name, Counter())[-1]
        if unknown_rows or unknown_records:
            failures.append(f"{a.name}: {unknown_rows} row(s), {unknown_records} record(s) of no sample")
        if a.stopped:
            failures.append(f"{a.name} stopped: {a.stopped}")
        if a.dropped or a.rejected:
            failures.append(f"{a.name}: {a.dropped} dropped by its spool, {a.rejected} refused by ingest")
        agents.append(
            {
                "name": a.name,
                "dialect": a.dialect,
                "server_id": str(a.server_id),
                "sampled": len(a.sampled_at),
                "acked": len(a.acked),
                "acks": a.acks,
                "connects": a.connects,
                "dropped": a.dropped,
                "rejected": a.rejected,
                "stopped": a.stopped,
            }
        )
    sockets: list[dict[str, Any]] = []
    for s in run.sockets:
        dup_positions = sum(c - 1 for c in s.positions.values() if c > 1)
        if dup_positions:
            failures.append(f"{s.name}: {dup_positions} frame(s) of a position it had already received")
        if s.unknown:
            failures.append(f"{s.name}: {s.unknown} frame(s) of no sample")
        if s.coalesced:
            failures.append(f"{s.name}: the server skipped {s.coalesced} frame(s) (slow consumer)")
        sockets.append(
            {
                "name": s.name,
                "connects": s.connects,
                "resumes": s.resumes,
                "frames": sum(s.received.values()),
                "distinct": len(s.received),
                "duplicate_positions": dup_positions,
                "history_lost": s.history_lost,
                "coalesced": s.coalesced,
                "closes": dict(s.closes),
            }
        )
    config = asdict(run.config)
    config["faults"] = list(run.config.faults)
    return Report(
        SCHEMA, run.config.mode, not failures, failures, rows, total, agents, sockets, config, run.events
    )


def environment(run: Run) -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603, S607
            return out.stdout.strip()
        except OSError:
            return ""

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "finished_at": datetime.now(UTC).isoformat(),
        "load_after": list(os.getloadavg()),
        "wall_seconds": round(run.wall_seconds, 1),
    }


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(report: Report) -> str:
    head = (
        "| fault | sent | acked | stored | live delivered / expected | lost | dup stored | kafka copies "
        "| dup live (kafka / socket) | first fresh ack s | recovered s | repair s |"
    )
    lines = [
        f"# Chaos run ({report.mode}): {'PASSED' if report.ok else 'FAILED'}",
        "",
        head,
        "|" + "---|" * 12,
    ]
    for r in [*report.rows, report.total]:
        name = f"**{r.phase}**" if r.phase == "total" else r.phase
        cells = [
            name, r.sent, r.acked, r.stored, f"{r.live_delivered} / {r.live_expected}", r.lost, r.dup_stored,
            r.kafka_copies, f"{r.dup_live_kafka} / {r.dup_live_socket}", _s(r.first_ack_s), _s(r.recovered_s),
            _s(r.repaired_s),
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "What each fault was:", ""]
    lines += [f"- `{r.phase}`: {r.detail}" for r in report.rows if r.detail]
    slack = report.config.get("slack")
    lines += [
        "",
        "`recovered s`: from the fault (for the cut: the agent's return) until the system was whole for "
        f"good: from then on, at every poll (2 a second), every sample older than {slack} s was acked, "
        "stored and received by its socket (0: no sample was ever later than that). `repair s`: the "
        "restart of what was killed or restarted. "
        "`first fresh ack s`: until every agent had a sample taken after the fault acknowledged. "
        "`kafka copies`: records of a sample beyond the first (a resend whose ack was lost: at-least-once "
        "into Kafka, stored once). `dup live (kafka)`: those copies as a socket received them; "
        "`dup live (socket)` would be the same record twice.",
        "",
    ]
    if report.failures:
        lines += ["Failures:", ""] + [f"- {f}" for f in report.failures] + [""]
    env = report.environment
    lines.append(
        f"{len(report.agents)} agents ({sum(a['dialect'] == 'legacy' for a in report.agents)} legacy), "
        f"{len(report.sockets)} sockets, {env.get('wall_seconds')} s wall, {env.get('cores')} cores, "
        f"load after {env.get('load_after')}, commit {str(env.get('commit'))[:12]}"
        + (" (dirty)." if env.get("dirty") else ".")
    )
    return "\n".join(lines) + "\n"


def write(report: Report, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "chaos-report.json", out_dir / "chaos-report.md"
    json_path.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
