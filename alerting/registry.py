"""Which rules watch which server: the rules a worker evaluates, indexed by scope.

A rule as data watches one server, or every server of its owner; a rule deployed as code watches
every server of the owner it was deployed for. A sample's lookup costs its own rules, not the
whole rule set. Pure: the engine fills it from the rules topic and the code-rule settings.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import ValidationError

from schemas.alerts import ALERT_RULE, AlertRule

from .errors import CodeRuleError
from .evaluation import RuleSpec, spec_from_rule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    spec: RuleSpec
    server_id: uuid.UUID | None  # a rule of one server
    owner_id: uuid.UUID  # ... or of every server of this owner

    @property
    def scope(self) -> tuple[str, uuid.UUID]:
        if self.server_id is not None:
            return ("server", self.server_id)
        return ("owner", self.owner_id)


class RuleRegistry:
    """The current rules, indexed by the server or owner they watch (a sample's lookup costs
    its own rules, not the whole rule set), plus the last version of removed rules (to resolve
    their open episodes)."""

    def __init__(self, max_rules_per_server: int) -> None:
        self.max_rules_per_server = max_rules_per_server
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._scopes: dict[tuple[str, uuid.UUID], dict[uuid.UUID, RuleSpec]] = {}
        self._retired: dict[uuid.UUID, RuleSpec] = {}
        self._warned: set[uuid.UUID] = set()
        self.skipped = 0  # undecodable rule messages, for the logs and tests

    def __len__(self) -> int:
        return len(self._entries)

    def apply_message(self, key: bytes | None, value: bytes | None) -> None:
        """One message of the rules topic: a rule, or a tombstone (value None) deleting one."""
        if value is None:
            try:
                rule_id = uuid.UUID((key or b"").decode())
            except ValueError:
                log.warning("alert rules: a tombstone with an unusable key %r is ignored", key)
                self.skipped += 1
                return
            self.remove(rule_id)
            return
        try:
            rule = ALERT_RULE.validate_json(value)
        except ValidationError as exc:
            log.warning("alert rules: an undecodable rule (key %r) is ignored: %s", key, exc)
            self.skipped += 1
            return
        self.put(rule)

    def put(self, rule: AlertRule) -> None:
        if not rule.enabled:
            self.remove(rule.rule_id)
            return
        self._add(_Entry(spec_from_rule(rule), rule.server_id, rule.owner_id))

    def put_code(self, spec: RuleSpec) -> None:
        """A rule deployed as code: it watches every server of its owner, and only those (the
        engine looks a sample's owner up, so a code rule never sees another tenant's servers)."""
        if spec.owner_id is None:
            raise CodeRuleError(f"code rule {spec.name!r} has no owner: deploy it as <module>@<owner id>")
        self._add(_Entry(spec, None, spec.owner_id))

    def _add(self, entry: _Entry) -> None:
        rule_id = entry.spec.rule_id
        old = self._entries.get(rule_id)
        if old is not None:
            self._scopes.get(old.scope, {}).pop(rule_id, None)
        self._entries[rule_id] = entry
        self._scopes.setdefault(entry.scope, {})[rule_id] = entry.spec
        self._retired.pop(rule_id, None)

    def remove(self, rule_id: uuid.UUID) -> None:
        entry = self._entries.pop(rule_id, None)
        if entry is not None:
            self._scopes.get(entry.scope, {}).pop(rule_id, None)
            self._retired[rule_id] = entry.spec

    def specs_for(self, server_id: uuid.UUID, owner_id: uuid.UUID | None) -> list[RuleSpec]:
        """The rules that evaluate this server, at most `max_rules_per_server` (by id order)."""
        specs = list(self._scopes.get(("server", server_id), {}).values())
        if owner_id is not None:
            # Owner-wide rules apply to this server only when it is theirs: an unknown server
            # (no owner) gets no owner-wide rule, whoever's it might be.
            specs.extend(self._scopes.get(("owner", owner_id), {}).values())
        if len(specs) > self.max_rules_per_server:
            specs.sort(key=lambda s: s.rule_id)
            if server_id not in self._warned:
                self._warned.add(server_id)
                log.warning(
                    "server %s has %d alert rules; only the first %d are evaluated",
                    server_id,
                    len(specs),
                    self.max_rules_per_server,
                )
            specs = specs[: self.max_rules_per_server]
        return specs

    def retired(self, rule_id: uuid.UUID) -> RuleSpec | None:
        return self._retired.get(rule_id)

    def no_data_targets(self) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
        """(servers, owners) that some no-data rule watches."""
        servers: set[uuid.UUID] = set()
        owners: set[uuid.UUID] = set()
        for entry in self._entries.values():
            if entry.spec.is_no_data:
                if entry.server_id is not None:
                    servers.add(entry.server_id)
                else:
                    owners.add(entry.owner_id)
        return servers, owners

    def specs(self) -> Iterable[RuleSpec]:
        return [e.spec for e in self._entries.values()]
