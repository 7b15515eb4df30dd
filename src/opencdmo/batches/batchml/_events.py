"""The record's ``Events``, in time order: the target start, the state changes of the batch
and of each procedural element, the entries, the exceptions, the deviations and the chain of
custody. Each is one BatchML ``Event`` (``SingleEventType``); what the event vocabulary has no
code for is 'Other' with its ``OtherValue``, and fields with no element of their own are
``UserAttribute``s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from opencdmo.batches.batchml._procedure import PROCEDURE, Element, References
from opencdmo.batches.batchml._xml import (
    EVENT_SUB_TYPES,
    EVENT_TYPES,
    Val,
    coded,
    el,
    record_head,
    state_name,
)
from opencdmo.batches.batchml.model import (
    BatchHeader,
    BatchRecordDoc,
    CustodyEvent,
    Deviation,
    Entry,
    ExceptionRecord,
    MaterialEvent,
)

# Where an entry's value came from, as an event type and subtype.
_SOURCE_EVENTS = {
    "manual": ("Operator", "Prompt Response"),
    "equipment": ("Equipment", "Process Data"),
    "calculated": ("General", "Process Data"),
}


@dataclass(frozen=True)
class Event:
    """One BatchML event; the fields are in the schema's order."""

    entry_id: str
    time: datetime | None
    event_type: str
    sub_type: str
    reference: str | None = None
    descriptions: tuple[str, ...] = ()
    values: tuple[Val, ...] = ()
    previous: tuple[Val, ...] = ()
    messages: tuple[str, ...] = ()
    persons: tuple[str, ...] = ()
    element: str | None = None
    categories: tuple[str, ...] = ()
    alarm: tuple[str, str, str] | None = None
    associated: str | None = None
    attributes: tuple[tuple[str, Val], ...] = ()

    def add(self, parent: etree._Element) -> None:
        node = el(parent, "Event")
        record_head(node, self.entry_id, "Event", self.time, self.reference, self.descriptions)
        coded(node, "EventType", self.event_type, EVENT_TYPES)
        coded(node, "EventSubType", self.sub_type, EVENT_SUB_TYPES)
        for value in self.values:
            value.add(node, "Value")
        for value in self.previous:
            value.add(node, "PreviousValue")
        for text in self.messages:
            el(node, "MessageText", text)
        for person in self.persons:
            el(node, "PersonID", person)
        if self.element is not None:
            el(node, "ProceduralElementReference", self.element)
        for category in self.categories:
            el(node, "Category", category)
        if self.alarm is not None:
            self._add_alarm(node, *self.alarm)
        if self.associated is not None:
            el(node, "AssociatedEventID", self.associated)
        for key, value in self.attributes:
            attribute = el(node, "UserAttribute")
            el(attribute, "AttributeID", key)
            value.add(attribute, "Value")

    @staticmethod
    def _add_alarm(node: etree._Element, event: str, kind: str, priority: str) -> None:
        alarm = el(node, "AlarmData")
        el(alarm, "AlarmEvent", event)
        el(alarm, "AlarmType", kind)
        el(alarm, "Priority", priority)


def events(doc: BatchRecordDoc, root: Element) -> list[Event]:
    """Every event of the record, oldest first (one without a time first of all)."""
    refs = References(root)
    found = [
        _target_start(doc.header),
        *_state_changes(root),
        *_entries(doc.entries, refs),
        *(_exception(exception, refs) for exception in doc.exceptions),
        *(_deviation(deviation) for deviation in doc.deviations),
        *(_custody(n, held) for n, held in enumerate(doc.custody, start=1)),
        *(_material(used, refs) for used in doc.materials),
    ]
    return sorted(found, key=lambda e: (e.time is not None, e.time.timestamp() if e.time else 0))


def _target_start(head: BatchHeader) -> Event:
    return Event(
        f"{PROCEDURE}:target-start",
        head.created_at,
        "Control Recipe",
        "Target Start Time",
        descriptions=("Planned start",),
        values=(Val(head.planned_start, key="planned_start"),),
        element=PROCEDURE,
    )


def _state_changes(root: Element) -> Iterator[Event]:
    """For each element: Running when it started, its state when it ended."""
    for part in root.walk():
        moves = (("started", part.started_at, "running"), ("ended", part.ended_at, part.state))
        for what, time, state in moves:
            if time is not None:
                yield Event(
                    f"{part.id}:{what}",
                    time,
                    "Procedural Execution",
                    "State Change",
                    descriptions=(f"{part.name} {what}",),
                    values=(Val(state_name(state), key="state"),),
                    element=part.id,
                )


def _entries(entries: tuple[Entry, ...], refs: References) -> Iterator[Event]:
    by_id = {str(entry.id): entry for entry in entries}
    superseded_by = {str(e.supersedes): str(e.id) for e in entries if e.supersedes is not None}
    for entry in entries:
        prior = by_id.get(str(entry.supersedes)) if entry.supersedes is not None else None
        yield _entry(entry, prior, superseded_by.get(str(entry.id)), refs)


def entry_value(entry: Entry) -> Val:
    return Val(entry.value, entry.unit, entry.field_key)


def _entry(entry: Entry, prior: Entry | None, later: str | None, refs: References) -> Event:
    """An entry: its value, the value it corrects, who, where and its check."""
    event_type, sub_type = _SOURCE_EVENTS.get(entry.source, (entry.source, "Process Data"))
    attributes = [("check", Val(entry.check))]
    if entry.device_time is not None:
        attributes.append(("device_time", Val(entry.device_time)))
    if later is not None:
        attributes.append(("superseded_by", Val(later)))
    return Event(
        str(entry.id),
        entry.entered_at,
        event_type,
        sub_type,
        descriptions=(entry.field_name,),
        values=(entry_value(entry),),
        previous=(entry_value(prior),) if prior is not None else (),
        messages=(entry.reason,) if entry.reason else (),
        persons=(entry.entered_by,),
        element=refs.of(entry.step, entry.phase),
        categories=(entry.source,),
        associated=str(entry.supersedes) if entry.supersedes is not None else None,
        attributes=tuple(attributes),
    )


def _exception(exception: ExceptionRecord, refs: References) -> Event:
    """An exception as an active alarm of its kind and severity (its disposition is a
    comment on it)."""
    step = exception.step
    return Event(
        str(exception.id),
        exception.raised_at,
        "Alarm",
        "Exception",
        descriptions=(exception.kind,),
        messages=(exception.message,),
        element=refs.of(step, exception.phase) if step else None,
        alarm=("Active", exception.kind, exception.severity),
    )


def _deviation(deviation: Deviation) -> Event:
    """A deviation, its number the reference to the quality system's record."""
    closed = deviation.closed_at
    return Event(
        str(deviation.id),
        deviation.opened_at,
        "Deviation",
        "Status Change",
        reference=deviation.number,
        descriptions=(deviation.description,),
        values=(Val(deviation.status, key="status"),),
        categories=(deviation.classification,),
        attributes=(("closed_at", Val(closed)),) if closed is not None else (),
    )


def _custody(number: int, held: CustodyEvent) -> Event:
    """A link of the chain of custody: who held the material, where, from when (until when)."""
    until = held.to_at
    return Event(
        f"custody-{number}",
        held.from_at,
        "Material",
        "Movement",
        descriptions=(f"Held by {held.holder} at {held.location}",),
        values=(Val(held.location, key="location"),),
        persons=(held.holder,),
        attributes=(("held_until", Val(until)),) if until is not None else (),
    )


def _material(event: MaterialEvent, refs: References) -> Event:
    """A lot's container used in a step (Material / Consume), or a lot a step made (Material /
    Produce): the quantity in its UCUM unit, the lot as the reference."""
    where = f", container {event.container}" if event.container is not None else ""
    verb = "Used" if event.kind == "Consume" else "Made"
    return Event(
        str(event.id),
        event.at,
        "Material",
        event.kind,
        reference=event.lot_number,
        descriptions=(f"{verb} lot {event.lot_number} of {event.material}{where}",),
        values=(Val(event.quantity, unit=event.unit, key=event.material),),
        persons=(event.person,) if event.person else (),
        element=refs.of(event.step),
        attributes=(("lot_id", Val(str(event.lot_id))),),
    )
