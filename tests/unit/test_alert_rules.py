import uuid
from datetime import UTC, datetime

from alerting.registry import RuleRegistry
from schemas.alerts import AlertRule, rule_key

OWNER = uuid.uuid4()
SERVER = uuid.uuid4()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rule(**kw) -> AlertRule:
    values = {"rule_id": uuid.uuid4(), "owner_id": OWNER, "server_id": SERVER, "name": "r", "metric": "cpu"}
    values.update({"threshold": 50.0, "updated_at": T0})
    values.update(kw)
    return AlertRule(**values)


def ids(specs) -> set[uuid.UUID]:
    return {s.rule_id for s in specs}


def test_rules_apply_to_their_server_or_their_owners_servers() -> None:
    registry = RuleRegistry(max_rules_per_server=10)
    mine, wide, other = rule(), rule(server_id=None), rule(server_id=uuid.uuid4())
    for r in (mine, wide, other):
        registry.apply_message(rule_key(r.rule_id), r.to_bytes())
    assert ids(registry.specs_for(SERVER, OWNER)) == {mine.rule_id, wide.rule_id}
    assert ids(registry.specs_for(SERVER, None)) == {mine.rule_id}  # owner unknown: no owner-wide rules
    assert ids(registry.specs_for(uuid.uuid4(), uuid.uuid4())) == set()


def test_tombstones_and_disabling_retire_a_rule_and_changes_replace_it() -> None:
    registry = RuleRegistry(max_rules_per_server=10)
    r = rule()
    registry.apply_message(rule_key(r.rule_id), r.to_bytes())
    moved = r.model_copy(update={"server_id": None, "threshold": 70.0})
    registry.put(moved)  # now owner-wide: the old scope forgets it
    assert [s.threshold for s in registry.specs_for(SERVER, OWNER)] == [70.0]
    registry.apply_message(rule_key(r.rule_id), None)
    assert registry.specs_for(SERVER, OWNER) == []
    retired = registry.retired(r.rule_id)
    assert retired is not None and retired.threshold == 70.0
    disabled = rule(enabled=False)
    registry.put(rule(rule_id=disabled.rule_id))
    registry.put(disabled)
    assert registry.specs_for(SERVER, OWNER) == [] and registry.retired(disabled.rule_id) is not None


def test_undecodable_messages_are_skipped_and_counted() -> None:
    registry = RuleRegistry(max_rules_per_server=10)
    registry.apply_message(b"k", b"{not json")
    registry.apply_message(b"not-a-uuid", None)
    assert registry.skipped == 2 and len(registry) == 0


def test_rules_beyond_the_per_server_limit_are_not_evaluated() -> None:
    registry = RuleRegistry(max_rules_per_server=3)
    rules = [rule() for _ in range(5)]
    for r in rules:
        registry.put(r)
    assert ids(registry.specs_for(SERVER, OWNER)) == {
        r.rule_id for r in sorted(rules, key=lambda r: r.rule_id)[:3]
    }


def test_no_data_targets_are_the_watched_servers_and_owners() -> None:
    registry = RuleRegistry(max_rules_per_server=10)
    registry.put(rule(metric="no_data", threshold=0))
    registry.put(rule(metric="no_data", threshold=0, server_id=None))
    registry.put(rule())
    assert registry.no_data_targets() == ({SERVER}, {OWNER})
