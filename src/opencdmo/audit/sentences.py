"""Audit events as sentences a reviewer reads: "Avery Lindqvist gave Sofia Marchetti the role
QC analyst", with the people and records named and linked to their pages.

An event stores ids (its entity, and ids among its values); the names come from the context
that owns each kind of entity. A context lists a resolver per entity type in its routes
module (``audit_names = {"master_recipe": resolver}``); the app registers them with
:func:`register`. A resolver takes the ids of one page of events and returns their names and
pages in one query, run in the page's read view (row-level security applies: another
tenant's record is never named).

Each action has one sentence (``SENTENCES``); an action without one still reads as a
sentence ("Sam Lee did tenant.renamed on tenant Larkspur"). Values are shown as a readable
list of changes on demand, never as raw JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opencdmo.audit.queries import AuditRow
from opencdmo.labels import NAMES, label
from opencdmo.scope import TenantContext


@dataclass(frozen=True)
class Named:
    """An entity as a page names it: its name and, when it has one, its page."""

    name: str
    href: str | None = None


@dataclass(frozen=True)
class Part:
    """A piece of a sentence: text, or a name linked to its page."""

    text: str
    href: str | None = None
    emphasis: bool = False


@dataclass(frozen=True)
class Change:
    """One value of the event as a reviewer reads it: field, before, after."""

    field: str
    old: str
    new: str


@dataclass(frozen=True)
class Sentence:
    event: AuditRow
    parts: tuple[Part, ...]
    changes: tuple[Change, ...]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts)


Resolver = Callable[[TenantContext, list[str]], Awaitable[dict[str, Named]]]
People = Callable[[TenantContext], Awaitable[list[str]]]
_RESOLVERS: dict[str, Resolver] = {}
_PEOPLE: list[People] = []


def register(resolvers: dict[str, Resolver], people: People | None = None) -> None:
    """A context's resolvers by entity type, and who may appear as an actor (the filter
    offers their names); the app calls this once per context's ``names`` module."""
    _RESOLVERS.update(resolvers)
    if people is not None:
        _PEOPLE.append(people)


def entity_types() -> list[tuple[str, str]]:
    """The kinds of entity a filter offers: (type, how it reads)."""
    return sorted(((kind, label(kind)) for kind in _RESOLVERS), key=lambda k: k[1])


async def people(ctx: TenantContext) -> list[str]:
    """Names a reviewer can filter the trail by."""
    names: set[str] = set()
    for provider in _PEOPLE:
        names.update(await provider(ctx))
    return sorted(names)


# Values that name another entity: (field in the values, entity type of the id it holds).
_REFERENCES = {
    "user_id": "user",
    "hub_item_id": "hub_item",
    "as_dependency_of": "hub_item",
    "recipe_id": "master_recipe",
}


@dataclass(frozen=True)
class _Event:
    row: AuditRow
    old: dict[str, Any]
    new: dict[str, Any]
    names: dict[tuple[str, str], Named]

    @property
    def actor(self) -> Part:
        return Part(self.row.actor_name or "The system", emphasis=True)

    def entity(self, fallback: str | None = None) -> Part:
        return self.named(self.row.entity_type, self.row.entity_id, fallback)

    def named(self, kind: str, ident: object, fallback: str | None = None) -> Part:
        found = self.names.get((kind, str(ident)))
        if found is not None:
            return Part(found.name, found.href, emphasis=True)
        return Part(fallback or f"{label(kind).lower()} {str(ident)[:8]}", emphasis=True)

    def value(self, key: str, side: str = "new") -> Any:
        return (self.new if side == "new" else self.old).get(key)


def _t(text: str) -> Part:
    return Part(text)


def _roles(values: Iterable[Any]) -> str:
    names = [label(v) for v in values]
    return ", ".join(names) if names else "no role"


def _the_roles(roles: list[Any]) -> str:
    return f"the role {_roles(roles)}" if len(roles) == 1 else f"the roles {_roles(roles)}"


def _role_change(e: _Event) -> list[Part]:
    """ "A gave B the role QC analyst", "A took from B the role Viewer", or both."""
    before, after = set(e.value("roles", "old") or []), set(e.value("roles") or [])
    added, removed = sorted(after - before), sorted(before - after)
    parts: list[Part] = [e.actor]
    if added:
        parts += [_t(" gave "), e.entity(), _t(f" {_the_roles(added)}")]
    if removed and added:
        parts.append(_t(f" and took away {_the_roles(removed)}"))
    elif removed:
        parts += [_t(" took from "), e.entity(), _t(f" {_the_roles(removed)}")]
    if not added and not removed:
        parts += [_t(" left the roles of "), e.entity(), _t(" unchanged")]
    return parts


def _status(e: _Event, verb: str) -> list[Part]:
    revision = e.value("revision")
    of = f"revision {revision} of " if revision else ""
    return [e.actor, _t(f" {verb} {of}"), e.entity()]


def _named_value(e: _Event, key: str, kind: str) -> Part:
    ident = e.value(key)
    return e.named(kind, ident) if ident else _t("")


_BATCH_VERBS = {
    "start": "started",
    "hold": "held",
    "restart": "restarted",
    "pause": "paused",
    "resume": "resumed",
    "stop": "stopped",
    "abort": "aborted",
    "complete": "completed",
}


def _batch_command(e: _Event, verb: str) -> list[Part]:
    """ "A held batch LCG-BOS-26-0001 (Running to Held)"."""
    before, after = label(str(e.value("status", "old"))), label(str(e.value("status")))
    return [e.actor, _t(f" {verb} "), e.entity(), _t(f" ({before} to {after})")]


def _entry_value(e: _Event, side: str = "new") -> str:
    value, unit = e.value("value", side), e.value("unit", side)
    return f"{value} {unit}" if unit else str(value)


def _batch_entry(e: _Event) -> list[Part]:
    """ "A recorded Viability before activation 92 % (in limits) in batch S1-26-0001"."""
    return [
        e.actor,
        _t(
            f" recorded {e.value('field_name')} {_entry_value(e)} "
            f"({label(str(e.value('check')))}) in "
        ),
        e.entity(f"batch {e.value('number')}"),
    ]


def _batch_correction(e: _Event) -> list[Part]:
    """ "A corrected Viability before activation from 92 % to 90 % (in limits) in batch ..."."""
    return [
        e.actor,
        _t(
            f" corrected {e.value('field_name')} from {_entry_value(e, 'old')} to "
            f"{_entry_value(e)} ({label(str(e.value('check')))}) in "
        ),
        e.entity(f"batch {e.value('number')}"),
    ]


def _signed(e: _Event) -> list[Part]:
    """ "A signed master recipe CAR-T, meaning: approved" ("signed batch S1-26-0001": a name
    that says its kind already is not given it twice)."""
    named = e.entity()
    kind = label(e.row.entity_type).lower()
    says_kind = named.text.lower().startswith(kind + " ")
    return [
        e.actor,
        _t(" signed " if says_kind else f" signed {kind} "),
        named,
        _t(f", meaning: {e.value('meaning')}" if e.value("meaning") else ""),
    ]


def _batch_sentence(verb: str) -> Callable[[_Event], list[Part]]:
    return lambda e: _batch_command(e, verb)


def _in_batch(e: _Event, text: str) -> list[Part]:
    """ "A <text> in batch S1-26-0001"."""
    return [e.actor, _t(f" {text} in "), e.entity(f"batch {e.value('number')}")]


def _phase_sentence(verb: str) -> Callable[[_Event], list[Part]]:
    """ "A started Activation: Seeding (Idle to Running) in batch S1-26-0001"."""

    def sentence(e: _Event) -> list[Part]:
        before, after = label(str(e.value("status", "old"))), label(str(e.value("status")))
        return _in_batch(e, f"{verb} {e.value('phase_name')} ({before} to {after})")

    return sentence


def _lot(e: _Event) -> Part:
    return e.entity(f"lot {e.value('lot_number')} of {e.value('material')}")


def _unit(e: _Event) -> Part:
    return e.entity(f"equipment {e.value('code')}")


def _container_moved(e: _Event) -> list[Part]:
    came = e.value("location", "old")
    return [
        e.actor,
        _t(" moved "),
        e.entity(f"container {e.value('container')} of lot {e.value('lot_number')}"),
        _t(f" from {came}" if came else ""),
        _t(f" to {e.value('location')}"),
    ]


def _reorder_level(e: _Event) -> list[Part]:
    level = e.value("reorder_level")
    material = e.entity(f"material {e.value('code')}")
    if level is None:
        return [e.actor, _t(" removed the reorder level of "), material]
    return [
        e.actor,
        _t(" set the reorder level of "),
        material,
        _t(f" to {level} {e.value('unit')}"),
    ]


def _coa(e: _Event, side: str = "new") -> str:
    """A certificate of analysis as its event keeps it: name and short SHA-256."""
    coa = e.value("coa", side)
    if not isinstance(coa, dict):
        return "a certificate of analysis"
    return f"{coa.get('filename')} (SHA-256 {str(coa.get('sha256', ''))[:12]}…)"


def _document(e: _Event) -> str:
    """A recipe document as its event keeps it: title, kind, file name and short SHA-256."""
    file = e.value("file")
    if not isinstance(file, dict):
        return str(e.value("title"))
    kind = label(str(e.value("kind")))
    sha = str(file.get("sha256", ""))[:12]
    return f"{e.value('title')} ({kind}, {file.get('filename')}, SHA-256 {sha}…)"


_BATCH_EVENTS: dict[str, Callable[[_Event], list[Part]]] = {
    **{f"batch.phase_{c}": _phase_sentence(verb) for c, verb in _BATCH_VERBS.items()},
    "batch.equipment_bound": lambda e: _in_batch(
        e, f"took equipment {e.value('code')} for step {e.value('step_name')}"
    ),
    "batch.equipment_released": lambda e: [
        _t(f"Equipment {e.value('code')} was freed from step {e.value('step_name')} of "),
        e.entity(f"batch {e.value('number')}"),
    ],
    "batch.setpoints_written": lambda e: _in_batch(
        e,
        f"wrote {e.value('value')} {e.value('unit')} to {e.value('code')} {e.value('node')} "
        f"({e.value('parameter')}; "
        + ("read back the same" if e.value("ok") else f"failed: {e.value('problem')}")
        + ")",
    ),
    "batch.setpoints_abandoned": lambda e: [
        _t(f"A setpoint write to {e.value('code')} {e.value('node')} was never finished in "),
        e.entity(f"batch {e.value('number')}"),
    ],
    "batch.phase_verified": lambda e: _in_batch(e, f"verified {e.value('phase_name')}"),
    "batch.phase_witnessed": lambda e: _in_batch(e, f"witnessed {e.value('phase_name')}"),
    "batch.identity_checked": lambda e: _in_batch(
        e,
        f"checked the COI label {e.value('scanned')} at {e.value('step_name')} ("
        + ("it matched" if e.value("matched") else "it did not match")
        + ")",
    ),
    "batch.custody_taken": lambda e: _in_batch(
        e, f"took custody of the material at {e.value('location')}"
    ),
    "batch.material_consumed": lambda e: _in_batch(
        e,
        f"used {e.value('quantity')} {e.value('unit')} of lot {e.value('lot_number')} "
        f"({e.value('material')}, container {e.value('container')}) at {e.value('step_name')}",
    ),
    "batch.materials_reserved": lambda e: _in_batch(
        e,
        "reserved "
        + ", ".join(
            f"{r.get('quantity')} {r.get('unit')} of lot {r.get('lot')}"
            for r in (e.value("reserved") or [])
            if isinstance(r, dict)
        ),
    ),
    "batch.reservations_released": lambda e: _in_batch(
        e, f"released {e.value('released')} reservations"
    ),
    "batch.lot_produced": lambda e: _in_batch(
        e,
        f"recorded {e.value('quantity')} {e.value('unit')} of {e.value('material')} made as "
        f"lot {e.value('lot_number')} at step {e.value('step')}",
    ),
    "batch.excursion_raised": lambda e: [
        _t(f"{e.value('code')} {e.value('signal')} went outside its limits in "),
        e.entity(f"batch {e.value('number')}"),
        _t(f", phase {e.value('phase')}, from {e.value('started_at')}"),
    ],
    "batch.excursion_ended": lambda e: [
        _t(f"The excursion of {e.value('code')} {e.value('signal')} in "),
        e.entity(f"batch {e.value('number')}"),
        _t(f" ended at {e.value('ended_at')}, extreme {e.value('extreme')}"),
    ],
    "batch.exception_raised": lambda e: [
        _t(f"The system raised a {e.value('severity')} exception in "),
        e.entity(f"batch {e.value('number')}"),
        _t(" on an action of "),
        e.actor,
        _t(f": {e.value('message')}"),
    ],
    "batch.exception_accepted": lambda e: _in_batch(
        e, f"accepted the exception “{e.value('message')}”"
    ),
    "batch.deviation_opened": lambda e: _in_batch(
        e, f"opened the {e.value('classification')} deviation {e.value('deviation')}"
    ),
    "batch.deviation_closed": lambda e: _in_batch(
        e, f"closed the deviation {e.value('deviation')}"
    ),
    "batch.released": lambda e: [e.actor, _t(" released "), e.entity(f"batch {e.value('number')}")],
    "batch.rejected": lambda e: [e.actor, _t(" rejected "), e.entity(f"batch {e.value('number')}")],
}


SENTENCES: dict[str, Callable[[_Event], list[Part]]] = {
    "user.login": lambda e: [e.actor, _t(" signed in")],
    "user.logout": lambda e: [e.actor, _t(" signed out")],
    "user.created": lambda e: [e.actor, _t(" created the account of "), e.entity()],
    "user.disabled": lambda e: [e.actor, _t(" disabled the account of "), e.entity()],
    "user.enabled": lambda e: [e.actor, _t(" enabled the account of "), e.entity()],
    "user.password_changed": lambda e: [e.actor, _t(" changed their password")],
    "user.password_set": lambda e: [e.actor, _t(" set the password of "), e.entity()],
    "user.signing_password_set": lambda e: [e.actor, _t(" set their signing password")],
    "user.notifications_changed": lambda e: [
        e.actor,
        _t(
            f" switched {'on' if e.value('notify_by_email') else 'off'} the e-mails of work "
            "awaiting their action"
        ),
    ],
    "notification.sent": lambda e: [
        e.actor,
        _t(
            f" e-mailed {e.value('items')} item{'s' if e.value('items') != 1 else ''} "
            "awaiting action to "
        ),
        e.entity(),
    ],
    "sso.linked": lambda e: [
        e.actor,
        _t(f" linked {e.value('email')} to their identity at the provider"),
    ],
    "sso.refused": lambda e: [_t(f"Single sign-on refused a sign-in ({e.value('reason')})")],
    "tenant.created": lambda e: [e.actor, _t(" created the organisation "), e.entity()],
    "tenant.updated": lambda e: [e.actor, _t(" changed the name or kind of "), e.entity()],
    "tenant.signature_flow_changed": lambda e: [
        e.actor,
        _t(
            f" set recipe approval to {e.value('recipe_approvers')} approver"
            f"{'s' if e.value('recipe_approvers') != 1 else ''}"
            f"{', each a different person' if e.value('recipe_unique_signers') else ''}"
        ),
    ],
    "tenant.token_policy_changed": lambda e: [e.actor, _t(" changed the API token policy")],
    "site.created": lambda e: [e.actor, _t(" added the site "), e.entity(e.value("name"))],
    "site.updated": lambda e: [e.actor, _t(" changed the site "), e.entity(e.value("name"))],
    "member.added": lambda e: [
        e.actor,
        _t(" added "),
        _named_value(e, "user_id", "user"),
        _t(f" as {_roles(e.value('roles') or [])}"),
    ],
    "member.roles_changed": _role_change,
    "member.deactivated": lambda e: [e.actor, _t(" deactivated "), e.entity()],
    "member.reactivated": lambda e: [e.actor, _t(" reactivated "), e.entity()],
    "member.site_role_granted": lambda e: [
        e.actor,
        _t(" gave "),
        e.entity(),
        _t(f" the role {label(e.value('role'))} at site {e.value('site') or ''}".rstrip()),
    ],
    "member.site_role_revoked": lambda e: [
        e.actor,
        _t(" took from "),
        e.entity(),
        _t(
            f" the role {label(e.value('role', 'old'))} at site "
            f"{e.value('site', 'old') or ''}".rstrip()
        ),
    ],
    "invitation.created": lambda e: [
        e.actor,
        _t(f" invited {e.value('email')} as {_roles(e.value('roles') or [])}"),
    ],
    "invitation.accepted": lambda e: [e.actor, _t(" accepted an invitation")],
    "invitation.revoked": lambda e: [
        e.actor,
        _t(f" withdrew the invitation of {e.value('email') or 'a person'}"),
    ],
    "invitation.expired": lambda e: [_t("An invitation expired")],
    "invitation.mailed": lambda e: [
        e.actor,
        _t(f" e-mailed the invitation to {e.value('email') or 'the person invited'}"),
    ],
    "token.created": lambda e: [e.actor, _t(" created the API token "), e.entity(e.value("name"))],
    "token.revoked": lambda e: [e.actor, _t(" revoked the API token "), e.entity(e.value("name"))],
    "token.expired_used": lambda e: [_t("An expired API token of "), e.actor, _t(" was refused")],
    "recipe.created": lambda e: [e.actor, _t(" created the recipe "), e.entity(e.value("name"))],
    "recipe.revised": lambda e: [
        e.actor,
        _t(f" saved revision {e.value('revision')} of "),
        e.entity(),
    ],
    "recipe.imported_from_batchml": lambda e: [
        e.actor,
        _t(
            f" imported the draft recipe from BatchML master recipe {e.value('document_id')} "
            f"version {e.value('document_version')} ({e.value('gaps')} gaps): "
        ),
        e.entity(),
    ],
    "recipe.submit": lambda e: _status(e, "submitted for review"),
    "recipe.approve": lambda e: _status(e, "approved"),
    "recipe.reject": lambda e: _status(e, "returned to draft"),
    "recipe.make_effective": lambda e: _status(e, "made effective"),
    "recipe.retire": lambda e: _status(e, "retired"),
    "recipe.superseded": lambda e: [
        _t(f"Revision {e.value('effective_revision', 'old')} of "),
        e.entity(),
        _t(f" was superseded by revision {e.value('effective_revision')}"),
    ],
    "recipe.published": lambda e: [e.actor, _t(" published "), e.entity(), _t(" to the HUB")],
    "recipe.document_added": lambda e: [
        e.actor,
        _t(f" attached the document {_document(e)} to "),
        e.entity(),
    ],
    "recipe.document_removed": lambda e: [
        e.actor,
        _t(f" removed the document {e.value('title', 'old')} from "),
        e.entity(),
    ],
    "signature.applied": lambda e: _signed(e),
    "signature.password_failed": lambda e: [
        e.actor,
        _t(" entered a wrong password for a signature"),
    ],
    "hub.version_published": lambda e: [
        e.actor,
        _t(f" published version {e.value('version')} of " if e.value("version") else " published "),
        e.entity(e.value("slug")),
    ],
    "hub.visibility_changed": lambda e: [
        e.actor,
        _t(" made "),
        e.entity(),
        _t(f" {label(e.value('visibility')).lower()}"),
    ],
    "hub.version_deprecated": lambda e: [
        e.actor,
        _t(" deprecated a version of "),
        e.entity(),
    ],
    "hub.version_yanked": lambda e: [e.actor, _t(" yanked a version of "), e.entity()],
    "hub.modify_refused": lambda e: [
        e.actor,
        _t(" was refused a change to the HUB item "),
        e.entity(),
    ],
    "library.installed": lambda e: [
        e.actor,
        _t(f" installed {label(e.value('kind')).lower()} "),
        e.entity(e.value("slug")),
        _t(f" {e.value('version')}"),
        *(
            [_t(" as a dependency of "), _named_value(e, "as_dependency_of", "hub_item")]
            if e.value("as_dependency_of")
            else []
        ),
    ],
    "library.upgraded": lambda e: [
        e.actor,
        _t(" upgraded "),
        e.entity(),
        _t(f" from {e.value('version', 'old')} to {e.value('version')}"),
    ],
    "library.forked": lambda e: [
        e.actor,
        _t(" forked "),
        e.entity(),
        _t(f" from version {e.value('forked_from_version')}"),
    ],
    "library.fork_edited": lambda e: [
        e.actor,
        _t(" edited the fork "),
        e.entity(),
        _t(f" (revision {e.value('revision')})" if e.value("revision") else ""),
    ],
    "library.fork_published": lambda e: [e.actor, _t(" published the fork "), e.entity()],
    "batch.created": lambda e: [
        e.actor,
        _t(" created "),
        e.entity(f"batch {e.value('number')}"),
        _t(f" from revision {e.value('revision')} of "),
        _named_value(e, "recipe_id", "master_recipe"),
        _t(f", formula {e.value('formula')}, at site {e.value('site')}"),
    ],
    **{f"batch.{command}": _batch_sentence(verb) for command, verb in _BATCH_VERBS.items()},
    "batch.entry_recorded": _batch_entry,
    "batch.entry_corrected": _batch_correction,
    **_BATCH_EVENTS,
    "material.created": lambda e: [
        e.actor,
        _t(" added "),
        e.entity(f"material {e.value('code')}"),
        _t(f" ({e.value('name')}, in {e.value('default_unit')})"),
    ],
    "lot.received": lambda e: [
        e.actor,
        _t(f" received {e.value('quantity')} {e.value('unit')} of {e.value('material')} as "),
        _lot(e),
        _t(f" (supplier lot {e.value('supplier_lot')}) into quarantine"),
        *([_t(f", with the certificate of analysis {_coa(e)}")] if e.value("coa") else []),
    ],
    "lot.coa_attached": lambda e: [
        e.actor,
        _t(f" attached the certificate of analysis {_coa(e)} to "),
        _lot(e),
    ],
    "lot.coa_replaced": lambda e: [
        e.actor,
        _t(" replaced the certificate of analysis of "),
        _lot(e),
        _t(f": {_coa(e, 'old')} by {_coa(e)}"),
    ],
    "lot.released": lambda e: [e.actor, _t(" released "), _lot(e), _t(" for use")],
    "lot.rejected": lambda e: [e.actor, _t(" rejected "), _lot(e)],
    "lot.held": lambda e: [e.actor, _t(" put "), _lot(e), _t(" on hold")],
    "lot.expired": lambda e: [e.actor, _t(" marked "), _lot(e), _t(" expired: its date passed")],
    "lot.consumed": lambda e: [
        _t("The last of "),
        e.entity(f"lot {e.value('lot_number')}"),
        _t(f" was used in batch {e.value('batch')}"),
    ],
    "lot.unheld": lambda e: [
        e.actor,
        _t(" took "),
        _lot(e),
        _t(f" off hold ({label(str(e.value('status')))})"),
    ],
    "lot.labels_printed": lambda e: [
        e.actor,
        _t(" printed the labels of "),
        _lot(e),
        _t(f" (containers {', '.join(str(n) for n in e.value('containers') or [])})"),
    ],
    "location.created": lambda e: [
        e.actor,
        _t(" added the storage "),
        e.entity(f"location {e.value('path')}"),
    ],
    "location.retired": lambda e: [
        e.actor,
        _t(" retired the storage "),
        e.entity(f"location {e.value('path')}"),
    ],
    "container.moved": _container_moved,
    "equipment.registered": lambda e: [
        e.actor,
        _t(" registered "),
        _unit(e),
        _t(f" ({e.value('class')}) at site {e.value('site')}"),
    ],
    "equipment.changed": lambda e: [e.actor, _t(" changed "), _unit(e)],
    "equipment.status_changed": lambda e: [
        e.actor,
        _t(" set "),
        _unit(e),
        _t(f" to {label(str(e.value('status'))).lower()}"),
    ],
    "equipment.cleaning_recorded": lambda e: [
        e.actor,
        _t(" signed a cleaning of "),
        _unit(e),
        _t(f", clean until {e.value('clean_until')}"),
    ],
    "equipment.maintenance_recorded": lambda e: [
        e.actor,
        _t(" signed maintenance of "),
        _unit(e),
    ],
    "equipment.calibration_recorded": lambda e: [
        e.actor,
        _t(" signed a calibration of "),
        _unit(e),
        _t(f", next due {e.value('calibration_due')}"),
    ],
    "equipment.certificate_trusted": lambda e: [
        e.actor,
        _t(f" trusted the OPC UA server certificate {e.value('subject')}, SHA-256 "),
        _t(f"{str(e.value('thumbprint'))[:23]}…"),
    ],
    "equipment.certificate_removed": lambda e: [
        e.actor,
        _t(" removed the OPC UA server certificate "),
        _t(f"{e.value('subject', 'old')}, SHA-256 {str(e.value('thumbprint'))[:23]}…"),
        _t(" from the trust list"),
    ],
    "equipment.used": lambda e: [
        _unit(e),
        _t(f" was used by batch {e.value('number')}, step {e.value('step')}"),
    ],
    "material.reorder_level_set": _reorder_level,
    "material.suppliers_set": lambda e: [
        e.actor,
        _t(" set the approved suppliers of "),
        e.entity(f"material {e.value('code')}"),
        _t(f" to {', '.join(e.value('approved_suppliers') or []) or 'any supplier'}"),
    ],
    "tenant.exception_rules_changed": lambda e: [
        e.actor,
        _t(" changed the batch exception rules"),
    ],
    "tenant.batch_numbering_changed": lambda e: [
        e.actor,
        _t(f" set the batch number pattern to {e.value('batch_number_pattern')}"),
    ],
    "partner.proposed": lambda e: _partner(e, "proposed"),
    "partner.accepted": lambda e: _partner(e, "accepted"),
    "partner.declined": lambda e: _partner(e, "declined"),
    "partner.revoked": lambda e: _partner(e, "revoked"),
    "partner.sharing_changed": lambda e: [
        e.actor,
        _t(
            (
                " shared released batch records"
                if e.value("share_batch_records")
                else " stopped sharing batch records"
            )
            + f" within the relationship with {e.value('partner')}"
        ),
    ],
    "audit.exported": lambda e: [e.actor, _t(" exported the audit trail")],
    "export.requested": lambda e: [e.actor, _t(f" asked for an export ({e.value('kind')})")],
    "export.completed": lambda e: [_t(f"An export was built ({e.value('file_name')})")],
    "export.failed": lambda e: [_t(f"An export failed: {e.value('error')}")],
    "export.downloaded": lambda e: [e.actor, _t(" downloaded an export")],
    "audit.chain_keyed": lambda e: [_t("The audit trail was sealed with its key")],
    "access.denied": lambda e: [e.actor, _t(" was refused access")],
    "access.not_found": lambda e: [e.actor, _t(" asked for a record that does not exist")],
    "access.tenant_not_found": lambda e: [e.actor, _t(" asked for an unknown organisation")],
}


def _partner(e: _Event, verb: str) -> list[Part]:
    """ "A (Quillon Tx) accepted the partner relationship with quillon-tx", in both trails."""
    return [e.actor, _t(f" {verb} the partner relationship with {e.value('partner')}")]


def _generic(e: _Event) -> list[Part]:
    return [e.actor, _t(f" did {e.row.action} on {label(e.row.entity_type).lower()} "), e.entity()]


def _values(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    loaded = json.loads(text)
    return loaded if isinstance(loaded, dict) else {"value": loaded}


def shown(value: Any) -> str:
    """A stored value as text a reviewer reads (lists joined, keys labelled, no JSON)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(shown(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{label(k)}: {shown(v)}" for k, v in value.items())
    return NAMES.get(value, value) if isinstance(value, str) else str(value)


def _changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[Change, ...]:
    keys = list(dict.fromkeys([*old, *new]))
    return tuple(
        Change(label(k), shown(old.get(k)) if k in old else "", shown(new.get(k)))
        for k in keys
        if k not in new or old.get(k) != new.get(k) or k not in old
    )


def references(rows: Iterable[AuditRow]) -> dict[str, set[str]]:
    """The ids a page of events names, by entity type (its entities and referenced ids)."""
    wanted: dict[str, set[str]] = {}
    for row in rows:
        wanted.setdefault(row.entity_type, set()).add(row.entity_id)
        for values in (_values(row.old_values), _values(row.new_values)):
            for key, kind in _REFERENCES.items():
                if isinstance(values.get(key), str):
                    wanted.setdefault(kind, set()).add(values[key])
    return wanted


async def describe(ctx: TenantContext, rows: list[AuditRow]) -> list[Sentence]:
    """A page of events as sentences, with every entity named in one query per type."""
    names: dict[tuple[str, str], Named] = {}
    for kind, ids in references(rows).items():
        resolver = _RESOLVERS.get(kind)
        if resolver is not None and ids:
            for ident, named in (await resolver(ctx, sorted(ids))).items():
                names[(kind, ident)] = named
    sentences = []
    for row in rows:
        event = _Event(row, _values(row.old_values), _values(row.new_values), names)
        parts = [p for p in SENTENCES.get(row.action, _generic)(event) if p.text]
        sentences.append(Sentence(row, tuple(parts), _changes(event.old, event.new)))
    return sentences


def action_names() -> list[tuple[str, str]]:
    """The actions a filter offers: (action, how it reads), in a stable order."""
    return [(action, label(action.replace(".", " "))) for action in sorted(SENTENCES)]
