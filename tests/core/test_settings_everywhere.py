"""One `Settings` object reaches every layer; nothing reads or writes the environment around it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from weight_server import refused_url

from embedstore.config import Settings, load_settings
from embedstore.errors import ChecksumMismatch, InvalidConfig, WeightsNotFound


@pytest.fixture
def closed_url() -> str:
    """A loopback URL whose port refuses connections."""
    return refused_url()


def test_load_settings_leaves_the_environment_alone(tmp_path: Path) -> None:
    cfg = tmp_path / "embedstore.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "from_file"}"\nbatch_size = 3\n')
    os.environ.pop("EMBEDSTORE_DATA_DIR")  # so the file's data_dir is not beaten by the env
    before = dict(os.environ)
    s = load_settings(cfg)
    assert s.data_dir == tmp_path / "from_file" and s.batch_size == 3
    assert dict(os.environ) == before  # no EMBEDSTORE_CONFIG left behind
    assert load_settings().batch_size == 32  # a later call does not see the file


def test_a_missing_config_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match=r"nowhere\.toml.*--config"):
        load_settings(tmp_path / "nowhere.toml")


def test_the_registry_takes_weights_folder_and_mirror_from_settings(
    tmp_path: Path, closed_url: str
) -> None:
    from embedstore.encoders import create_encoder, get_encoder_info

    cfg = tmp_path / "embedstore.toml"
    cfg.write_text(f'weights_dir = "{tmp_path / "w"}"\nimagebind_huge_url = "{closed_url}"\n')
    settings = load_settings(cfg)  # EMBEDSTORE_DATA_DIR (set by conftest) points elsewhere
    info = get_encoder_info("imagebind_huge", settings)
    assert not info.weights_present(settings=settings)
    with pytest.raises(WeightsNotFound) as err:
        create_encoder("imagebind_huge", device="cpu", settings=settings)
    assert str(tmp_path / "w" / "imagebind_huge.pth") in str(err.value)
    assert closed_url in str(err.value)
    (tmp_path / "w").mkdir(exist_ok=True)  # the failed download made it
    (tmp_path / "w" / "imagebind_huge.pth").write_bytes(b"x")
    assert info.weights_present(settings=settings)


def test_weights_path_serves_the_encoder_in_use_not_only_the_configured_one(
    tmp_path: Path, closed_url: str
) -> None:
    import torch

    from embedstore.engine import Engine

    bad = tmp_path / "not_imagebind.pth"
    torch.save({"a": torch.zeros(1)}, bad)
    settings = Settings(
        data_dir=tmp_path / "d",
        encoder="imagebind_test",
        device="cpu",
        weights_path=bad,
        imagebind_huge_url=closed_url,
    )
    engine = Engine(settings)
    # the file is read (and rejected), not ignored for a download from the refused mirror
    with pytest.raises(ChecksumMismatch, match="not a checkpoint"):
        engine.encoder("imagebind_huge")
    # one file cannot be the checkpoint of a second model that needs one
    with pytest.raises(InvalidConfig, match="weights_path") as err:
        engine.encoder("openclip_vit_b_32")
    assert "imagebind_huge" in str(err.value)
    # a built-in model other than the configured one needs no file and ignores it
    assert engine.encoder("openclip_test").dim == 32


def test_bound_names_resolve_in_the_settings_data_dir(tmp_path: Path) -> None:
    from embedstore.bind.bound import bound_dir

    assert bound_dir("caps", Settings(data_dir=tmp_path / "a")) == tmp_path / "a" / "bound" / "caps"
    cfg = tmp_path / "embedstore.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "b"}"\n')
    os.environ.pop("EMBEDSTORE_DATA_DIR")
    assert bound_dir("caps", load_settings(cfg)) == tmp_path / "b" / "bound" / "caps"
