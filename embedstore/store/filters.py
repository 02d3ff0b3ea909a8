"""Metadata filters: the ``where`` dict compiled to one SQL condition on ``items``.

``{"field": value}`` is equality on user metadata; ``{"field": {"gte": 1, "lt": 5}}`` a range
(also ``gt``, ``lte``, ``ne``, ``in``); ``{"uri": {"prefix": "/photos/"}}`` and
``{"uri": {"glob": "*.jpg"}}`` match the URI; ``modality``, ``size``, ``mtime``,
``content_hash``, ``status`` and ``id`` address the item's own columns. ``"metadata.size"``
reaches a metadata key that shares its name with a column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_, true

from embedstore.errors import InvalidQuery
from embedstore.store.tables import items

COLUMNS = ("uri", "modality", "size", "mtime", "content_hash", "status", "id")
_RANGE = {"gt", "gte", "lt", "lte", "ne", "in", "eq"}
_URI_OPS = {"prefix", "glob"}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_to_like(pattern: str) -> str:
    """Translate a shell glob (``*``, ``?``) to a SQL LIKE pattern with ``\\`` as escape."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(_like_escape(ch))
    return "".join(out)


def _typed(column: Any, value: Any, field: str, is_meta: bool) -> Any:
    """The column expression cast for comparison with ``value``."""
    if not is_meta:
        return column
    if isinstance(value, bool):
        return column.as_boolean()
    if isinstance(value, int | float):
        return column.as_float()
    if isinstance(value, str):
        return column.as_string()
    raise InvalidQuery(
        f"where[{field!r}]: unsupported value {value!r} (use str, number or bool)", field=field
    )


def _compare(column: Any, op: str, value: Any, field: str, is_meta: bool) -> ColumnElement[bool]:
    if op == "in":
        if not isinstance(value, list | tuple) or not value:
            raise InvalidQuery(f"where[{field!r}]['in'] must be a non-empty list", field=field)
        return or_(*(_compare(column, "eq", v, field, is_meta) for v in value))
    if value is None and op in ("eq", "ne"):
        cond = column.is_(None) if not is_meta else column.as_string().is_(None)
        return cond if op == "eq" else not_(cond)
    expr = _typed(column, value, field, is_meta)
    ops = {
        "eq": expr.__eq__,
        "ne": expr.__ne__,
        "gt": expr.__gt__,
        "gte": expr.__ge__,
        "lt": expr.__lt__,
        "lte": expr.__le__,
    }
    return ops[op](value)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Filter:
    """A parsed ``where`` dict; :attr:`condition` is a SQL expression over ``items``."""

    where: Mapping[str, Any]
    condition: ColumnElement[bool]

    @classmethod
    def parse(cls, where: Mapping[str, Any] | None) -> Filter:
        """Validate and compile ``where``; raises InvalidQuery naming the bad field."""
        if where is None:
            return _NO_FILTER
        if not isinstance(where, Mapping):
            raise InvalidQuery(
                f"where must be an object, got {type(where).__name__}", field="where"
            )
        conds = [_field_condition(str(k), v) for k, v in where.items()]
        return cls(dict(where), and_(true(), *conds))

    @property
    def empty(self) -> bool:
        """True when the filter lets everything through."""
        return not self.where


_NO_FILTER = Filter(MappingProxyType({}), true())


def _field_condition(field: str, spec: Any) -> ColumnElement[bool]:
    if not field:
        raise InvalidQuery("where: empty field name", field="where")
    is_meta = field not in COLUMNS
    key = field.removeprefix("metadata.") if is_meta else field
    column: Any = items.c.metadata[key] if is_meta else items.c[field]
    if not isinstance(spec, Mapping):
        return _compare(column, "eq", spec, field, is_meta)
    if not spec:
        raise InvalidQuery(f"where[{field!r}]: empty condition", field=field)
    conds: list[ColumnElement[bool]] = []
    for op, value in spec.items():
        if op in _URI_OPS:
            if field != "uri" or not isinstance(value, str):
                raise InvalidQuery(
                    f"where[{field!r}]: {op!r} applies to 'uri' with a string", field=field
                )
            pattern = _like_escape(value) + "%" if op == "prefix" else glob_to_like(value)
            conds.append(items.c.uri.like(pattern, escape="\\"))
        elif op in _RANGE:
            conds.append(_compare(column, op, value, field, is_meta))
        else:
            allowed = ", ".join(sorted(_RANGE | _URI_OPS))
            raise InvalidQuery(
                f"where[{field!r}]: unknown operator {op!r} (use {allowed})", field=field
            )
    return and_(*conds)
