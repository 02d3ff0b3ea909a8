"""Weights: cache lookup, resumable checksummed download from a real local server, offline errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from weight_server import PAYLOAD, SHA, RangeHandler, refused_url, serve_weights

from embedstore.encoders import create_encoder
from embedstore.encoders.weights import WeightsSource, download_file, resolve_weights
from embedstore.errors import ChecksumMismatch, WeightsNotFound


@pytest.fixture
def server() -> Iterator[tuple[str, type[RangeHandler]]]:
    with serve_weights() as served:
        yield served


@pytest.fixture
def closed_port_url() -> str:
    return refused_url()


def test_download_checks_the_sha256(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, handler = server
    target = download_file(url, tmp_path / "w.pth", sha256=SHA, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "w.pth.part").exists()
    assert handler.seen == [None]


def test_download_resumes_a_part_file(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, handler = server
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD[:300_000])
    target = download_file(url, tmp_path / "w.pth", sha256=SHA, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert handler.seen == ["bytes=300000-"]


def test_download_restarts_when_the_server_ignores_ranges(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, handler = server
    handler.ranges = False
    (tmp_path / "w.pth.part").write_bytes(b"garbage")
    assert (
        download_file(url, tmp_path / "w.pth", sha256=SHA, progress=False).read_bytes() == PAYLOAD
    )


def test_a_complete_part_file_is_finished_without_a_body(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    (tmp_path / "w.pth.part").write_bytes(PAYLOAD)
    assert (
        download_file(url, tmp_path / "w.pth", sha256=SHA, progress=False).read_bytes() == PAYLOAD
    )


def test_a_checksum_mismatch_deletes_the_download(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    with pytest.raises(ChecksumMismatch, match="does not match"):
        download_file(url, tmp_path / "w.pth", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_resolve_uses_the_cache_and_downloads_into_it(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, handler = server
    source = WeightsSource("w.pth", url=url, sha256=SHA)
    first = resolve_weights(source, weights_dir=tmp_path, progress=False)
    assert first == tmp_path / "w.pth" and first.read_bytes() == PAYLOAD
    assert resolve_weights(source, weights_dir=tmp_path) == first
    assert len(handler.seen) == 1  # the second call never touched the network


def test_offline_error_says_where_to_put_the_file(
    closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDSTORE_IMAGEBIND_HUGE_URL", closed_port_url)
    with pytest.raises(WeightsNotFound) as err:
        create_encoder("imagebind_huge", device="cpu", weights_dir=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "imagebind_huge.pth") in message
    assert "EMBEDSTORE_WEIGHTS_PATH" in message and "EMBEDSTORE_WEIGHTS_DIR" in message
    assert closed_port_url in message


def test_default_weights_dir_follows_the_data_dir(
    closed_port_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDSTORE_IMAGEBIND_HUGE_URL", closed_port_url)
    monkeypatch.setenv("EMBEDSTORE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(
        WeightsNotFound, match=str(tmp_path / "data" / "weights" / "imagebind_huge.pth")
    ):
        create_encoder("imagebind_huge", device="cpu")


def test_a_missing_weights_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound, match="nowhere.pth"):
        create_encoder("imagebind_huge", device="cpu", weights_path=tmp_path / "nowhere.pth")


def test_a_checkpoint_of_another_model_is_rejected(imagebind_fixtures: Path) -> None:
    with pytest.raises(ChecksumMismatch, match="not a checkpoint of this ImageBind"):
        create_encoder(
            "imagebind_huge", device="cpu", weights_path=imagebind_fixtures / "tiny_a_state_dict.pt"
        )
