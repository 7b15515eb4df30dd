"""The rules of the storage tree and of putting containers in it, for the commands that do
(receiving a lot, moving containers): they run in the command's open unit of work.

The tree goes site > room > storage unit (freezer, fridge, incubator, shelf, LN2 tank) >
rack > box > position; a box may also stand in a storage unit without a rack. Containers are
stored anywhere below a site; a position holds one container at most. A location that
keeps another storage condition than the material's is allowed (a warning, not a refusal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

from opencdmo.errors import Conflict, NotFound, ValidationFailed
from opencdmo.inventory import location_queries as lq
from opencdmo.inventory.location_queries import LocationRow, NewMove, Place
from opencdmo.labels import label

UNITS: Final = ("freezer", "fridge", "incubator", "shelf", "ln2_tank")
KINDS: Final = ("site", "room", *UNITS, "rack", "box", "position")
# The kinds each kind may stand in.
PARENTS: Final[dict[str, tuple[str, ...]]] = {
    "site": (),
    "room": ("site",),
    **dict.fromkeys(UNITS, ("room",)),
    "rack": UNITS,
    "box": ("rack", *UNITS),
    "position": ("box",),
}


def kind_name(kind: str) -> str:
    return label(kind).lower() if kind != "ln2_tank" else "LN2 tank"


def check_parent(kind: str, parent: LocationRow | None) -> None:
    """A 422 unless a ``kind`` may stand in ``parent`` (nothing: a site's root)."""
    if kind not in KINDS:
        raise ValidationFailed(
            f"kind: must be one of {', '.join(KINDS)}.", details={"field": "kind"}
        )
    allowed = PARENTS[kind]
    if parent is None and allowed:
        raise ValidationFailed(
            f"A {kind_name(kind)} stands in a {' or '.join(kind_name(k) for k in allowed)}: "
            "choose where.",
            details={"field": "parent_id"},
        )
    if parent is not None and parent.kind not in allowed:
        where = (
            f"in a {' or '.join(kind_name(k) for k in allowed)}"
            if allowed
            else "at the top of the tree"
        )
        raise ValidationFailed(
            f"A {kind_name(kind)} stands {where}, not in a {kind_name(parent.kind)} "
            f"({parent.name}).",
            details={"field": "kind"},
        )


def same_condition(a: str, b: str) -> bool:
    """Whether two storage conditions say the same ("2-8 °C", "2–8°C")."""

    def plain(text: str) -> str:
        return "".join(text.replace("–", "-").replace("−", "-").replace("°", "").split()).casefold()

    return plain(a) == plain(b)


def condition_warning(material_code: str, wanted: str, place: Place) -> str | None:
    """What to warn of when the material is kept otherwise than the place keeps (none when
    either says nothing, or both say the same)."""
    if not wanted or not place.condition or same_condition(wanted, place.condition):
        return None
    return f"{material_code} is stored at {wanted}; {place.path} keeps {place.condition}."


@dataclass(frozen=True)
class Put:
    """Containers put at a location: where it is, and where each container was."""

    location: LocationRow
    place: Place
    before: dict[UUID, UUID | None]


async def put(
    tenant_id: UUID,
    actor: UUID,
    location_id: UUID,
    container_ids: list[UUID],
    reason: str | None,
) -> Put:
    """Put the containers at the location and record each move, the location and the
    containers row-locked (the location first, so that two people filling one position
    queue for it). Refuses a retired location, a site's root, a container already there and
    a second container in a position."""
    wanted = list(dict.fromkeys(container_ids))
    location = await lq.location(location_id, lock=True)
    place = (await lq.places([location.id]))[location.id]
    _can_hold(location, place, len(wanted))
    locked = dict(await lq.lock_containers(wanted))
    if len(locked) != len(wanted):
        raise NotFound("No such container.")
    already = [c for c in wanted if locked[c] == location.id]
    if already:
        names = await lq.container_labels(already)
        raise Conflict(
            f"{', '.join(names[str(c)] for c in already).capitalize()} "
            f"{'is' if len(already) == 1 else 'are'} in {place.path} already.",
            details={"container_ids": [str(c) for c in already]},
        )
    if location.kind == "position" and await lq.held_at(location.id):
        raise Conflict(
            f"Position {place.path} holds a container already: a position holds one.",
            details={"location_id": str(location.id)},
        )
    await lq.set_location(wanted, location.id)
    await lq.insert_moves(
        tenant_id, [NewMove(c, locked[c], location.id, reason) for c in wanted], actor
    )
    return Put(location, place, {c: locked[c] for c in wanted})


def _can_hold(location: LocationRow, place: Place, count: int) -> None:
    if location.retired_at is not None:
        raise Conflict(f"{place.path} is retired: nothing is stored there any more.")
    if location.kind == "site":
        raise ValidationFailed(
            f"{place.path} is a site: a container is stored in a room, storage unit, rack, "
            "box or position of it.",
            details={"field": "location_id"},
        )
    if location.kind == "position" and count > 1:
        raise ValidationFailed(
            f"A position holds one container: {count} cannot go into {place.path}.",
            details={"field": "container_ids"},
        )
