"""The benchmark suite's own logic (bench/suite): what makes a result complete, how a capacity
step is judged held, how figures and profiles are read. No timing is asserted anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.suite import check, profile, stagebench
from bench.suite.browsers import join, percentiles
from bench.suite.scenarios import capacity


def _window(**over: Any) -> dict[str, Any]:
    w: dict[str, Any] = {
        "sent": 100,
        "acked": 100,
        "missing": 0,
        "refused": 0,
        "failed_connects": 0,
        "drops": 0,
        "ack_p50": 0.01,
        "ack_p95": 0.05,
        "ack_p99": 0.1,
        "live": {"p50": 0.1, "p95": 0.2, "p99": 0.3},
        "live_frames": 20,
        "lag": {"persistence": 0.5, "alerts": 1.0},
        "cpu": {"api": 40.0},
    }
    return {**w, **over}


def test_capacity_step_held_only_when_every_criterion_holds() -> None:
    assert capacity.summarize(100, [_window(), _window()], 0, 0)["held"]
    cases = {
        "ack p99": _window(ack_p99=1.0),
        "missing acks": _window(missing=1),
        "failed connects": _window(failed_connects=2),
        "persistence lag": _window(lag={"persistence": 10.0, "alerts": 0.0}),
        "live p99": _window(live={"p50": 0.1, "p95": 0.5, "p99": 1.2}),
    }
    for reason, w in cases.items():
        step = capacity.summarize(100, [w], 0, 0)
        assert not step["held"] and reason in step["failed"], (reason, step["failed"])
    # Missing acks and failed connects before the windows count too.
    assert capacity.summarize(100, [_window()], 1, 0)["failed"] == ["failed connects"]
    assert capacity.summarize(100, [_window()], 0, 3)["failed"] == ["missing acks"]
    # No live frame at all is not a pass.
    assert "live p99" in capacity.summarize(100, [_window(live=percentiles([]))], 0, 0)["failed"]


def test_live_latency_joins_sends_and_receives_by_server_and_sample_time() -> None:
    sends = [("a", 1000, 10.0), ("a", 6000, 15.0), ("b", 1000, 10.5)]
    received = [("a", 6000, 15.25), ("b", 1000, 10.75), ("c", 1000, 11.0)]
    assert sorted(join(sends, received)) == [0.25, 0.25]
    p = percentiles([float(x) for x in range(1, 101)])
    assert p["p50"] == 50.5 and p["p95"] == 96.0 and p["p99"] == 100.0


def test_summary_row_takes_the_benchmarks_same_run_ratio() -> None:
    run = stagebench.StageRun(
        ["python", "-m", "bench.persist_throughput"],
        "",
        {
            "figures": [
                {"name": "raw_copy", "unit": "rows/s", "median": 100.0, "limit": None, "ratio": None},
                {"name": "full_path", "unit": "rows/s", "median": 40.0, "limit": "raw_copy", "ratio": 0.5},
            ]
        },
    )
    r = stagebench.from_figure("persistence", run, "full_path", "raw COPY", 3)
    # The median of the per-run ratios, not the ratio of the medians (0.4).
    assert r["ratio"] == 0.5 and r["limit"] == 100.0 and r["value"] == 40.0 and r["runs"] == 3
    assert stagebench.row("x", 50.0, "ms", 25.0, "sql")["ratio"] == 2.0
    assert stagebench.row("x", 50.0, "ms", None, "")["ratio"] is None


def test_profile_top_costs_are_leaf_functions_by_own_samples() -> None:
    raw = "\n".join(
        [
            "main (app.py:1);handle (ws.py:10);encode (json.py:5) 30",
            "main (app.py:1);handle (ws.py:10) 10",
            "main (app.py:1);poll (loop.py:3);encode (json.py:7) 20",
            "garbage",
        ]
    )
    top = profile.top_costs(raw)
    assert top["samples"] == 60
    assert top["top"][0] == {"function": "encode (json.py)", "share": round(50 / 60, 3)}
    assert [t["function"] for t in top["top"]] == ["encode (json.py)", "handle (ws.py)"]


def _complete(folder: Path) -> None:
    row = stagebench.row("ingest, 1 agent", 10.0, "frames/s", 20.0, "raw")
    results = {
        "machine": {k: "x" for k in check.MACHINE},
        "scenarios": {"ingest": {"status": "ok", "result": {"summary": [row]}}},
        "figures": ["ingest.png"],
    }
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "ingest.png").write_bytes(check.PNG + b"rest")
    (folder / "report.md").write_text("## ingest\n![ingest](ingest.png)\n")


def test_check_accepts_a_complete_folder_and_names_what_is_missing(tmp_path: Path) -> None:
    _complete(tmp_path)
    assert check.problems(tmp_path, ["ingest"]) == []
    assert check.problems(tmp_path, ["ingest", "capacity"]) == [
        "capacity: did not run",
        "report.md has no section for capacity",
    ]
    (tmp_path / "ingest.png").write_bytes(b"not a png")
    assert check.problems(tmp_path, ["ingest"]) == ["figure ingest.png is missing or not a PNG"]
    _complete(tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    data["scenarios"]["ingest"] = {"status": "failed", "error": "boom"}
    (tmp_path / "results.json").write_text(json.dumps(data))
    assert check.problems(tmp_path, ["ingest"]) == ["ingest: failed: boom"]


def test_check_refuses_malformed_rows() -> None:
    good = stagebench.row("x", 1.0, "ms", 2.0, "sql")
    assert check.row_problems(good) == []
    assert check.row_problems({**good, "value": float("nan")}) == ["value nan"]
    assert check.row_problems({**good, "ratio": None}) == ["a limit (2.0) without a ratio"]
    assert check.row_problems({**good, "limit": None}) == ["a ratio without a limit"]
    assert check.row_problems({**good, "unit": ""}) == ["no unit"]


def test_alerts_rows_from_the_engines_json_result() -> None:
    from bench.suite.scenarios import alerts

    fig = {"unit": "samples/s", "higher_is_better": True}
    run = stagebench.StageRun(
        ["python", "-m", "bench.alerts_throughput"],
        "",
        {
            "figures": [
                {**fig, "name": "decode", "median": 1000.0, "limit": None, "ratio": None},
                {**fig, "name": "evaluation", "median": 500.0, "limit": "decode", "ratio": 0.45},
                {**fig, "name": "consume_decode", "median": 800.0, "limit": None, "ratio": None},
                {
                    **fig,
                    "name": "worker_of_consume",
                    "median": 400.0,
                    "limit": "consume_decode",
                    "ratio": 0.5,
                },
                {
                    "name": "latency_p99_ms",
                    "unit": "ms",
                    "higher_is_better": False,
                    "median": 120.0,
                    "limit": None,
                    "ratio": None,
                },
            ]
        },
    )
    rows = alerts.from_json(run, 3)
    assert [(r["value"], r["limit"], r["ratio"]) for r in rows] == [
        (500.0, 1000.0, 0.45),
        (400.0, 800.0, 0.5),
        (120.0, None, None),
    ]
    assert all(check.row_problems(r) == [] for r in rows)


def test_memory_per_socket_below_the_rss_resolution_is_unresolved_not_a_number() -> None:
    from bench.live_fanout import RSS_RESOLUTION_MB, kb_per_socket

    # A small run's RSS can even shrink (allocator trims): no figure, rather than a negative one.
    assert kb_per_socket(-1.0, 20) is None
    assert kb_per_socket(RSS_RESOLUTION_MB / 2, 20) is None
    assert kb_per_socket(10.0, 0) is None
    assert kb_per_socket(45.0, 1000) == 46.1
