"""``embedstore index`` reports symlinks leading out of the folder instead of following them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ingest_media import index_json


def test_index_skips_and_reports_links_out(invoke, library: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for the index\n")
    os.symlink("../../outside", library / "images" / "out")
    os.symlink("..", library / "images" / "loop")
    result = invoke("index", library, "-c", "media", "--encoder", "imagebind_test", "--json")
    assert result.stderr.count(f"skipping {library}/images/out: outside {library}\n") == 1
    report = json.loads(result.stdout)
    assert report["added"] == 9 and report["skipped"] == [
        f"skipping {library}/images/out: outside {library}"
    ]
    uris = [i["uri"] for i in json.loads(invoke("ls", "-c", "media", "--json").stdout)]
    assert len(uris) == 9 and not any("secret" in u or "/loop/" in u for u in uris)
    assert index_json(invoke, library, "-c", "media")["unchanged"] == 9
