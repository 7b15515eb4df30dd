"""Batch number patterns: checked when the manifest is loaded, formatted in one function."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from opencdmo.tenancy.batch_numbering import (
    DEFAULT_PATTERN,
    Parts,
    counter_key,
    format_number,
    problem,
)
from opencdmo.tenancy.manifest import ManifestError, load


@pytest.mark.parametrize(
    ("pattern", "number"),
    [
        ("{site}-{yy}-{seq:04}", "LCG-BOS-26-0007"),
        ("{yyyy}/{site}/{seq}", "2026/LCG-BOS/7"),
        ("B{seq:06}", "B000007"),
        ("{site}.{seq:02}", "LCG-BOS.07"),
    ],
)
def test_format(pattern: str, number: str) -> None:
    assert problem(pattern) is None
    assert format_number(pattern, Parts("LCG-BOS", date(2026, 3, 1), 7)) == number


def test_a_counter_wider_than_its_width_keeps_every_digit() -> None:
    assert format_number("{seq:02}", Parts("A1", date(2026, 1, 1), 12345)) == "12345"


def test_the_counter_key_is_the_number_without_its_counter() -> None:
    day = date(2026, 3, 1)
    assert counter_key(DEFAULT_PATTERN, "A1", day) == "A1-26-{seq}"
    assert counter_key(DEFAULT_PATTERN, "A1", date(2027, 1, 1)) != counter_key(
        DEFAULT_PATTERN, "A1", day
    )
    assert counter_key("B{seq:06}", "A1", day) == counter_key("B{seq:06}", "A2", day)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{site}-{month}-{seq}", "unknown placeholder {month}"),
        ("{site}-{yy}", "exactly one {seq}"),
        ("{seq}-{seq:03}", "exactly one {seq}"),
        ("{seq:3}", "unknown placeholder {seq:3}"),
        ("{seq:00}", "unknown placeholder"),
        ("{site} {seq}", "only letters"),
        ("", "1 to 100"),
        ("x" * 101 + "{seq}", "1 to 100"),
    ],
)
def test_bad_patterns(pattern: str, message: str) -> None:
    found = problem(pattern)
    assert found is not None and message in found


def _manifest(tmp_path: Path, extra: str) -> Path:
    folder = tmp_path / "acme-cdmo"
    folder.mkdir()
    path = folder / "tenant.yaml"
    path.write_text(f"name: Acme\nkind: cdmo\n{extra}", encoding="utf-8")
    return path


def test_the_manifest_gives_the_pattern_or_the_default(tmp_path: Path) -> None:
    assert load(_manifest(tmp_path, "")).batch_number_pattern == DEFAULT_PATTERN
    other = tmp_path / "other"
    other.mkdir()
    given = load(_manifest(other, 'batch_number_pattern: "{yyyy}-{seq:05}"\n'))
    assert given.batch_number_pattern == "{yyyy}-{seq:05}"


def test_the_manifest_refuses_an_unknown_placeholder(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"batch_number_pattern: unknown placeholder \{lot\}"):
        load(_manifest(tmp_path, 'batch_number_pattern: "{lot}-{seq}"\n'))


def test_the_shipped_cdmo_manifest_has_a_pattern() -> None:
    root = Path(__file__).resolve().parents[2] / "tenants" / "larkspur-cdmo" / "tenant.yaml"
    assert load(root).batch_number_pattern == "{site}-{yy}-{seq:04}"
