"""Rules the suite holds itself to: data gates that fail under CI, no bitwise floats, real imports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from testdata import require_data, require_module

TESTS = Path(__file__).resolve().parent
# the only skips allowed outside testdata.require_data: no CUDA, or not Linux (a platform, not data),
# or no official ImageBind code (a benchmark tool we may run but not ship, not data)
ALLOWED_SKIPS = (
    "torch.cuda.is_available()",
    "CUDA is not available",
    "parallel._SHARED",
    "pip install --no-deps imagebind-unofficial",
)


def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(TESTS.rglob("*.py"))]


def test_missing_data_skips_locally(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install x"):
        require_data(tmp_path / "absent", "apt-get install x")
    require_data(tmp_path, "present: nothing happens")
    require_data(True, "true: nothing happens")


def test_missing_data_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: apt-get install x"):
        require_data(tmp_path / "absent", "apt-get install x")
    with pytest.raises(pytest.fail.Exception):
        require_data(False, "a condition")
    require_data(tmp_path, "present: nothing happens")


def test_a_missing_extra_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require_module("json", "stdlib").dumps(1) == "1"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="the \\[x\\] extra"):
        require_module("no_such_module_for_this_test", "the [x] extra is not installed")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: the \\[x\\] extra"):
        require_module("no_such_module_for_this_test", "the [x] extra is not installed")


def test_every_skip_goes_through_require_data() -> None:
    # importorskip of our own code turns an import regression into a skip; a third-party
    # optional extra goes through testdata.require_module
    own = r"importorskip\(\s*[\"'](?:embedstore|cli|indexers|benchmarks)\b"
    pattern = re.compile(rf"pytest\.skip\(|{own}|mark\.skipif\(|mark\.skip\(")
    offenders = []
    for path, text in _sources():
        if path.name in ("testdata.py", "test_suite_rules.py"):
            continue
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if pattern.search(line):
                near = " ".join(lines[i : i + 3])
                gated = "pytest.fail(" in " ".join(lines[max(i - 3, 0) : i])  # fails under CI
                if not gated and not any(a in near for a in ALLOWED_SKIPS):
                    offenders.append(f"{path.relative_to(TESTS)}:{i + 1}: {line.strip()}")
    assert not offenders, "skip through testdata.require_data instead:\n" + "\n".join(offenders)


def test_no_bitwise_tolerance_on_floats() -> None:
    """A zero absolute and relative tolerance promises bit-equal floats, which no float pipeline
    keeps across CPUs."""
    zero = re.compile(r"atol\s*=\s*0(?:\.0*)?(?![\d.e])")
    offenders = [
        f"{path.relative_to(TESTS)}:{n}: {line.strip()}"
        for path, text in _sources()
        if path.name != "test_suite_rules.py"
        for n, line in enumerate(text.splitlines(), 1)
        if zero.search(line)
    ]
    assert not offenders, "use tests/tolerances.py or torch.equal on exact data:\n" + "\n".join(
        offenders
    )
