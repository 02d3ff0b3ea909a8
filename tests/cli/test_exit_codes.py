"""The exit-code table in docs/cli.md against embedstore/errors.py and the real CLI."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from embedstore import errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _table() -> dict[int, tuple[str, list[str]]]:
    """{exit code: (meaning, error class names)} from the table under the 'Error:' paragraph."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("| exit | meaning | errors |")
    rows: dict[int, tuple[str, list[str]]] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        code, meaning, names = (cell.strip() for cell in line.strip("|").split("|"))
        assert int(code) not in rows, f"exit {code} is listed twice"
        rows[int(code)] = (meaning, re.findall(r"`(\w+)`", names))
    return rows


def _error_classes() -> list[type[errors.EmbedstoreError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.EmbedstoreError)
    ]


def test_the_table_lists_the_codes_the_cli_uses() -> None:
    table = _table()
    assert sorted(table) == [0, 1, 2, 3, 4, 5, 6, 7, 130]
    for code, (_, names) in table.items():
        for name in names:
            cls = getattr(errors, name, None)
            assert isinstance(cls, type) and issubclass(cls, errors.EmbedstoreError), name
            assert cls.exit_code == code, f"docs/cli.md says {name} exits {code}"


def test_every_error_exits_like_its_nearest_documented_class() -> None:
    documented = {name: code for code, (_, names) in _table().items() for name in names}
    for cls in _error_classes():
        nearest = next(c.__name__ for c in cls.__mro__ if c.__name__ in documented)
        assert cls.exit_code == documented[nearest], (
            f"{cls.__name__} exits {cls.exit_code}, but docs/cli.md lists {nearest} with exit "
            f"{documented[nearest]}: add it to the table or fix its exit_code"
        )


@pytest.mark.slow
def test_the_cli_exits_with_the_documented_codes(
    invoke, library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _table()
    (library / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    index = ("index", library, "-c", "media", "--encoder", "imagebind_test")
    runs = {
        0: invoke("collections", "list", ok=False),
        1: invoke(*index, ok=False),  # one undecodable file, the others indexed
        2: invoke("search", "x", "-c", "media", "--where", "???", ok=False),
        3: invoke("search", "x", "-c", "nope", ok=False),
        4: invoke("init", "other", "--encoder", "no_such_encoder", ok=False),
        5: invoke("init", "media", "--encoder", "imagebind_test", ok=False),
        6: invoke(
            "--weights-path",
            tmp_path / "absent" / "imagebind_huge.pth",
            *("index", library / "dog.txt", "-c", "huge", "--encoder", "imagebind_huge"),
            ok=False,
        ),
    }
    for code, result in runs.items():
        assert result.exit_code == code, (table[code][0], result.output)
    assert "skipping " in runs[1].stderr and "broken.png" in runs[1].stderr
    for code in (2, 3, 4, 5, 6):
        assert runs[code].stderr.startswith("Error: "), runs[code].stderr
    assert "no_such_encoder" in runs[4].stderr and "imagebind_huge.pth" in runs[6].stderr
    usage = invoke("search", "-c", "media", ok=False)  # click's own usage error
    assert usage.exit_code == 2 and "Error:" in usage.stderr
