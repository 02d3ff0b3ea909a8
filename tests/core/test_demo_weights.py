"""``make demo`` fetches imagebind_huge's weights before falling back to the test model.

The official URL is replaced (setting ``imagebind_huge_url``) by a real HTTP server on
127.0.0.1 serving a small file, or by a loopback port that refuses connections (offline).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from weight_server import PAYLOAD, SHA, RangeHandler, refused_url, serve_weights

from embedstore.config import Settings
from embedstore.demo import choose_encoder, demo_settings
from embedstore.engine import Engine


@pytest.fixture
def server() -> Iterator[tuple[str, type[RangeHandler]]]:
    with serve_weights() as served:
        yield served


@pytest.fixture(name="refused_url")
def refused_url_fixture() -> str:
    return refused_url()


def engine_for(tmp_path: Path, **settings: object) -> Engine:
    return Engine(Settings(data_dir=tmp_path / "data", device="cpu", **settings))  # type: ignore[arg-type]


def test_offline_falls_back_to_the_test_model_with_the_notice(
    tmp_path: Path, refused_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = engine_for(tmp_path, imagebind_huge_url=refused_url)
    assert choose_encoder(engine) == "imagebind_test"
    out = capsys.readouterr().out
    assert "imagebind_huge weights (imagebind_huge.pth) not found" in out
    assert "Using imagebind_test, a tiny RANDOM model" in out
    assert "Fetching" not in out  # the probe failed: no download was started
    assert not (tmp_path / "data" / "weights").exists()


def test_online_fetches_the_weights_resuming_a_partial_download(
    tmp_path: Path, server: tuple[str, type[RangeHandler]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, handler = server
    weights = tmp_path / "data" / "weights"
    weights.mkdir(parents=True)
    (weights / "imagebind_huge.pth.part").write_bytes(PAYLOAD[:100_000])  # an interrupted run
    engine = engine_for(tmp_path, imagebind_huge_url=url, imagebind_huge_sha256=SHA)
    assert choose_encoder(engine) == "imagebind_huge"
    assert (weights / "imagebind_huge.pth").read_bytes() == PAYLOAD
    assert not (weights / "imagebind_huge.pth.part").exists()
    assert handler.seen == ["bytes=100000-"]  # only the missing tail was fetched
    assert "Fetching the imagebind_huge weights" in capsys.readouterr().out
    assert choose_encoder(engine) == "imagebind_huge"  # present now: no second request
    assert handler.seen == ["bytes=100000-"]


def test_a_checksum_mismatch_falls_back_and_drops_the_bad_file(
    tmp_path: Path, server: tuple[str, type[RangeHandler]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = server
    engine = engine_for(tmp_path, imagebind_huge_url=url, imagebind_huge_sha256="0" * 64)
    assert choose_encoder(engine) == "imagebind_test"
    out = capsys.readouterr().out
    assert "does not match" in out and "Using imagebind_test" in out
    assert list((tmp_path / "data" / "weights").iterdir()) == []


def test_the_demo_encoder_setting_chooses_without_a_download(
    tmp_path: Path, server: tuple[str, type[RangeHandler]]
) -> None:
    url, handler = server
    engine = engine_for(tmp_path, imagebind_huge_url=url, demo_encoder="imagebind_test")
    assert choose_encoder(engine) == "imagebind_test"
    assert choose_encoder(engine, "openclip_test") == "openclip_test"  # --encoder wins
    assert handler.seen == []


def test_the_demo_keeps_its_catalog_in_dot_demo_unless_a_data_dir_is_set(tmp_path: Path) -> None:
    import os

    os.environ.pop("EMBEDSTORE_DATA_DIR")
    plain = demo_settings(Settings(), None)
    assert plain.data_dir == Path(".demo") and plain.weights_dir is not None
    assert demo_settings(Settings(), tmp_path).data_dir == tmp_path
    assert demo_settings(Settings(data_dir=tmp_path), None).data_dir == tmp_path
