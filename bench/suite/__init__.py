"""`make bench`: every scenario of FleetPulse against the real stack, from a clean start.

    .venv/bin/python -m bench.suite [--smoke] [--only capacity,backfill] [--out DIR]

The runner (`runner.py`) starts the services (`services.py`: its own Kafka and PostgreSQL on
other ports, or the running ones with `--services shared`), runs each scenario of `scenarios/`
in order, prints a line per step with the elapsed time and an ETA, and writes `results.json` and
`report.md` with PNG figures (`report.py`) into `bench/results/<timestamp>/`. Each figure names
what it ran on (`machine.py`). `check.py` checks that a results folder is complete (what
`make bench-smoke` asserts: every scenario ran and the report was written, never a timing).
"""
