"""``embedstore bind`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli


def test_bind_command_trains_saves_and_prints_the_encoder_name(library: Path, data_dir: Path):
    runner = CliRunner()
    args = [
        "bind",
        str(library),
        "-m",
        "text",
        "--base-encoder",
        "imagebind_test",
        "--name",
        "caps",
    ]
    args += ["--width", "32", "--layers", "1", "--heads", "2", "--epochs", "1", "--batch-size", "4"]
    result = runner.invoke(cli, [*args, "--val-fraction", "0.34", "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["encoder"] == "bound:caps" and doc["pairs"] == 6 and doc["val_pairs"] == 2
    assert {"recall@1", "recall@5", "loss"} <= set(doc["metrics"])
    assert (data_dir / "bound" / "caps" / "config.json").is_file()

    listed = runner.invoke(cli, ["bind", str(library), "-m", "text", "--name", "x", "-o", "y"])
    assert listed.exit_code == 2 and "exactly one of --out and --name" in listed.output


def test_bind_errors_are_reported_not_raised(library: Path, tmp_path: Path):
    result = CliRunner().invoke(
        cli,
        [
            "bind",
            str(library),
            "-m",
            "imu",
            "--base-encoder",
            "imagebind_test",
            "-o",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 4 and "no (vision, imu) pairs" in result.output
