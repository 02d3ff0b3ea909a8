"""Database engine setup and schema migrations (Alembic, run on open)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

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


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _migrate_lock, writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":  # concurrent openers wait for the first migration
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7235010001)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
