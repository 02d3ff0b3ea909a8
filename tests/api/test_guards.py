"""Upload sniffing, loopback detection and confinement of server-side paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from embedstore.api.security import check_auth_config, confine_path, is_loopback
from embedstore.api.sniff import check_upload, sniff_format
from embedstore.config import Settings
from embedstore.errors import (
    InvalidConfig,
    InvalidMedia,
    NotFound,
    PathNotAllowed,
    UnsupportedMediaType,
)


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\x89PNG\r\n\x1a\n....", "png"),
        (b"\xff\xd8\xff\xe0..JFIF", "jpeg"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "webp"),
        (b"\x00\x00\x00\x20ftypisom", "mp4"),
        (b"\x00\x00\x00\x20ftypM4A ", "m4a"),
        (b"\x1a\x45\xdf\xa3\x01", "webm"),
        (b"\x93NUMPY\x01\x00", "npy"),
        (b"fLaC\x00", "flac"),
        ("a red car in the snow \u00e9".encode(), "txt"),
        (b"MZ\x90\x00\x03\x00\x00\x00", None),  # a Windows executable
        (b"\x7fELF\x02\x01\x01\x00\x00", None),
    ],
)
def test_sniff_format(head: bytes, fmt: str | None) -> None:
    assert sniff_format(head) == fmt


def test_check_upload_matches_modality() -> None:
    png = b"\x89PNG\r\n\x1a\n"
    assert check_upload(png, None) == ("png", "vision")
    assert check_upload(png, "depth") == ("png", "depth")
    with pytest.raises(UnsupportedMediaType, match="cannot be read as 'audio'"):
        check_upload(png, "audio", "cat.png")
    with pytest.raises(UnsupportedMediaType, match="evil.exe"):
        check_upload(b"MZ\x90\x00\x03\x00\x00", None, "evil.exe")
    with pytest.raises(InvalidMedia, match="empty"):
        check_upload(b"", None, "empty.png")
    with pytest.raises(InvalidMedia, match="name its modality"):
        check_upload(b"\x93NUMPY\x01\x00", None, "scan.npy")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("192.168.1.4", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_bind_needs_api_keys(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="EMBEDSTORE_API_KEYS"):
        check_auth_config(Settings(data_dir=tmp_path, host="0.0.0.0"))
    with pytest.raises(InvalidConfig):
        check_auth_config(Settings(data_dir=tmp_path, allow_anonymous_loopback=False))
    check_auth_config(Settings(data_dir=tmp_path, host="0.0.0.0", api_keys="k1"))
    check_auth_config(Settings(data_dir=tmp_path, host="127.0.0.1"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("password")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(tmp_path, root / "escape_dir")
    os.symlink(root / "sub" / "a.txt", root / "inner_link.txt")
    return root.resolve()


def test_paths_inside_the_root_resolve(root: Path) -> None:
    assert confine_path(str(root / "sub" / "a.txt"), [root]) == root / "sub" / "a.txt"
    assert confine_path("sub/a.txt", [root]) == root / "sub" / "a.txt"
    assert confine_path(str(root / "inner_link.txt"), [root]) == root / "sub" / "a.txt"


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "sub/../../secret.txt",
        "{root}/sub/../../secret.txt",
        "{root}/escape.txt",
        "{root}/escape_dir/secret.txt",
        "/etc/passwd",
        "{root}/../secret.txt",
    ],
)
def test_escapes_are_refused(root: Path, path: str) -> None:
    with pytest.raises(PathNotAllowed):
        confine_path(path.format(root=root), [root])


def test_missing_paths_and_no_roots(root: Path) -> None:
    with pytest.raises(NotFound):
        confine_path("sub/missing.png", [root])
    with pytest.raises(PathNotAllowed, match="EMBEDSTORE_ROOTS"):
        confine_path(str(root / "sub" / "a.txt"), [])
