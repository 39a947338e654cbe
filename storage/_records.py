"""Rows to records and back: helpers every repository shares."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    Table,
    bindparam,
)

T = TypeVar("T")


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were stored as UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """A record class's field names (cached: dataclasses.fields is slow)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELD_NAMES[cls] = names
    return names


def fields_of(record: Any) -> dict[str, Any]:
    """A record's fields as a dict (shallow: dataclasses.asdict deep-copies)."""
    return {name: getattr(record, name) for name in field_names(type(record))}


def utc_now() -> datetime:
    return datetime.now(UTC)


def record_from_row(cls: type[T], row: Any, **extra: Any) -> T:
    """Build a record dataclass from a SQLAlchemy row, taking the fields the class has."""
    mapping = row._mapping
    values: dict[str, Any] = {}
    for name in field_names(cls):
        if name in extra:
            values[name] = extra[name]
        elif name in mapping:
            value = mapping[name]
            if isinstance(value, datetime):
                value = utc(value)
            elif isinstance(value, memoryview):
                value = bytes(value)
            values[name] = value
    return cls(**values)


def record_columns(table: Table, cls: type) -> list[Column[Any]]:
    """The table's columns that a record class has, in the class's field order."""
    return [table.c[name] for name in field_names(cls) if name in table.c]


def in_list(column: Column[Any], prefix: str, n: int) -> Any:
    """``column IN (:prefix0, :prefix1, …)`` with one bound parameter per item."""
    return column.in_([bindparam(f"{prefix}{i}") for i in range(n)])


def in_values(prefix: str, items: Sequence[Any]) -> dict[str, Any]:
    return {f"{prefix}{i}": item for i, item in enumerate(items)}


def check_positional(table: Table, cls: type, extra: tuple[str, ...] = ()) -> None:
    """Records are built positionally from rows: every field must be a column."""
    missing = [n for n in field_names(cls) if n not in table.c and n not in extra]
    if missing:
        raise RuntimeError(f"{cls.__name__} fields without a column: {missing}")
