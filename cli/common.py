"""Shared CLI pieces: the engine from the context, option bundles, output and filter parsing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from functools import update_wrapper
from typing import Any, TypeVar

import click

from embedstore.config import Settings
from embedstore.engine import Engine
from embedstore.errors import InvalidQuery
from embedstore.types import SearchResult

F = TypeVar("F", bound=Callable[..., Any])


def get_engine(ctx: click.Context) -> Engine:
    """One engine per CLI invocation, built from the group's settings and closed at the end."""
    root = ctx.find_root()
    engine = root.meta.get("embedstore.engine")
    if engine is None:
        settings = root.obj if isinstance(root.obj, Settings) else Settings()
        engine = Engine(settings)
        root.meta["embedstore.engine"] = engine
        root.call_on_close(engine.close)
    return engine


def pass_engine(f: F) -> F:
    """Decorator: call the command with the invocation's ``Engine`` as first argument."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return ctx.invoke(f, get_engine(ctx), *args, **kwargs)

    return update_wrapper(wrapper, f)  # type: ignore[return-value]


collection_option = click.option(
    "-c",
    "--collection",
    required=True,
    envvar="EMBEDSTORE_COLLECTION",
    show_envvar=True,
    help="Collection name.",
)


def output_options(f: F) -> F:
    """Add ``--json`` / ``--nl`` / ``--paths``; the command receives ``fmt``."""
    f = click.option("--paths", "fmt", flag_value="paths", help="Print only the URIs, one a line.")(
        f
    )
    f = click.option("--nl", "fmt", flag_value="nl", help="Print newline-delimited JSON.")(f)
    f = click.option("--json", "fmt", flag_value="json", help="Print a JSON array.")(f)
    return click.option("--table", "fmt", flag_value="table", default=True, hidden=True)(f)


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


def emit_rows(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence[str]) -> None:
    """Print rows as a table, a JSON array, NDJSON or bare URIs."""
    if fmt == "json":
        emit_json(list(rows))
    elif fmt == "nl":
        for row in rows:
            emit_json(row)
    elif fmt == "paths":
        for row in rows:
            click.echo(row.get("uri", ""))
    else:
        _table(rows, columns)


def emit_hits(hits: Iterable[SearchResult], fmt: str) -> None:
    """Print search hits (score, modality, time range, path)."""
    rows = [h.to_dict() for h in hits]
    if fmt == "table":
        for row in rows:
            row["score"] = f"{row['score']:.4f}"
            row["time"] = _time_range(row.get("start"), row.get("end"))
        emit_rows(rows, fmt, ["score", "modality", "id", "time", "uri"])
    else:
        emit_rows(rows, fmt, [])


def _time_range(start: float | None, end: float | None) -> str:
    if start is None and end is None:
        return ""
    return f"{start or 0:.1f}-{end or 0:.1f}s"


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        click.echo("(no results)", err=True)
        return
    cells = [
        [str(row.get(c, "") if row.get(c) is not None else "") for c in columns] for row in rows
    ]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


_OPS = {">=": "gte", "<=": "lte", "!=": "ne", ">": "gt", "<": "lt", "=": "eq"}
_WHERE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|!=|>|<|=)\s*(.*)$", re.S)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_where(values: Iterable[str]) -> dict[str, Any] | None:
    """Parse ``--where`` values (``key=value``, ``size>=100``, or a JSON object) into one filter."""
    where: dict[str, Any] = {}
    for raw in values:
        if raw.lstrip().startswith("{"):
            try:
                obj = json.loads(raw)
            except ValueError as e:
                raise InvalidQuery(f"--where {raw!r} is not valid JSON: {e}", field="where") from e
            if not isinstance(obj, dict):
                raise InvalidQuery(f"--where {raw!r} must be a JSON object", field="where")
            where.update(obj)
            continue
        m = _WHERE.match(raw)
        if not m:
            raise InvalidQuery(
                f"Cannot parse --where {raw!r}; use key=value, key>=number or a JSON object",
                field="where",
            )
        key, op, value = m.group(1), _OPS[m.group(2)], _value(m.group(3).strip())
        if isinstance(value, str) and value[:1] in "<>=!":
            raise InvalidQuery(f"Cannot parse --where {raw!r}: doubled operator", field="where")
        if op == "eq":
            where[key] = value
        else:
            existing = where.get(key)
            cond = existing if isinstance(existing, dict) else {}
            cond[op] = value
            where[key] = cond
    return where or None


def parse_modalities(values: Iterable[str]) -> list[str] | None:
    """``--in audio,vision``: a list of registered modality names (UnknownModality otherwise)."""
    from embedstore.modalities import get_modality

    names = split_csv(values)
    for name in names or ():
        get_modality(name)
    return names


def split_csv(values: Iterable[str]) -> list[str] | None:
    """``--in audio,vision --in text`` -> ``["audio", "vision", "text"]`` (None when empty)."""
    out = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
    return out or None


def as_dict(obj: Any) -> dict[str, Any]:
    """A plain dict of a result object (``to_dict()``, a dataclass, or attributes)."""
    import dataclasses

    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return dict(vars(obj))
