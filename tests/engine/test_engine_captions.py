"""Captioning a video from its keyframes, through the engine with the tiny seeded LLaVA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ingest_media import make_video

from embedstore.captioning import VIDEO_HINT, pictures_of
from embedstore.engine import Engine
from embedstore.modalities.sources import DecodeLimits

pytest.importorskip("transformers", reason="the [llava] extra is not installed")


@pytest.mark.slow
def test_a_video_is_captioned_from_its_keyframes(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    video = make_video(tmp_path / "clips" / "dog.mp4")  # a 3 s pan over a photo
    frames = pictures_of("video", str(video), 3, DecodeLimits())
    assert [f.size for f in frames] == [(128, 96)] * 3
    pixels = [np.asarray(f, dtype=np.float32) for f in frames]
    # the pan moves the picture: the keyframes (0.5 s, 1.5 s, 2.5 s) are three different views
    assert (
        min(np.abs(a - b).mean() for a, b in [(pixels[0], pixels[1]), (pixels[1], pixels[2])]) > 1
    )

    engine.index([tmp_path / "clips"], "videos", encoder="imagebind_test")
    report = engine.caption("videos", "llava_test")
    assert report.captioned == 1 and report.failed == ()
    item = engine.collection("videos").get_item(str(video))
    # greedy decoding on this machine: the stored caption is the model's answer to those frames
    from embedstore.generators import Prompt

    settings = engine.settings
    prompt = Prompt(VIDEO_HINT + settings.caption_prompt, frames)
    expected = engine.generator("llava_test").generate(
        [prompt], max_new_tokens=settings.caption_max_tokens
    )
    assert item.metadata["caption"] == expected[0]
    assert item.metadata["caption_model"] == "llava_test"
    kinds = [v.modality for v in engine.collection("videos").vectors_of(item.id)]
    assert kinds.count("text") == 1 and "vision" in kinds and "audio" in kinds
