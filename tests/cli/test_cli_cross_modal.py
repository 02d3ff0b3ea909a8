"""Cross-modal search through the CLI with an encoder whose vectors mean something.

The library holds a picture, a one-second sound and a caption of a dog, a car and a bird; the
queries are other files (a mirrored photo, another second of the recording) or free text, so
no hit can be the query itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from class_encoder import CLASSES, class_encoder, other_photo, other_sound  # noqa: F401


def _search(invoke, *args: object) -> list[dict]:  # type: ignore[no-untyped-def]
    hits = json.loads(invoke("search", *args, "-c", "media", "-k", "3", "--json").stdout)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    return hits


@pytest.mark.slow
def test_captions_and_sounds_find_their_pictures(
    invoke,
    library: Path,
    tmp_path: Path,
    class_encoder: str,  # noqa: F811
) -> None:
    report = json.loads(
        invoke("index", library, "-c", "media", "--encoder", class_encoder, "--json").stdout
    )
    assert report["added"] == 9 and report["failed"] == []
    for name in CLASSES:
        picture = str(library / "images" / f"{name}.png")
        sound = str(library / "sounds" / f"{name}.wav")
        caption = str(library / f"{name}.txt")

        hits = _search(invoke, f"a {name} over there", "--in", "vision")
        assert [h["uri"] for h in hits][0] == picture and {h["modality"] for h in hits} == {
            "vision"
        }
        assert hits[0]["score"] > hits[1]["score"] + 0.5, hits  # the class, not a near tie

        query = other_sound(name, tmp_path / f"{name}-later.wav")
        hits = _search(invoke, "--file", query, "--in", "vision")
        assert hits[0]["uri"] == picture, (name, hits)
        hits = _search(invoke, "--file", query, "--in", "text")
        assert hits[0]["uri"] == caption, (name, hits)

        mirrored = other_photo(name, tmp_path / f"{name}-mirrored.png")
        hits = _search(invoke, "--file", mirrored, "--in", "audio")
        assert hits[0]["uri"] == sound, (name, hits)
