"""Shared fixtures: an isolated data directory, settings, the reference fixtures and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from testdata import IMAGEBIND_FIXTURES, require_data

os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.data(PATH, REASON)``: skip locally, fail under CI=true, when PATH is absent."""
    for mark in item.iter_markers("data"):
        if mark.args:
            require_data(*mark.args)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own data dir; no EMBEDSTORE_* setting leaks in from the caller."""
    for key in list(os.environ):
        if key.startswith("EMBEDSTORE_") and key != "EMBEDSTORE_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("EMBEDSTORE_DATA_DIR", str(tmp_path / "data"))
    yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path):  # type: ignore[no-untyped-def]
    """Settings for a CPU-only run with the tiny seeded ImageBind."""
    from embedstore.config import Settings

    return Settings(data_dir=data_dir, encoder="imagebind_test", device="cpu", workers=0)


@pytest.fixture(scope="session")
def imagebind_fixtures() -> Path:
    """The official reference outputs in ../shared (never copied into the project)."""
    require_data(IMAGEBIND_FIXTURES, f"reference fixtures not found at {IMAGEBIND_FIXTURES}")
    return IMAGEBIND_FIXTURES


@pytest.fixture
def one_faiss_thread() -> Iterator[None]:
    """FAISS's OpenMP threads only slow small indexes down on a shared CPU: use one."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a real PostgreSQL database (set by .ci/run through EMBEDSTORE_TEST_DATABASE_URL)."""
    url = os.environ.get("EMBEDSTORE_TEST_DATABASE_URL", "")
    require_data(
        bool(url), "EMBEDSTORE_TEST_DATABASE_URL is not set (.ci/run starts PostgreSQL and sets it)"
    )
    return url
