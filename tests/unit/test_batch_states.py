"""The ISA-88 state machine of a batch: the table as the standard gives it, and properties
over any sequence of commands."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdmo.batches.states import COMMANDS, FINAL, STATES, allowed, transition
from opencdmo.errors import AppError, Conflict, ValidationFailed

# (command, source states, target): ISA-88 / PackML semantics, written out independently.
EXPECTED = {
    "start": ({"idle"}, "running"),
    "hold": ({"running", "paused"}, "held"),
    "restart": ({"held"}, "running"),
    "pause": ({"running"}, "paused"),
    "resume": ({"paused"}, "running"),
    "stop": ({"running", "held", "paused"}, "stopped"),
    "abort": ({"idle", "running", "held", "paused"}, "aborted"),
    "complete": ({"running"}, "complete"),
}


def test_the_table_is_the_isa88_one() -> None:
    assert {n: (set(c.sources), c.target) for n, c in COMMANDS.items()} == EXPECTED
    assert set(STATES) == {"idle", "running", "held", "paused", "stopped", "aborted", "complete"}
    assert {"stopped", "aborted", "complete"} == FINAL


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_every_command_in_every_state(state: str, command: str) -> None:
    sources, target = EXPECTED[command]
    if state in sources:
        assert transition(state, command) == target
        assert command in allowed(state)
        return
    with pytest.raises(Conflict) as refused:
        transition(state, command)
    assert f"This batch is {state.capitalize()}" in refused.value.message
    for needed in sources:
        assert needed.capitalize() in refused.value.message
    assert command not in allowed(state)


def test_an_unknown_command_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="not a batch command"):
        transition("running", "reset")


commands = st.lists(st.sampled_from([*EXPECTED, "reset", "jump"]), max_size=40)


@given(commands)
def test_any_sequence_keeps_the_batch_in_a_state(sequence: list[str]) -> None:
    state = "idle"
    for command in sequence:
        before = state
        try:
            state = transition(state, command)
        except AppError:
            assert state == before, "a refused command changes nothing"
            continue
        assert before not in FINAL, "a final state never moves"
        assert state in STATES


@given(st.sampled_from(sorted(FINAL)), commands)
def test_final_states_never_move(final: str, sequence: list[str]) -> None:
    for command in sequence:
        with pytest.raises(AppError):
            transition(final, command)
    assert allowed(final) == []
