"""Videos: clip vectors (vision, with times) and one vector for the sound track."""

from __future__ import annotations

from pathlib import Path

from ingest_media import make_video

from embedstore.engine import Engine


def test_video_gives_clips_and_sound(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    video = make_video(tmp_path / "clips" / "dog.mp4")
    assert video.stat().st_size > 0
    report = engine.index([tmp_path / "clips"], "videos", encoder="imagebind_test")
    assert report.added == 1 and report.failed == ()
    coll = engine.collection("videos")
    item = coll.get_item(str(video))
    assert item.modality == "video" and item.metadata["duration"] == 3.0
    vectors = coll.vectors_of(item.id)
    clips = [v for v in vectors if v.modality == "vision"]
    assert [(v.start, v.end) for v in clips] == [
        (0.0, 2.0),
        (0.25, 2.25),
        (0.5, 2.5),
        (0.75, 2.75),
        (1.0, 3.0),
    ]
    assert [v.modality for v in vectors].count("audio") == 1
    hits = engine.search("videos", file=video, k=1, modalities=["vision"])
    assert hits[0].uri == str(video) and (hits[0].start, hits[0].end) in [
        (v.start, v.end) for v in clips
    ]
    assert engine.search("videos", text="a dog", k=1, modalities=["audio"])[0].modality == "audio"
