"""The alerting worker's collector tuning (`stream_processors/alerts/runtime.py`) and its setting."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from stream_processors.alerts.runtime import tune_gc
from stream_processors.alerts.settings import AlertSettings


@pytest.fixture
def collector() -> Iterator[None]:
    """The interpreter's collector settings back as they were after the test."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_a_threshold_freezes_what_is_loaded_and_raises_the_first_generation(collector: None) -> None:
    assert tune_gc(12_345) is True
    assert gc.get_threshold() == (12_345, 20, 100)
    assert gc.get_freeze_count() > 0


def test_zero_leaves_the_interpreters_collector_as_it_is(collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    frozen = gc.get_freeze_count()
    assert tune_gc(0) is False
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == frozen


def test_the_setting_defaults_to_a_raised_threshold_and_refuses_a_negative_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert AlertSettings().gc_gen0_threshold == 50_000
    monkeypatch.setenv("FLEETPULSE_PROCESSORS_ALERTS_GC_GEN0_THRESHOLD", "0")
    assert AlertSettings().gc_gen0_threshold == 0
    monkeypatch.setenv("FLEETPULSE_PROCESSORS_ALERTS_GC_GEN0_THRESHOLD", "-1")
    with pytest.raises(ValidationError):
        AlertSettings()
