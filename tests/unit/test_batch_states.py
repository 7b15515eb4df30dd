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


# --- a procedural element's state from its phases' (operations and unit procedures) --------

phase_states = st.lists(st.sampled_from(STATES), min_size=1, max_size=12)


@given(phase_states)
def test_an_element_is_in_one_of_the_seven_states(children: list[str]) -> None:
    from opencdmo.batches.record import rollup

    assert rollup(children) in STATES


@given(phase_states)
def test_an_element_runs_while_any_phase_runs_and_is_complete_when_all_are(
    children: list[str],
) -> None:
    from opencdmo.batches.record import rollup

    found = rollup(children)
    if "running" in children:
        assert found == "running"
    if set(children) == {"complete"}:
        assert found == "complete"
    if set(children) == {"idle"}:
        assert found == "idle"
    if found == "complete":
        assert set(children) == {"complete"}
    if found in ("held", "paused"):
        assert found in children and "running" not in children


@given(phase_states, st.sampled_from(sorted(COMMANDS)))
def test_a_phase_command_moves_one_phase_and_the_element_follows(
    children: list[str], command: str
) -> None:
    """Any phase command the table allows keeps the element in a state; one refused leaves
    the phases as they were."""
    from opencdmo.batches.record import rollup

    moved = list(children)
    try:
        moved[0] = transition(children[0], command)
    except Conflict:
        assert moved == children
    assert rollup(moved) in STATES
