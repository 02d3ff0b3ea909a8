"""Opening a catalog at the newest revision skips Alembic; an older one is still migrated."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from embedstore.store.schema import (
    MIGRATIONS,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    writer,
)


def test_the_head_read_from_the_files_is_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert [head_revision()] == ScriptDirectory.from_config(cfg).get_heads()


def test_a_database_behind_the_head_is_migrated(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    assert current_revision(engine) is None
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    assert current_revision(engine) == "0001"
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM collections")).scalar() == 0
    assert "index_backend" in {c["name"] for c in inspect(engine).get_columns("collections")}
    migrate(engine)  # at the head: nothing to do
    assert current_revision(engine) == head_revision()
    engine.dispose()
