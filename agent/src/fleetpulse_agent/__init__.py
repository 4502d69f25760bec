"""The FleetPulse agent, the fleet simulator and the `fleetpulse` operators' command."""

from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("fleetpulse-agent")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
