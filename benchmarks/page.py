"""The search page in Chromium: time from Enter to the first painted result, and the README's screenshots.

``python -m benchmarks.page --out page.json`` serves a small real library with
``uvicorn --factory embedstore.api:create_app`` (tiny ``imagebind_test`` encoder, 1 worker,
``OMP_NUM_THREADS=1``) on 127.0.0.1, opens the page in headless Chromium (Selenium, Debian's
``chromium``), types text queries and presses Enter. The page marks the key press, the answer
and the first frame painted after the results are in the DOM (Performance API); the server's own
``took_ms`` comes with each answer. ``--screenshots docs`` also writes ``page-results.png`` and
``page-detail.png`` for the README.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from benchmarks.browser import (
    chromium,
    http_json,
    images_loaded,
    index_library,
    make_library,
    page_timings,
    searches_done,
    wait_for,
    wait_for_search,
)
from benchmarks.common import ROOT, output_options, result_doc, write_result
from benchmarks.load import _free_port, wait_ready

STAMPS = Path("/usr/share/tuxpaint/stamps")
QUERIES = [
    "a dog barking", "a red car", "a bird singing", "a cat", "a horse", "a guitar", "a train",
    "a cow mooing", "a bell ringing", "the sea", "a butterfly", "a pizza",
]  # fmt: skip


def stamp_library(root: Path, limit: int) -> Path:
    """Up to ``limit`` Tux Paint stamps that have a sound: picture, sound and English caption."""
    from embedstore.demo import find_stamps, pick

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "sounds").mkdir(exist_ok=True)
    (root / "captions").mkdir(exist_ok=True)
    for stamp in pick(find_stamps(STAMPS), limit):
        shutil.copy2(stamp.image, root / "images" / stamp.image.name)
        if stamp.sound is not None:
            shutil.copy2(stamp.sound, root / "sounds" / stamp.sound.name)
        (root / "captions" / f"{stamp.name}.txt").write_text(stamp.caption + "\n", encoding="utf-8")
    return root


def start_server(data_dir: Path, roots: Path, port: int) -> subprocess.Popen[bytes]:
    """The API in its own process, configured through the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDSTORE_")}
    env.update(
        EMBEDSTORE_DATA_DIR=str(data_dir), EMBEDSTORE_ENCODER="imagebind_test",
        EMBEDSTORE_DEVICE="cpu", EMBEDSTORE_WORKERS="0", EMBEDSTORE_ROOTS=str(roots),
        OMP_NUM_THREADS="1",
    )  # fmt: skip
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "embedstore.api:create_app",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def search(driver: Any, text: str) -> dict[str, float]:
    """Type ``text``, press Enter, wait for the painted results; the page's timings."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text)
    before = searches_done(driver)
    box.send_keys(Keys.ENTER)
    wait_for_search(driver, before)
    return page_timings(driver)


def screenshots(driver: Any, url: str, folder: Path) -> list[Path]:
    """A result page and the detail view of its first image, as PNGs in ``folder``."""
    from selenium.webdriver.common.by import By

    folder.mkdir(parents=True, exist_ok=True)
    # "More like this" of a photo: the tiny test model ranks same-modality items first, so the
    # page shows pictures, then sounds and captions.
    items = http_json("GET", f"{url}/v1/collections/media/items?limit=1000")
    photos = [i for i in items if i["modality"] == "vision"]
    photo = next((i for i in photos if "dog" in i["uri"]), photos[0])
    driver.set_window_size(1280, 1000)
    driver.get(f"{url}/?c=media&k=20&offset=0&item={photo['id']}")
    wait_for(lambda: driver.execute_script("return document.body.dataset.searchState") == "done")
    wait_for(lambda: images_loaded(driver), 60, "thumbnails")
    wait_for(
        lambda: driver.execute_script(
            "return [...document.querySelectorAll('.snippet')].every((p) => p.textContent !== '…')"
        )
    )
    results = folder / "page-results.png"
    driver.save_screenshot(str(results))
    driver.find_element(By.CSS_SELECTOR, "li[data-modality=vision] .open").click()
    wait_for(lambda: images_loaded(driver, "#detail-media img"), 60, "the detail image")
    detail = folder / "page-detail.png"
    driver.save_screenshot(str(detail))
    return [results, detail]


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
    }


@click.command()
@output_options
@click.option("--repeat", default=30, show_default=True, help="Timed searches (after 3 warm-ups).")
@click.option("--stamps", default=60, show_default=True, help="Tux Paint stamps in the library.")
@click.option(
    "--screenshots",
    "shots",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also save page-results.png and page-detail.png into this folder (e.g. docs).",
)
def main(
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
    repeat: int,
    stamps: int,
    shots: Path | None,
) -> None:
    """Enter-to-first-paint of the search page, next to the server's own search time."""
    repeat = 5 if smoke else repeat
    work = Path(tempfile.mkdtemp(prefix="embedstore-page-"))
    try:
        if STAMPS.is_dir():
            lib, source = stamp_library(work / "lib", 12 if smoke else stamps), "tuxpaint-stamps"
        else:
            lib, source = make_library(work / "lib"), "shared assets"
        port = _free_port()
        proc = start_server(work / "data", lib, port)
        try:
            wait_ready(port, proc)
            url = f"http://127.0.0.1:{port}"
            report = index_library(url, "media", lib)["report"]
            with chromium(1280, 800) as driver:
                driver.get(f"{url}/?c=media")
                wait_for(
                    lambda: (
                        driver.execute_script("return document.body.dataset.searchState") == "done"
                    )
                )
                for q in QUERIES[:3]:
                    search(driver, q)
                runs = [search(driver, QUERIES[i % len(QUERIES)]) for i in range(repeat)]
                saved = screenshots(driver, url, shots) if shots else []
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for name, key in [
        ("Enter -> first painted result", "search"),
        ("server search (took_ms)", "server_took"),
        ("Enter -> answer received", "request"),
        ("answer -> painted (page's own work)", "render"),
        ("answer -> cards in the DOM", "build"),
    ]:
        rows.append({"measure": name, **summary([r[key] for r in runs])})
    rows.append(
        {
            "measure": "painted - server time (HTTP + page)",
            **summary([r["search"] - r["server_took"] for r in runs]),
        }
    )
    params = {
        "repeat": repeat,
        "library": source,
        "items": report.get("added", report),
        "encoder": "imagebind_test",
        "k": 20,
        "browser": "Debian chromium, headless, Selenium",
        "server": "uvicorn 1 worker on 127.0.0.1, OMP_NUM_THREADS=1",
        "screenshots": [str(p) for p in saved],
    }
    write_result(result_doc("page", params, rows), out, stdout=as_json or out is None)


if __name__ == "__main__":
    main()
