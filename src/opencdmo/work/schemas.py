"""API structs of the work queues."""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct


class QueueItemOut(Struct):
    label: str
    link: str  # the page to act on it, a path of this site
    when: datetime | None
    who: str | None
    note: str | None


class QueueOut(Struct):
    key: str
    title: str
    count: int  # the whole queue; ``items`` holds its first ones
    awaits_action: bool  # its items count in ``awaiting_action``
    empty: str
    items: list[QueueItemOut]


class WorkOut(Struct):
    awaiting_action: int  # the notification count: items awaiting the caller's action
    queues: list[QueueOut]
