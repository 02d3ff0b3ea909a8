"""Debian's Chromium driven by Selenium, and a small real media library, for the search page.

Used by the browser tests (tests/page), the page benchmark and the screenshot script
(``python -m benchmarks.page``). Nothing is downloaded: the browser is ``/usr/bin/chromium`` with
``/usr/bin/chromedriver`` (Debian's ``chromium`` and ``chromium-driver``), the media come from the
reference assets in ``../shared``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "fixtures" / "imagebind" / "assets"
NAMES = ("dog", "car", "bird")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# Flags that keep Chromium off the network and its first-run machinery; the fake media devices
# give getUserMedia a synthetic microphone (a beep) without a permission prompt.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None when Chromium, its driver and Selenium exist)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} not found: apt-get install {package} (.ci/run installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 900, *, dark: bool = False) -> Iterator[Any]:
    """A headless Chromium (fresh profile) under Selenium; console messages are kept for checks."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="embedstore-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def make_library(root: Path, names: Sequence[str] = NAMES, crops: int = 3) -> Path:
    """Real photos (whole and ``crops`` crops each), their sounds as 16 kHz WAVs and captions."""
    import soundfile as sf
    from PIL import Image

    if not ASSETS.is_dir():
        raise FileNotFoundError(f"reference assets not found at {ASSETS}")
    for sub in ("images", "sounds", "captions"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        with Image.open(ASSETS / f"{name}_image.jpg") as im:
            photo = im.convert("RGB")
        photo.thumbnail((320, 320))
        photo.save(root / "images" / f"{name}.jpg", quality=90)
        w, h = photo.size
        for i in range(crops):  # overlapping crops: distinct files that still look like the object
            box = (i * w // 8, i * h // 10, w - (crops - 1 - i) * w // 10, h - i * h // 12)
            photo.crop(box).save(root / "images" / f"{name}_{i + 1}.jpg", quality=90)
        data, rate = sf.read(ASSETS / f"{name}_audio.wav", dtype="float32", always_2d=True)
        mono = data.mean(axis=1)[: 2 * rate]
        idx = np.linspace(0, len(mono) - 1, 2 * 16000).astype(np.int64)
        sf.write(root / "sounds" / f"{name}.wav", mono[idx], 16000)
        (root / "captions" / f"{name}.txt").write_text(
            f"A photo of a {name}, with the sound a {name} makes.\n", encoding="utf-8"
        )
    return root


def http_json(method: str, url: str, body: Any = None, key: str = "") -> Any:
    """One JSON request with the standard library (the library is indexed through the API)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if key:
        req.add_header("authorization", f"Bearer {key}")
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read() or b"null")


def index_library(base_url: str, collection: str, root: Path, key: str = "") -> dict[str, Any]:
    """Create ``collection`` and index ``root`` (a server-side path inside its roots)."""
    http_json("POST", f"{base_url}/v1/collections", {"name": collection, "exist_ok": True}, key)
    report = http_json(
        "POST", f"{base_url}/v1/collections/{collection}/items", {"path": str(root)}, key
    )
    return dict(report)


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def searches_done(driver: Any) -> int:
    """How many searches the page has finished rendering (the results list counts them)."""
    value = driver.execute_script("return document.getElementById('results').dataset.searches")
    return int(value or 0)


def wait_for_search(driver: Any, before: int, timeout: float = 60.0) -> None:
    """Wait until the page has rendered the search after ``before`` searches, or shown an error."""

    def done() -> bool:
        state = driver.execute_script("return document.body.dataset.searchState")
        return searches_done(driver) > before or state == "error"

    wait_for(done, timeout, "the search to finish")


def images_loaded(driver: Any, selector: str = "#results img") -> bool:
    """True when every image matched by ``selector`` has loaded (natural width > 0)."""
    return bool(
        driver.execute_script(
            "const imgs = [...document.querySelectorAll(arguments[0])];"
            "return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);",
            selector,
        )
    )


def page_timings(driver: Any) -> dict[str, float]:
    """The page's own measures of the last search (ms): request, render and the total."""
    entries = driver.execute_script(
        "return performance.getEntriesByType('measure')"
        ".filter((m) => m.name.startsWith('embedstore:'))"
        ".map((m) => [m.name.slice(11), m.duration]);"
    )
    took = driver.execute_script("return document.getElementById('results').dataset.tookMs")
    out = {name: float(ms) for name, ms in entries}
    out["server_took"] = float(took) if took else float("nan")
    return out
