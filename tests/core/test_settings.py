"""Settings precedence: CLI flags > EMBEDSTORE_* environment > TOML config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedstore.config import Settings, load_settings
from embedstore.errors import InvalidConfig


def test_defaults_put_the_database_in_the_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'embedstore.db'}"
    assert s.resolved_weights_dir == tmp_path / "weights"
    assert s.index_dir == tmp_path / "indexes"
    assert s.device == "auto"
    assert s.resolved_device() in {"cpu", "cuda"}


def test_env_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSTORE_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/db")
    monkeypatch.setenv("EMBEDSTORE_BATCH_SIZE", "7")
    s = load_settings()
    assert s.resolved_database_url == "postgresql+psycopg://u@127.0.0.1/db"
    assert s.batch_size == 7


def test_flag_beats_env_beats_file_beats_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "embedstore.toml"
    cfg.write_text('encoder = "from_file"\nprecision = "bf16"\nbatch_size = 3\nport = 9001\n')
    monkeypatch.setenv("EMBEDSTORE_ENCODER", "from_env")
    monkeypatch.setenv("EMBEDSTORE_BATCH_SIZE", "5")
    s = load_settings(cfg, encoder="from_flag", batch_size=None)
    assert s.encoder == "from_flag"  # flag
    assert s.batch_size == 5  # env (the None flag is ignored)
    assert s.precision == "bf16"  # file
    assert s.port == 9001  # file
    assert s.host == "127.0.0.1"  # default


def test_invalid_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSTORE_PRECISION", "fp8")
    with pytest.raises(InvalidConfig, match="precision"):
        load_settings()


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_api_keys_and_roots_are_split(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, api_keys=" a, b ,,", roots=str(tmp_path))
    assert s.api_key_list == ["a", "b"]
    assert s.root_list == [tmp_path.resolve()]
