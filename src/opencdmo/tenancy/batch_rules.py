"""The tenant's exception rules for batches: the severity of each kind of exception, how
late an entry may be made and how long a bound signal may stay outside its phase's limits
before it is an excursion (``batch_exceptions`` in its manifest; set and audited here).

The kinds are the exceptions the system raises while a batch runs (``opencdmo.batches.
exceptions`` raises them); the manifest may change the severity of any of them, never add a
kind. A change applies to exceptions raised from then on: each keeps the severity it was
raised with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opencdmo.access.service import authorize
from opencdmo.audit import service as audit
from opencdmo.db.tx import tenant_transaction
from opencdmo.errors import ValidationFailed
from opencdmo.scope import TenantContext
from opencdmo.tenancy.queries import tenants

SEVERITIES = ("minor", "major", "critical")

#: Every kind of exception, with its default severity.
DEFAULT_SEVERITIES: dict[str, str] = {
    "outside_limits": "major",
    "outside_normal": "minor",
    "outside_par": "critical",
    "required_missing": "major",
    "out_of_order": "major",
    "late_entry": "minor",
    "correction": "minor",
    "manual_entry": "minor",
    "verification_missing": "major",
    "identity_mismatch": "critical",
    "wrong_material": "refuse",
    "over_consumption": "major",
    "equipment_not_ready": "refuse",
    "equipment_excursion": "major",
    "setpoint_failed": "major",
}
KINDS = tuple(DEFAULT_SEVERITIES)
#: Kinds the manifest may make refusals instead (``refuse``): the command is refused and
#: nothing is written. Using a lot before QC's release, or past its expiry, is never a kind:
#: it is always refused.
REFUSABLE = frozenset({"wrong_material", "over_consumption", "equipment_not_ready"})
REFUSE = "refuse"
DEFAULT_LATE_ENTRY_MINUTES = 30
LONGEST_LATE_ENTRY_MINUTES = 10080  # a week
DEFAULT_EXCURSION_DEBOUNCE_SECONDS = 60
LONGEST_EXCURSION_DEBOUNCE_SECONDS = 86400  # a day


@dataclass(frozen=True)
class ExceptionRules:
    """The tenant's overrides of the default severities, the late-entry tolerance and the
    excursion debounce (a signal outside its limits for longer is an excursion)."""

    overrides: dict[str, str] = field(default_factory=dict)
    late_entry_minutes: int = DEFAULT_LATE_ENTRY_MINUTES
    excursion_debounce_seconds: int = DEFAULT_EXCURSION_DEBOUNCE_SECONDS

    def severity(self, kind: str) -> str:
        return self.overrides.get(kind, DEFAULT_SEVERITIES[kind])

    def refuses(self, kind: str) -> bool:
        return self.severity(kind) == REFUSE


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def problem(
    overrides: Any, minutes: Any, debounce: Any = DEFAULT_EXCURSION_DEBOUNCE_SECONDS
) -> str | None:
    """What is wrong with these rules (None: nothing)."""
    if not isinstance(overrides, dict):
        return "severities must be a mapping of exception kind to severity"
    for kind, severity in overrides.items():
        if kind not in DEFAULT_SEVERITIES:
            return f"'{str(kind)[:40]}' is not an exception kind (the kinds: {', '.join(KINDS)})"
        allowed = (*SEVERITIES, REFUSE) if kind in REFUSABLE else SEVERITIES
        if severity not in allowed:
            return f"{kind}: the severity must be one of {', '.join(allowed)}"
    if not _whole(minutes, 1, LONGEST_LATE_ENTRY_MINUTES):
        return f"late_entry_minutes must be a whole number from 1 to {LONGEST_LATE_ENTRY_MINUTES}"
    if not _whole(debounce, 1, LONGEST_EXCURSION_DEBOUNCE_SECONDS):
        return (
            "excursion_debounce_seconds must be a whole number from 1 to "
            f"{LONGEST_EXCURSION_DEBOUNCE_SECONDS}"
        )
    return None


async def exception_rules(ctx: TenantContext) -> ExceptionRules:
    """The tenant's rules, read in the transaction open in this context."""
    async with tenant_transaction(ctx):
        row = await tenants.this_tenant(ctx.tenant_id)
    return _rules(row)


def rules_of(severities: str, late_entry_minutes: int, debounce_seconds: int) -> ExceptionRules:
    """The rules from the tenant's columns (``exception_severities`` as JSON text)."""
    return ExceptionRules(json.loads(severities), late_entry_minutes, debounce_seconds)


def _rules(row: tenants.TenantRow) -> ExceptionRules:
    return rules_of(
        row.exception_severities, row.late_entry_minutes, row.excursion_debounce_seconds
    )


async def set_exception_rules(ctx: TenantContext, rules: ExceptionRules) -> bool:
    """Set the tenant's rules (exceptions raised before keep their severity); audited.
    False: unchanged."""
    await authorize(ctx, "tenant", "provision")
    found = problem(rules.overrides, rules.late_entry_minutes, rules.excursion_debounce_seconds)
    if found:
        raise ValidationFailed(f"batch_exceptions: {found}.", details={"field": "batch_exceptions"})
    async with tenant_transaction(ctx):
        row = await tenants.this_tenant(ctx.tenant_id, lock=True)
        old = _rules(row)
        if old == rules:
            return False
        await tenants.set_exception_rules(
            ctx.tenant_id,
            rules.overrides,
            rules.late_entry_minutes,
            rules.excursion_debounce_seconds,
        )
        await audit.record(
            ctx,
            "tenant.exception_rules_changed",
            "tenant",
            ctx.tenant_id,
            old=_shown(old),
            new=_shown(rules),
        )
    return True


def _shown(rules: ExceptionRules) -> dict[str, Any]:
    return {
        "severities": rules.overrides,
        "late_entry_minutes": rules.late_entry_minutes,
        "excursion_debounce_seconds": rules.excursion_debounce_seconds,
    }
