"""The flow diagram's layout: labels wrap into their boxes by words and are never cut."""

from __future__ import annotations

import itertools
from typing import Any

from opencdmo.recipes import mbr
from opencdmo.recipes.mbr import BOX_W, PAD_X, flow, text_width, wrap

LINE_WIDTH = BOX_W - 2 * PAD_X


def _content(*procedures: tuple[str, list[str]]) -> dict[str, Any]:
    return {
        "unit_procedures": [
            {
                "key": f"up{i}",
                "name": name,
                "operations": [{"key": key} for key in steps],
            }
            for i, (name, steps) in enumerate(procedures)
        ]
    }


def _unhyphenated(lines: tuple[str, ...]) -> str:
    """The lines joined back: a hyphen the wrapping added joins without a space."""
    text = ""
    for line in lines:
        text = text[:-1] + line if text.endswith("-") else f"{text} {line}" if text else line
    return text


def test_a_long_name_wraps_by_words_into_the_box() -> None:
    name = "Magnetic bead activation of T cells with anti-CD3/CD28 beads in a closed system"
    lines = wrap(name, LINE_WIDTH, 12)
    assert len(lines) > 1
    assert " ".join(lines) == name  # broken between words only, nothing lost
    assert all(text_width(line, 12) <= LINE_WIDTH for line in lines)


def test_one_word_longer_than_the_box_is_broken_with_a_hyphen() -> None:
    word = "Pneumonoultramicroscopicsilicovolcanoconiosisfiltration"
    lines = wrap(f"Run {word} now", LINE_WIDTH, 12)
    assert lines[0] == "Run"  # the short word is not joined to a piece of the long one
    assert len(lines) >= 3
    assert all(line.endswith("-") for line in lines[1:-1])  # the pieces of the long word
    assert lines[-1].endswith("filtration now")  # its rest shares a line with the next word
    assert _unhyphenated(lines) == f"Run {word} now"
    assert all(text_width(line, 12) <= LINE_WIDTH for line in lines)


def test_a_short_name_stays_on_one_line() -> None:
    assert wrap("Thaw", LINE_WIDTH, 12) == ("Thaw",)


def test_boxes_grow_to_their_lines_and_never_overlap() -> None:
    long = "x" * 10
    content = _content(
        ("Starting material and apheresis receipt with incoming inspection", ["a", "b"]),
        ("Expansion", [f"step_{i}_" + long for i in range(12)]),
    )
    content["unit_procedures"][0]["operations"][0]["key"] = (
        "an_extremely_long_step_key_that_is_one_word_without_spaces"
    )
    diagram = flow(content, {})
    boxes = diagram.boxes
    assert len(boxes) == 2 + 2 + 12
    for box in boxes:
        assert box.lines, box
        assert _unhyphenated(box.lines) == box.label  # every label whole
        size = mbr.FONT[box.kind]
        assert all(
            text_width(line, size, box.kind == "procedure") <= LINE_WIDTH for line in box.lines
        )
        assert box.height >= 2 * mbr.PAD_Y + len(box.lines) * mbr.LINE[box.kind]
        assert box.text_top >= box.y
        assert box.x + BOX_W <= diagram.width and box.y + box.height <= diagram.height
    tall = next(b for b in boxes if b.key.startswith("an_extremely"))
    assert len(tall.lines) > 1 and tall.height > mbr.BOX_H
    heads = [b for b in boxes if b.kind == "procedure"]
    assert heads[0].height == heads[1].height > mbr.HEAD  # the wrapped head sets both
    for column in {b.x for b in boxes}:
        stacked = sorted((b for b in boxes if b.x == column), key=lambda b: b.y)
        for upper, lower in itertools.pairwise(stacked):
            assert upper.y + upper.height < lower.y


def test_arrows_leave_the_bottom_of_a_grown_box() -> None:
    content = _content(("Harvest", ["a_very_long_key_that_wraps_across_several_lines_x", "b"]))
    diagram = flow(content, {})
    first, second = diagram.boxes[1], diagram.boxes[2]
    assert diagram.arrows == [
        (first.x + BOX_W // 2, first.y + first.height, second.x + BOX_W // 2, second.y)
    ]
