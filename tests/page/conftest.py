"""Browser fixtures: a real uvicorn over an indexed collection of real media, and Debian's Chromium.

The server, the library and the browser are built once per module (indexing with the tiny
encoder takes seconds); every test starts from a clean page (local storage cleared) and fails on
any console error the test did not expect.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from api.conftest import serve
from testdata import require_data

from benchmarks.browser import (
    ASSETS,
    browser_missing,
    chromium,
    index_library,
    make_library,
    searches_done,
    wait_for,
    wait_for_search,
)
from embedstore.config import Settings

COLLECTION = "lib"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 photos (whole and 3 crops each), their 2-second sounds and a caption each: 18 files."""
    require_data(ASSETS, f"reference assets not found at {ASSETS}")
    return make_library(tmp_path_factory.mktemp("page") / "lib")


@pytest.fixture(scope="module")
def page_settings(tmp_path_factory: pytest.TempPathFactory, library: Path) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("page-data"),
        encoder="imagebind_test",
        device="cpu",
        workers=0,
        roots=str(library),
        api_keys="",
        host="127.0.0.1",
        batch_wait_ms=2.0,
    )


@pytest.fixture(scope="module")
def site(page_settings: Settings, library: Path) -> Iterator[str]:
    """A real uvicorn on 127.0.0.1 serving collection ``lib`` (the library, indexed)."""
    with serve(page_settings) as url:
        report = index_library(url, COLLECTION, library)["report"]
        assert not report.get("failed"), report
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = browser_missing()
    require_data(reason is None, reason or "")
    with chromium() as driver:
        yield driver


@dataclass
class Page:
    """The browser on the page, with the HTTP statuses this test expects the console to report."""

    driver: Any
    url: str
    allowed_statuses: set[int] = field(default_factory=set)

    def open(self, query: str = "") -> None:
        """Load ``/`` + ``query`` and wait until the page has settled (search done or idle)."""
        self.driver.get(f"{self.url}/{query}")
        wait_for(self.settled, 60, "the page to settle")

    def settled(self) -> bool:
        return self.js("return document.body.dataset.searchState") in ("done", "error")

    def search_done(self, before: int, timeout: float = 60.0) -> None:
        wait_for_search(self.driver, before, timeout)

    @property
    def searches(self) -> int:
        return searches_done(self.driver)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def hits(self) -> list[tuple[int, str]]:
        """(id, modality) of the result cards, in page order."""
        rows = self.js(
            "return [...document.querySelectorAll('#results li.hit')]"
            ".map((li) => [Number(li.dataset.id), li.dataset.modality]);"
        )
        return [(int(i), str(m)) for i, m in rows]

    def text(self, selector: str) -> str:
        return str(self.js("return document.querySelector(arguments[0]).textContent", selector))

    def console_errors(self) -> list[str]:
        """Console errors, less network errors with a status this test expects."""
        errors = []
        for entry in self.driver.get_log("browser"):
            if entry["level"] != "SEVERE":
                continue
            status = re.search(r"status of (\d{3})", entry["message"])
            if entry["source"] == "network" and status and int(status[1]) in self.allowed_statuses:
                continue
            errors.append(f"{entry['source']}: {entry['message']}")
        return errors


def fresh_page(driver: Any, url: str) -> Iterator[Page]:
    """A page on ``url`` with clean local storage; after the test, no unexpected console error."""
    driver.get(f"{url}/healthz")  # same origin, so its local storage can be cleared
    driver.execute_script("localStorage.clear()")
    driver.get_log("browser")  # drop what earlier tests left
    page = Page(driver, url)
    yield page
    errors = page.console_errors()
    assert not errors, "console errors:\n" + "\n".join(errors)


@pytest.fixture
def page(browser: Any, site: str) -> Iterator[Page]:
    yield from fresh_page(browser, site)
