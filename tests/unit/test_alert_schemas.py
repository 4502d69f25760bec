import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.alerts import (
    ALERT_RULE,
    AlertRule,
    ThresholdIn,
    alert_event_id,
    episode_id,
    rule_from_threshold,
    threshold_from_rule,
)

OWNER = uuid.UUID("00000000-0000-4000-8000-00000000000a")
SERVER = uuid.UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_threshold_shape_round_trips_through_a_rule() -> None:
    rid = uuid.uuid4()
    data = ThresholdIn(server_id=SERVER, metric_type="disk", threshold_value=90, comparison="gt")
    rule = rule_from_threshold(rid, OWNER, data, T0)
    assert (rule.metric, rule.subject, rule.origin, rule.threshold) == ("disk", None, "threshold", 90)
    back = threshold_from_rule(rule)
    assert back is not None
    assert (back.id, back.metric_type, back.threshold_value, back.comparison, back.enabled) == (
        rid,
        "disk",
        90,
        "gt",
        True,
    )
    assert ALERT_RULE.validate_json(rule.to_bytes()) == rule


def test_rules_without_threshold_shape_have_no_legacy_view() -> None:
    rule = AlertRule(
        rule_id=uuid.uuid4(), owner_id=OWNER, name="rx", metric="net_rx", threshold=1e6, updated_at=T0
    )
    assert threshold_from_rule(rule) is None


def test_clear_threshold_on_the_wrong_side_is_refused() -> None:
    with pytest.raises(ValidationError, match="clear_threshold"):
        AlertRule(
            rule_id=uuid.uuid4(),
            owner_id=OWNER,
            name="cpu",
            metric="cpu",
            threshold=80,
            clear_threshold=85,
            updated_at=T0,
        )
    with pytest.raises(ValidationError, match="percentage"):
        AlertRule(
            rule_id=uuid.uuid4(), owner_id=OWNER, name="m", metric="memory", threshold=120, updated_at=T0
        )
    with pytest.raises(ValidationError, match="subject"):
        AlertRule(rule_id=uuid.uuid4(), owner_id=OWNER, name="c", metric="cpu", subject="/", updated_at=T0)


def test_episode_ids_are_stable_and_distinct_per_state() -> None:
    rid = uuid.uuid4()
    a = episode_id(rid, SERVER, "/", T0)
    assert a == episode_id(rid, SERVER, "/", T0)
    assert a != episode_id(rid, SERVER, "/data", T0)
    assert alert_event_id(a, "firing") != alert_event_id(a, "resolved")


def test_owner_wide_rule_applies_to_the_owners_servers_only() -> None:
    rule = AlertRule(rule_id=uuid.uuid4(), owner_id=OWNER, name="c", metric="cpu", threshold=1, updated_at=T0)
    assert rule.applies_to(SERVER, OWNER)
    assert not rule.applies_to(SERVER, uuid.uuid4())
    assert not rule.applies_to(SERVER, None)
