"""report.md and its PNG figures from results.json: the summary table (every scenario's rows with
its same-run limit and ratio, and the command that measured it), then a section per scenario with
its figure. Each figure carries, in the image itself, what it ran on (machine.caption).

    python -m bench.suite.report bench/results/<run>    # again, from its results.json
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import machine


def write(out: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    figures: list[str] = []
    sections: list[str] = []
    for name, entry in results["scenarios"].items():
        sections.append(f"## {name}\n")
        if entry["status"] != "ok":
            sections.append(f"FAILED: `{entry.get('error')}`\n")
            continue
        result = entry["result"]
        caption = machine.caption(results["machine"], entry["load_before"], entry["load_after"])
        draw = DRAWINGS.get(name)
        if draw is not None:
            file = f"{name}.png"
            draw(result, caption, out / file)
            figures.append(file)
            sections.append(f"![{name}]({file})\n")
        sections.append(f"{caption}; {entry['seconds']:.0f} s.\n")
        sections.append(table(result["summary"]) + "\n")
        if name == "capacity":
            sections.append(capacity_details(result))
        naive = result.get("naive")
        if isinstance(naive, dict) and "error" in naive:
            sections.append(
                f"The naive design did not run (`{naive['command']}`): `{naive['error'][-300:]}`\n"
            )
    results["figures"] = figures
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    m = results["machine"]
    smoke = " (smoke: tiny sizes, the figures mean nothing)" if results["smoke"] else ""
    head = [
        f"# FleetPulse benchmark{smoke}\n",
        f"Started {results['started']}, wall time {results.get('wall_seconds', 0) / 60:.1f} min, "
        f"services: {results['services']}. {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}, Kafka {m['kafka']}, PostgreSQL {m['postgres']}, "
        f"TimescaleDB {m['timescaledb']}, commit {m['commit']}. Load average {m['load_before']} before, "
        f"{m.get('load_after')} after: the machine is shared, read the ratios (figure and limit "
        "measured in the same run) before the absolute figures.\n",
        "## Summary\n",
        summary_table(results) + "\n",
    ]
    (out / "report.md").write_text("\n".join(head + sections))


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"


def table(rows: list[dict[str, Any]], with_command: bool = False) -> str:
    lines = [
        "| measured | value | same-run limit | ratio |" + (" command |" if with_command else ""),
        "|---|---|---|---|" + ("---|" if with_command else ""),
    ]
    for r in rows:
        limit = f"{_fmt(r['limit'])} {r['unit']} ({r['limit_what']})" if r["limit"] is not None else "-"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        line = f"| {r['what']} | {_fmt(r['value'])} {r['unit']} | {limit} | {ratio} |"
        if with_command:
            line += f" `{r.get('command') or '(bench.suite)'}` |"
        lines.append(line)
    return "\n".join(lines)


def summary_table(results: dict[str, Any]) -> str:
    rows = [r for e in results["scenarios"].values() if e["status"] == "ok" for r in e["result"]["summary"]]
    failed = [n for n, e in results["scenarios"].items() if e["status"] != "ok"]
    text = table(rows, with_command=True)
    if failed:
        text += f"\n\nFailed scenarios: {', '.join(failed)} (their sections say why)."
    return text


# --- the figures ---------------------------------------------------------------------------------


def _save(fig: Any, caption: str, path: Path) -> None:
    fig.text(0.01, 0.01, caption, fontsize=6, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _bars(rows: list[dict[str, Any]], title: str, caption: str, path: Path, log: bool = False) -> None:
    """Each summary row as a bar next to its same-run limit."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    labels = [r["what"].split(", ", 1)[-1][:48] for r in rows]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["value"] for r in rows], width=0.4, label="measured")
    ax.bar([x + 0.2 for x in xs], [r["limit"] or 0 for r in rows], width=0.4, label="same-run limit")
    for x, r in zip(xs, rows, strict=True):
        if r["ratio"] is not None:
            ax.annotate(f"{r['ratio']:.2f}", (x - 0.2, r["value"]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), labels, rotation=15, ha="right", fontsize=7)
    ax.set_ylabel(rows[0]["unit"] if rows else "")
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, caption, path)


def draw_stage(title: str, log: bool = False) -> Callable[[dict[str, Any], str, Path], None]:
    def draw(result: dict[str, Any], caption: str, path: Path) -> None:
        rows = [r for r in result["summary"] if r["limit"] is not None]
        _bars(rows or result["summary"], title, caption, path, log)

    return draw


def draw_end_to_end(result: dict[str, Any], caption: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    phases = [(k, v) for k, v in result["phases"].items() if k != "max"]
    xs = [v["acked_per_s"] for _, v in phases]
    for q, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        ax.plot(xs, [(v["live"][q] or 0) * 1000 for _, v in phases], style, label=f"live {q}")
    ax.plot(xs, [(v["ack"]["p99"] or 0) * 1000 for _, v in phases], "x--", label="ack p99")
    for (k, _), x in zip(phases, xs, strict=True):
        ax.annotate(k, (x, 0), fontsize=8, ha="center", va="bottom")
    ax.set_xlabel(f"acked frames/s (max {result['phases']['max']['acked_per_s']:,.0f})")
    ax.set_ylabel("ms, agent send to browser receive")
    ax.set_title("End to end latency at 25 / 50 / 75 % of the measured maximum")
    ax.legend(fontsize=8)
    _save(fig, caption, path)


def draw_fanout(result: dict[str, Any], caption: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.5))
    sizes = sorted(int(k) for k in result["by_sockets"])
    r = [result["by_sockets"][str(n)] for n in sizes]
    a.plot(sizes, [x["deliveries_per_s"] for x in r], "o-", label="FleetPulse hub")
    a.plot(sizes, [x["raw_deliveries_per_s"] for x in r], "s--", label="bare broadcast (limit)")
    naive = None if "error" in result["naive"] else result["naive"]
    if naive is not None:
        a.plot([naive["sockets"]], [naive["deliveries_per_s"]], "r^", label="consumer per socket")
    a.set_xlabel("sockets")
    a.set_ylabel("deliveries/s")
    a.set_yscale("log")
    a.legend(fontsize=8)
    # None (growth below the RSS resolution) is drawn as a gap.
    kb = [math.nan if x["kb_per_socket"] is None else x["kb_per_socket"] for x in r]
    b.plot(sizes, kb, "o-", label="FleetPulse hub")
    if naive is not None and naive["kb_per_socket"] is not None:
        b.plot([naive["sockets"]], [naive["kb_per_socket"]], "r^", label="consumer per socket")
    b.set_xlabel("sockets")
    b.set_ylabel("KB per socket")
    b.legend(fontsize=8)
    fig.suptitle("Fanout over the live sockets")
    _save(fig, caption, path)


def draw_capacity(result: dict[str, Any], caption: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    for dialect, d in result["dialects"].items():
        n = [s["agents"] for s in d["steps"]]
        a.plot(n, [(s["ack_p99"] or 0) for s in d["steps"]], "o-", label=f"{dialect}: ack p99")
        a.plot(n, [(s["live_p99"] or 0) for s in d["steps"]], "s--", label=f"{dialect}: live p99")
        lag = [max(s["lag"].values(), default=0.0) for s in d["steps"]]
        b.plot(n, lag, "o-", label=f"{dialect}: worst consumer lag")
        for s in d["steps"]:
            if not s["held"]:
                a.annotate(
                    "not held: " + ", ".join(s["failed"]), (s["agents"], s["ack_p99"] or 0), fontsize=7
                )
    a.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    a.set_xlabel("agents at 5 s")
    a.set_ylabel("seconds")
    a.set_yscale("log")
    a.legend(fontsize=7)
    a.set_title("ack and live p99 (limit 1 s)")
    b.axhline(10.0, color="grey", linewidth=0.8, linestyle=":")
    b.set_xlabel("agents at 5 s")
    b.set_ylabel("seconds behind")
    b.legend(fontsize=7)
    b.set_title("persistence and alert lag (limit 10 s)")
    held = ", ".join(f"{k} {v['held']:,}" for k, v in result["dialects"].items())
    fig.suptitle(f"Capacity ramp: largest fleet held: {held}")
    _save(fig, caption, path)


DRAWINGS: dict[str, Callable[[dict[str, Any], str, Path], None]] = {
    "ingest": draw_stage("Ingest: acked frames/s vs the raw producer"),
    "persistence": draw_stage("Persistence: rows/s vs raw binary COPY"),
    "alerts": draw_stage("Alerts: samples/s vs their baselines", log=True),
    "end_to_end": draw_end_to_end,
    "fanout": draw_fanout,
    "backfill": draw_stage("Backfill: auth to last history frame vs plain SQL (ms)"),
    "capacity": draw_capacity,
}


def capacity_details(result: dict[str, Any]) -> str:
    """Per dialect: each step's figures, and the top costs of the stack's processes (py-spy) at
    the largest size held and at the first one not held."""
    out = []
    for dialect, d in result["dialects"].items():
        out.append(f"### {dialect} dialect: {d['held']:,} agents held\n")
        out.append(
            "| agents | ack p50 | ack p99 | live p99 | lag (s) | missing | failed connects "
            "| CPU % of a core | held |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for s in d["steps"]:
            cpu = ", ".join(f"{k} {v:.0f}" for k, v in s["cpu"].items() if v is not None)
            lag = ", ".join(f"{k} {v:.1f}" for k, v in s["lag"].items())
            held = "yes" if s["held"] else "no: " + ", ".join(s["failed"])
            acks = f"{_ms(s['ack_p50'])} | {_ms(s['ack_p99'])} | {_ms(s['live_p99'])}"
            out.append(
                f"| {s['agents']:,} | {acks} | {lag} | {s['missing']} | {s['failed_connects']} "
                f"| {cpu} | {held} |"
            )
        out.append("")
        held_steps = [s for s in d["steps"] if s["held"]]
        ends: list[tuple[str, dict[str, Any] | None]] = [
            ("largest held", held_steps[-1] if held_steps else None),
            ("first not held", _first_failed(d)),
        ]
        for label, at in ends:
            if at is None or not at.get("profile"):
                continue
            out.append(f"Top costs at {at['agents']:,} agents ({label}), py-spy, own time:\n")
            for proc, prof in at["profile"].items():
                if "error" in prof:
                    out.append(f"- {proc}: no profile ({prof['error'][:200]})")
                else:
                    tops = "; ".join(f"{t['function']} {t['share']:.0%}" for t in prof["top"])
                    out.append(f"- {proc} ({prof['samples']} samples): {tops}")
            out.append("")
    return "\n".join(out) + "\n"


def _first_failed(d: dict[str, Any]) -> dict[str, Any] | None:
    return next((s for s in d["steps"] if not s["held"]), None)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:,.0f} ms"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    write(out, json.loads((out / "results.json").read_text()))
    print(out / "report.md")


if __name__ == "__main__":
    main()
