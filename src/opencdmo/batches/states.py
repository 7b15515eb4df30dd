"""The ISA-88 procedural state machine of a batch: one table, the only place that says which
command moves which state where.

The transient states of ISA-88 (Holding, Restarting, Pausing, Stopping, Aborting) are not
held here: a command completes its transition in the transaction that gives it, so a batch is
always in one of the seven resting states. Stopped, Aborted and Complete are final: ISA-88's
Reset (back to Idle) is not offered, because a batch record that ended stays ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from opencdmo.errors import Conflict, ValidationFailed

IDLE, RUNNING, HELD, PAUSED = "idle", "running", "held", "paused"
STOPPED, ABORTED, COMPLETE = "stopped", "aborted", "complete"
STATES = (IDLE, RUNNING, HELD, PAUSED, STOPPED, ABORTED, COMPLETE)
FINAL = frozenset({STOPPED, ABORTED, COMPLETE})
STATE_NAMES = {s: s.capitalize() for s in STATES}


@dataclass(frozen=True)
class Command:
    """A command, the states it may be given in, the state it leads to, and whether it needs
    a reason (the commands that interrupt or end a batch)."""

    name: str
    sources: tuple[str, ...]
    target: str
    needs_reason: bool = False


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("start", (IDLE,), RUNNING),
        Command("hold", (RUNNING, PAUSED), HELD, needs_reason=True),
        Command("restart", (HELD,), RUNNING),
        Command("pause", (RUNNING,), PAUSED, needs_reason=True),
        Command("resume", (PAUSED,), RUNNING),
        Command("stop", (RUNNING, HELD, PAUSED), STOPPED, needs_reason=True),
        Command("abort", tuple(s for s in STATES if s not in FINAL), ABORTED, needs_reason=True),
        Command("complete", (RUNNING,), COMPLETE),
    )
}


def allowed(state: str) -> list[str]:
    """The commands that may be given in ``state``, in the table's order."""
    return [c.name for c in COMMANDS.values() if state in c.sources]


def command_named(command: str) -> Command:
    """The command of that name; a 422 listing the commands otherwise."""
    step = COMMANDS.get(command)
    if step is None:
        raise ValidationFailed(
            f"'{command[:40]}' is not a batch command; the commands are {', '.join(COMMANDS)}.",
            details={"field": "command"},
        )
    return step


def transition(state: str, command: str) -> str:
    """The state ``command`` leads to from ``state``; a 409 naming the state and the states
    the command needs when it may not be given now (an unknown command is a 422)."""
    step = command_named(command)
    if state not in step.sources:
        needs = " or ".join(STATE_NAMES[s] for s in step.sources)
        raise Conflict(
            f"This batch is {STATE_NAMES.get(state, state)}: '{command}' needs it {needs}.",
            details={"status": state, "command": command, "needs": list(step.sources)},
        )
    return step.target


class _Stated(Protocol):
    @property
    def status(self) -> str: ...


S = TypeVar("S", bound=_Stated)


def current(elements: Sequence[S]) -> S | None:
    """The element to work on, in recipe order: the running one, else the first that has not
    ended (None: every one has)."""
    running = next((e for e in elements if e.status == RUNNING), None)
    return running or next((e for e in elements if e.status not in FINAL), None)
