"""``bound:NAME`` is looked up in the data folder of ``--data-dir`` or the config file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from weight_server import refused_url

from cli.main import cli

TINY = ["--width", "32", "--layers", "1", "--heads", "2", "--epochs", "1", "--batch-size", "4"]


def test_bound_name_follows_the_data_dir_flag_and_the_config_file(
    library: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    data = tmp_path / "flagged"  # not the EMBEDSTORE_DATA_DIR that conftest sets
    flags = ["--data-dir", str(data), "--device", "cpu"]
    bind = [
        "bind",
        str(library),
        "-m",
        "text",
        "--base-encoder",
        "imagebind_test",
        "--name",
        "caps",
    ]
    out = runner.invoke(cli, [*flags, *bind, *TINY, "--no-progress", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["encoder"] == "bound:caps"
    assert (data / "bound" / "caps" / "config.json").is_file()

    index = ["index", str(library), "-c", "caps", "--encoder", "bound:caps", "--workers", "0"]
    out = runner.invoke(cli, [*flags, *index, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["added"] == 18  # 6 pictures, 6 sounds, 6 captions

    cfg = tmp_path / "embedstore.toml"
    cfg.write_text(f'data_dir = "{data}"\ndevice = "cpu"\n')
    os.environ.pop("EMBEDSTORE_DATA_DIR")  # the file's data_dir must not be beaten by the env
    search = ["--config", str(cfg), "search", "A red square.", "-c", "caps", "--json"]
    out = runner.invoke(cli, search)
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.stdout)) == 10
    assert "EMBEDSTORE_CONFIG" not in os.environ


def test_weights_path_reaches_a_bound_encoders_base(library: Path, tmp_path: Path) -> None:
    """``--weights-path`` is the base model's checkpoint for ``bound:NAME`` too (read, not ignored)."""
    import torch

    from embedstore.config import Settings
    from embedstore.encoders import get_encoder_info
    from embedstore.engine import Engine
    from embedstore.errors import ChecksumMismatch

    data = tmp_path / "data"
    bind = ["bind", str(library), "-m", "text", "--base-encoder", "imagebind_test"]
    out = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(data),
            "--device",
            "cpu",
            *bind,
            "--name",
            "big",
            *TINY,
            "--no-progress",
        ],
    )
    assert out.exit_code == 0, out.output
    config = data / "bound" / "big" / "config.json"
    meta = json.loads(config.read_text())
    meta["base_encoder"] = "imagebind_huge"  # a base whose weights are a user's file
    config.write_text(json.dumps(meta))
    closed = refused_url()  # a mirror that refuses: a download attempt would fail
    bad = tmp_path / "not_imagebind.pth"
    torch.save({"a": torch.zeros(1)}, bad)
    settings = Settings(data_dir=data, device="cpu", weights_path=bad, imagebind_huge_url=closed)
    info = get_encoder_info("bound:big", settings)
    assert info.weights_file == get_encoder_info("imagebind_huge", settings).weights_file
    with pytest.raises(ChecksumMismatch, match="not a checkpoint"):
        Engine(settings).encoder("bound:big")
