"""Structural diff of two versions of a HUB item (or of two recipes): what was added, removed,
changed or moved, by meaning (phases, parameters, ranges, materials, equipment), not by text.

Lists of records are matched by their key (a phase by ``key``, a material line by
``material``...), lists of plain values as sets, mappings field by field. A record whose
position among the records both versions share differs is reported as moved. A step that
went to another unit procedure is one move (old and new: the procedures), not a removal and
an addition: steps are matched by key across their parents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# The field that identifies a record in each list of records.
RECORD_KEYS = {
    "phases": "key",
    "parameters": "key",
    "data_capture": "key",
    "materials": "material",
    "unit_procedures": "key",
    "operations": "key",
    "sampling_points": "key",
    "release_specifications": "attribute",
    "result_fields": "key",
    "acceptance_criteria": "field",
    "typical_signals": "key",
    "formulas": "name",
}
# Records whose key is unique across their parents, so they can move from one to another.
MOVABLE = frozenset({"operations"})
_IN_LIST = re.compile(r"^(?P<parent>.*)\.(?P<list>\w+)\[(?P<ident>[^\[\]]*)\]$")
# Publication metadata, shown beside a diff rather than in it.
IGNORED = frozenset({"version", "changelog"})


@dataclass(frozen=True, order=True)
class Change:
    op: str  # added, removed, changed, moved
    path: str
    old: Any = None
    new: Any = None

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0].split("[", 1)[0]


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    changes: list[Change] = []
    _mapping(old, new, "", changes, top=True)
    return sorted(_moves_between_parents(changes), key=lambda c: (c.path, c.op))


def _moves_between_parents(changes: list[Change]) -> list[Change]:
    """Pair a removal and an addition of the same movable record under different parents
    into one move, followed by the changes within the record."""
    ends: dict[tuple[str, str, str], list[tuple[Change, str]]] = {}
    for change in changes:
        match = _IN_LIST.match(change.path)
        if change.op in ("added", "removed") and match and match["list"] in MOVABLE:
            key = (change.op, match["list"], match["ident"])
            ends.setdefault(key, []).append((change, match["parent"]))
    result = list(changes)
    for (op, name, ident), removals in ends.items():
        additions = ends.get(("added", name, ident), [])
        if op != "removed" or len(removals) != 1 or len(additions) != 1:
            continue
        (gone, old_parent), (came, new_parent) = removals[0], additions[0]
        result.remove(gone)
        result.remove(came)
        result.append(Change("moved", came.path, old_parent, new_parent))
        _mapping(gone.old, came.new, came.path, result)
    return result


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _mapping(
    old: dict[str, Any], new: dict[str, Any], prefix: str, out: list[Change], top: bool = False
) -> None:
    for name in sorted(set(old) | set(new)):
        if top and name in IGNORED:
            continue
        path = _join(prefix, name)
        if name not in new:
            out.append(Change("removed", path, old[name], None))
        elif name not in old:
            out.append(Change("added", path, None, new[name]))
        else:
            _value(name, old[name], new[name], path, out)


def _value(name: str, old: Any, new: Any, path: str, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        _mapping(old, new, path, out)
    elif isinstance(old, list) and isinstance(new, list) and name in RECORD_KEYS:
        _records(RECORD_KEYS[name], old, new, path, out)
    elif isinstance(old, list) and isinstance(new, list) and _plain(old) and _plain(new):
        _values(old, new, path, out)
    elif old != new:
        out.append(Change("changed", path, old, new))


def _plain(values: list[Any]) -> bool:
    return all(not isinstance(v, dict | list) for v in values)


def _values(old: list[Any], new: list[Any], path: str, out: list[Change]) -> None:
    for value in sorted(set(new) - set(old), key=str):
        out.append(Change("added", f"{path}[{value}]", None, value))
    for value in sorted(set(old) - set(new), key=str):
        out.append(Change("removed", f"{path}[{value}]", value, None))


def _records(
    key: str, old: list[dict[str, Any]], new: list[dict[str, Any]], path: str, out: list[Change]
) -> None:
    before = {str(r.get(key)): r for r in old}
    after = {str(r.get(key)): r for r in new}
    for ident, record in after.items():
        if ident not in before:
            out.append(Change("added", f"{path}[{ident}]", None, record))
    for ident, record in before.items():
        if ident not in after:
            out.append(Change("removed", f"{path}[{ident}]", record, None))
    shared_before = [i for i in before if i in after]
    shared_after = [i for i in after if i in before]
    for index, ident in enumerate(shared_after):
        if shared_before.index(ident) != index:
            out.append(Change("moved", f"{path}[{ident}]", shared_before.index(ident), index))
    for ident in shared_after:
        _mapping(before[ident], after[ident], f"{path}[{ident}]", out)
