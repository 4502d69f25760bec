"""Benchmarks of FleetPulse (bench/README.md)."""
