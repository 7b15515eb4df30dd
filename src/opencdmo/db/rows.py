"""Typed rows from Piccolo's result dictionaries: the columns a row type names, and the row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from piccolo.columns import Column
from piccolo.table import Table

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


def columns(table: type[Table], row_type: type[DataclassInstance]) -> tuple[Column, ...]:
    """The table's columns named like the row's fields, in their order."""
    return tuple(getattr(table, f.name) for f in fields(row_type))


def typed(row_type: type[R], raw: Mapping[str, Any]) -> R:
    return row_type(**{f.name: raw[f.name] for f in fields(row_type)})
