"""The search page in Debian's Chromium against a real uvicorn over real photos, sounds and captions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from api.conftest import serve
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from benchmarks.browser import images_loaded, wait_for
from embedstore.config import Settings

from .conftest import COLLECTION, Page, fresh_page

pytestmark = pytest.mark.slow


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.driver.current_url).query)


def type_search(page: Page, text: str) -> None:
    box = page.driver.find_element(By.ID, "q")
    box.clear()
    before = page.searches
    box.send_keys(text, Keys.ENTER)
    page.search_done(before)


def click(page: Page, selector: str) -> None:
    before = page.searches
    page.driver.find_element(By.CSS_SELECTOR, selector).click()
    page.search_done(before)


def test_text_search_shows_ranked_hits_with_loaded_thumbnails(page: Page) -> None:
    page.open(f"?c={COLLECTION}")
    type_search(page, "a photo of a dog")
    hits = page.hits()
    assert len(hits) == 18  # k=20 by default, 18 items: every photo, sound and caption
    assert {m for _, m in hits} == {"vision", "audio", "text"}
    scores = [
        float(s)
        for s in page.js(
            "return [...document.querySelectorAll('.score')].map((s) => s.textContent)"
        )
    ]
    assert scores == sorted(scores, reverse=True)
    assert query_of(page) == {
        "c": [COLLECTION],
        "q": ["a photo of a dog"],
        "k": ["20"],
        "offset": ["0"],
    }
    wait_for(lambda: images_loaded(page.driver), 30, "thumbnails to load")
    assert page.js("return document.querySelectorAll('#results img').length") == 12
    # Captions show as text snippets, sounds get a play button.
    wait_for(
        lambda: "A photo of a" in page.text("li[data-modality=text] .snippet"), 10, "a text snippet"
    )
    assert (
        page.js("return document.querySelectorAll('li[data-modality=audio] button.play').length")
        == 3
    )
    assert "18 results for “a photo of a dog”" in page.text("#status")


def test_the_address_bar_runs_its_search_and_filter_chips_narrow_it(page: Page) -> None:
    page.open(f"?c={COLLECTION}&q=a%20dog&in=audio,vision&k=20&offset=0")
    assert page.driver.current_url.endswith(
        f"/?c={COLLECTION}&q=a%20dog&in=audio,vision&k=20&offset=0"
    )
    assert {m for _, m in page.hits()} == {"audio", "vision"}
    assert page.js(
        "return [...document.querySelectorAll('#chips input:checked')].map((c) => c.value)"
    ) == ["vision", "audio"]
    click(page, "label[for=chip-vision]")  # unchecking vision leaves audio only
    assert {m for _, m in page.hits()} == {"audio"}
    assert len(page.hits()) == 3
    assert query_of(page)["in"] == ["audio"]


def test_upload_a_wav_and_see_image_hits(page: Page, library: Path) -> None:
    page.open(f"?c={COLLECTION}")
    page.driver.find_element(By.CSS_SELECTOR, "label[for=chip-vision]").click()  # no search yet
    before = page.searches
    page.driver.find_element(By.ID, "file").send_keys(str(library / "sounds" / "dog.wav"))
    page.search_done(before)
    hits = page.hits()
    assert len(hits) == 12 and {m for _, m in hits} == {"vision"}
    wait_for(lambda: images_loaded(page.driver), 30, "thumbnails to load")
    assert "the file dog.wav" in page.text("#status")
    assert query_of(page) == {"c": [COLLECTION], "in": ["vision"], "k": ["20"], "offset": ["0"]}


def test_more_like_this_then_back_returns_to_the_previous_results(page: Page) -> None:
    page.open(f"?c={COLLECTION}&q=a%20car&in=vision")
    first = page.hits()
    target = first[0][0]
    name = page.text("#results li.hit .open")
    click(page, "#results li.hit .similar")
    assert f"items like {name}" in page.text("#status")
    assert query_of(page)["item"] == [str(target)] and "q" not in query_of(page)
    similar = page.hits()
    assert similar and target not in [i for i, _ in similar]  # the item itself is excluded
    assert {m for _, m in similar} == {"vision"}
    before = page.searches
    page.driver.back()
    page.search_done(before)
    assert query_of(page)["q"] == ["a car"]
    assert page.hits() == first
    assert page.js("return document.getElementById('q').value") == "a car"
    # Opened from a bookmark, the page looks the item's name up by itself.
    page.open(f"?c={COLLECTION}&k=5&offset=0&item={target}")
    assert len(page.hits()) == 5
    wait_for(lambda: f"items like {name}" in page.text("#status"), 10, "the item's name")


def test_paging_forward_and_back(page: Page) -> None:
    page.open(f"?c={COLLECTION}&q=a%20bird&k=4&offset=0")
    one = page.hits()
    assert len(one) == 4 and page.js("return document.getElementById('prev').disabled")
    click(page, "#next")
    two = page.hits()
    assert len(two) == 4 and not {i for i, _ in one} & {i for i, _ in two}
    assert query_of(page)["offset"] == ["4"]
    assert "Page 2 · results 5–8" in page.text("#page-info")
    for _ in range(3):
        click(page, "#next")
    assert len(page.hits()) == 2 and page.js("return document.getElementById('next').disabled")
    before = page.searches
    page.driver.back()  # offset 12
    page.search_done(before)
    assert query_of(page)["offset"] == ["12"] and len(page.hits()) == 4


def test_detail_view_shows_media_path_and_copies_the_id(page: Page, library: Path) -> None:
    page.open(f"?c={COLLECTION}&q=a%20dog&in=vision&k=3")
    item_id = page.hits()[0][0]
    page.driver.find_element(By.CSS_SELECTOR, "#results li.hit .open").click()
    wait_for(
        lambda: page.js("return document.getElementById('detail').open"), 10, "the detail view"
    )
    wait_for(lambda: images_loaded(page.driver, "#detail-media img"), 30, "the full image")
    facts = page.text("#detail-facts")
    assert str(library / "images") in facts and f"id{item_id}" in facts
    assert "folder" in page.text("#detail-metadata")
    page.driver.execute_cdp_cmd(  # lets the test read the clipboard back
        "Browser.grantPermissions",
        {"origin": page.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    page.driver.find_element(By.ID, "copy-id").click()
    wait_for(lambda: page.text("#copy-status"), 10, "the copy message")
    assert page.text("#copy-status") == "Copied the id."
    assert page.js("return navigator.clipboard.readText()") == str(item_id)
    page.driver.find_element(By.ID, "detail-close").click()
    assert not page.js("return document.getElementById('detail').open")


def test_unsupported_upload_names_the_types_that_work(page: Page, tmp_path: Path) -> None:
    page.allowed_statuses.add(415)
    archive = tmp_path / "photos.zip"
    archive.write_bytes(b"PK\x03\x04" + os.urandom(200))
    page.open(f"?c={COLLECTION}")
    page.driver.find_element(By.ID, "file").send_keys(str(archive))
    wait_for(lambda: page.js("return !document.getElementById('error').hidden"), 30, "the error")
    message = page.text("#error")
    assert "photos.zip" in message and "not a supported" in message
    assert "Supported files: images (PNG, JPEG" in message
    assert page.hits() == []


def test_a_missing_collection_says_how_to_create_it(page: Page) -> None:
    page.allowed_statuses.add(404)
    page.open("?c=nowhere&q=anything")
    message = page.text("#error")
    assert (
        "“nowhere” does not exist" in message
        and "embedstore index ~/Pictures -c nowhere" in message
    )


def test_user_text_is_never_inserted_as_html(page: Page) -> None:
    page.open(f"?c={COLLECTION}")
    attack = '<img src=x onerror="window.pwned=1">'
    type_search(page, attack)
    assert attack in page.text("#status")
    assert page.js("return window.pwned === undefined && !document.querySelector('img[src=x]')")


def test_keyboard_slash_focuses_search_and_tab_reaches_results(page: Page) -> None:
    page.open(f"?c={COLLECTION}&q=a%20dog&k=3")
    page.driver.find_element(By.TAG_NAME, "body").send_keys("/")
    assert page.js("return document.activeElement.id") == "q"
    reached = None
    for _ in range(40):
        page.driver.switch_to.active_element.send_keys(Keys.TAB)
        if page.js("return !!document.activeElement.closest('#results')"):
            reached = page.js("return document.activeElement.className")
            break
    assert reached == "open", "Tab never reached a result"
    style = page.js(
        "const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]"
    )
    assert style == ["solid", "3px"]  # the focus ring is visible
    unlabeled = page.js(
        "return [...document.querySelectorAll('input:not([type=hidden]):not(#file), select')]"
        ".filter((c) => !c.labels.length).map((c) => c.id)"
    )
    assert unlabeled == []


def test_recording_from_the_microphone_searches_with_it(page: Page) -> None:
    page.open(f"?c={COLLECTION}")
    before = page.searches
    page.driver.find_element(By.ID, "record").click()
    wait_for(
        lambda: (
            page.js("return document.getElementById('record').getAttribute('aria-pressed')")
            == "true"
        ),
        10,
        "recording",
    )
    page.search_done(before, timeout=60)  # stops by itself after 4 s, then uploads WebM/Opus
    assert page.js("return document.body.dataset.searchState") == "done", page.text("#error")
    assert "the file recording.webm" in page.text("#status")
    assert len(page.hits()) == 18


@pytest.fixture
def keyed_site(page_settings: Settings, site: str) -> Iterator[str]:
    """The same catalog served by a second uvicorn that requires the key ``sesame``."""
    with serve(page_settings.model_copy(update={"api_keys": "sesame"})) as url:
        yield url


@pytest.fixture
def keyed_page(browser: Any, keyed_site: str) -> Iterator[Page]:
    yield from fresh_page(browser, keyed_site)


def test_a_wrong_key_brings_up_the_prompt_and_the_right_one_searches(keyed_page: Page) -> None:
    page = keyed_page
    page.allowed_statuses.add(401)
    page.open(f"?c={COLLECTION}&q=a%20dog&in=vision&k=5")
    assert page.js("return !document.getElementById('key-panel').hidden")
    assert "asks for an API key" in page.text("#key-message")
    assert page.js("return document.activeElement.id") == "api-key"
    key_box = page.driver.find_element(By.ID, "api-key")
    key_box.send_keys("wrong", Keys.ENTER)
    wait_for(page.settled, 30, "the retry")
    assert "saved API key was refused" in page.text("#key-message")
    before = page.searches
    page.driver.find_element(By.ID, "api-key").send_keys("sesame", Keys.ENTER)
    page.search_done(before)
    assert page.js("return document.getElementById('key-panel').hidden")
    assert len(page.hits()) == 5
    assert page.js("return localStorage.getItem('embedstore.apiKey')") == "sesame"
    wait_for(lambda: images_loaded(page.driver), 30, "thumbnails fetched with the key")


@pytest.fixture(scope="module")
def more(site: str, library: Path) -> str:
    """Collection ``more``: a ViSP depth frame (.bin and .npy), a smartwatch IMU recording and a video."""
    import importlib.util
    import sys

    import numpy as np
    from testdata import VISP, require_data

    from benchmarks.browser import http_json

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from ingest_media import make_video

    require_data(VISP, "Debian package visp-images-data is not installed")
    spec = importlib.util.find_spec("seglearn")
    require_data(
        spec is not None, "PyPI package seglearn is not installed (pip install --no-deps seglearn)"
    )
    assert spec is not None and spec.submodule_search_locations
    folder = library / "more"
    folder.mkdir()
    depth_bin = folder / "castel.bin"
    depth_bin.write_bytes((VISP / "mbt-depth/castel/castel/depth_image_0000.bin").read_bytes())
    millimetres = np.fromfile(depth_bin, dtype="<u2", offset=8).reshape(480, 640)
    np.save(folder / "castel.npy", millimetres.astype(np.float32) / 1000.0)
    watch = Path(spec.submodule_search_locations[0]) / "data" / "watch_dataset.npy"
    recording = np.load(watch, allow_pickle=True).item()["X"][
        0
    ]  # (1333, 6), the package's own data
    np.save(folder / "watch.npy", np.ascontiguousarray(recording, dtype=np.float32))
    make_video(folder / "dog.mp4", seconds=6.0)
    http_json("POST", f"{site}/v1/collections", {"name": "more"})
    for name, modality in [
        ("castel.bin", "depth"), ("castel.npy", "depth"), ("watch.npy", "imu"), ("dog.mp4", None)
    ]:  # fmt: skip
        body = {"path": str(folder / name), **({"modality": modality} if modality else {})}
        http_json("POST", f"{site}/v1/collections/more/items", body)
    return "more"


def canvas_drawn(page: Page, selector: str) -> bool:
    """True when the canvas has been drawn on (more than a handful of distinct pixel values)."""
    return bool(
        page.js(
            "const c = document.querySelector(arguments[0]); if (!c || c.width < 10) return false;"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "return new Set(d.filter((_, i) => i % 4 === 0)).size > 8;",
            selector,
        )
    )


def test_depth_maps_imu_series_and_video_clips_are_shown(page: Page, more: str) -> None:
    page.open(f"?c={more}&q=a%20dog&in=vision,depth,imu&k=20")  # the video by its frames
    chips = page.js("return [...document.querySelectorAll('#chips input')].map((c) => c.value)")
    # Only what the collection holds: the video counts as vision clips plus its soundtrack.
    assert sorted(chips) == ["audio", "depth", "imu", "vision"]
    modalities = {m for _, m in page.hits()}
    assert modalities == {"depth", "imu", "vision"}
    for i, _ in [h for h in page.hits() if h[1] == "depth"]:
        wait_for(lambda i=i: canvas_drawn(page, f"li[data-id='{i}'] canvas"), 30, f"depth map {i}")
    wait_for(lambda: canvas_drawn(page, "li[data-modality=imu] canvas"), 30, "the IMU plot")
    wait_for(lambda: images_loaded(page.driver), 30, "the video thumbnail")
    # A video hit plays from the start of its matching clip.
    video_hit = page.js(
        "const li = [...document.querySelectorAll('li.hit')].find((l) => l.querySelector('.clip'));"
        "return li && [li.dataset.id, li.querySelector('.clip').textContent];"
    )
    assert video_hit, "no video hit with a matching clip"
    item, clip = video_hit
    start = float(clip.split("–")[0])
    page.driver.find_element(By.CSS_SELECTOR, f"li[data-id='{item}'] .play").click()
    wait_for(
        lambda: page.js(
            f"const v = document.querySelector(\"li[data-id='{item}'] video\"); return v && v.readyState >= 1"
        ),
        30,
        "the video to load",
    )
    at = page.js(f"return document.querySelector(\"li[data-id='{item}'] video\").currentTime")
    assert at >= start - 0.05  # seeked to the clip (playback may have moved on a little)


DISPATCH_IMAGE = """
const [kind, done] = arguments;
const canvas = document.createElement('canvas');
canvas.width = canvas.height = 64;
const ctx = canvas.getContext('2d');
ctx.fillStyle = '#c0392b'; ctx.fillRect(0, 0, 64, 64);
ctx.fillStyle = '#2980b9'; ctx.fillRect(16, 16, 32, 32);
canvas.toBlob((blob) => {
  const data = new DataTransfer();
  data.items.add(new File([blob], kind + '.png', { type: 'image/png' }));
  if (kind === 'pasted') {
    document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
  } else {
    window.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, cancelable: true }));
    window.dispatchEvent(new DragEvent('drop', { dataTransfer: data, cancelable: true }));
  }
  done(true);
}, 'image/png');
"""


@pytest.mark.parametrize("kind", ["pasted", "dropped"])
def test_a_pasted_or_dropped_image_searches_with_it(page: Page, kind: str) -> None:
    page.open(f"?c={COLLECTION}&in=vision")
    before = page.searches
    page.driver.execute_async_script(DISPATCH_IMAGE, kind)
    page.search_done(before)
    assert f"the file {kind}.png" in page.text("#status")
    assert len(page.hits()) == 12 and {m for _, m in page.hits()} == {"vision"}
    assert page.js("return document.getElementById('drop-overlay').hidden")


def test_the_metadata_filter_takes_the_cli_syntax(page: Page) -> None:
    page.open(f"?c={COLLECTION}&q=a%20dog&where=ext%3D.wav")
    assert [m for _, m in page.hits()] == ["audio"] * 3
    assert page.js("return document.getElementById('advanced').open")
    where = page.driver.find_element(By.ID, "where")
    where.clear()
    where.send_keys("folder=images; size>=1")
    type_search(page, "a dog")
    assert len(page.hits()) == 12 and {m for _, m in page.hits()} == {"vision"}
    assert query_of(page)["where"] == ["folder=images; size>=1"]
    where.clear()
    where.send_keys("size>>3")
    page.driver.find_element(By.ID, "search-button").click()
    wait_for(lambda: page.js("return !document.getElementById('error').hidden"), 10, "the error")
    assert "doubled operator" in page.text("#error")
    assert page.js("return document.activeElement.id") == "where"


def test_the_collection_choice_is_remembered(page: Page, more: str) -> None:
    from selenium.webdriver.support.ui import Select

    page.open(f"?c={COLLECTION}")
    Select(page.driver.find_element(By.ID, "collection")).select_by_value(more)
    wait_for(lambda: "c=more" in page.driver.current_url, 10, "the address to follow")
    wait_for(
        lambda: (
            "imu"
            in page.js("return [...document.querySelectorAll('#chips input')].map((c) => c.value)")
        ),
        10,
        "the chips of the new collection",
    )
    page.open("")
    assert page.js("return document.getElementById('collection').value") == more
    assert page.driver.current_url.endswith(f"/?c={more}&k=20&offset=0")
