"""Database engine setup and schema migrations (Alembic, run on open).

Opening a database already at the newest revision reads ``alembic_version`` with one query and
does not import Alembic (a good part of a catalog command's start-up).
"""

from __future__ import annotations

import re
import threading
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).with_name("migrations")
_migrate_lock = threading.Lock()
# 64 KiB pages hold fifteen 1024-d float32 vectors each: with SQLite's default 4 KiB, every
# vector spills to an overflow page and batched inserts run at half the speed
# (python -m benchmarks.store). Applies to new database files only.
SQLITE_PAGE_SIZE = 65536


def make_engine(url: str) -> Engine:
    """An engine with SQLite in WAL mode, foreign keys, a busy timeout and IMMEDIATE writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=16)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        for pragma in (
            f"page_size={SQLITE_PAGE_SIZE}",  # before WAL mode: it fixes a new file's layout
            "journal_mode=WAL",
            "foreign_keys=ON",
            "busy_timeout=30000",
            "synchronous=NORMAL",
            "case_sensitive_like=ON",
        ):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin")
        if (
            mode is not None
        ):  # writes; single-statement reads run in autocommit (no BEGIN round trip)
            conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def writer(engine: Engine) -> Engine:
    """The engine to write with (SQLite: BEGIN IMMEDIATE, so concurrent writers wait instead of failing)."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


_REVISION = re.compile(r"""^(down_)?revision\s*(?::[^=]*)?=\s*(None|["']([^"']+)["'])""", re.M)


@cache
def head_revision() -> str | None:
    """The newest migration's id, read from the files in ``migrations/versions`` (None if the
    history has more than one head: then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for file in (MIGRATIONS / "versions").glob("*.py"):
        for m in _REVISION.finditer(file.read_text(encoding="utf-8")):
            if m.group(3):
                (parents if m.group(1) else revisions).add(m.group(3))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def current_revision(engine: Engine) -> str | None:
    """The database's migration id (None for a new database)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:  # no alembic_version table yet
        return None
    return rows[0] if len(rows) == 1 else None


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    head = head_revision()
    if head is not None and current_revision(engine) == head:
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _migrate_lock, writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":  # concurrent openers wait for the first migration
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7235010001)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
