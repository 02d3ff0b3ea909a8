"""Captions: pictures and video keyframes described by a generator, stored as searchable text.

Incremental: an item already captioned by the same model is skipped (if re-embedding with
another encoder dropped its caption's vector, only the vector is made again). Each batch of captions is
embedded with the collection's text tower and written with ``Collection.set_captions`` (metadata
``caption`` + ``caption_model``, a ``text`` vector on the item, the keyword body) in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedstore.errors import EmbedstoreError, UnsupportedModality
from embedstore.modalities.sources import DecodeLimits, Source
from embedstore.types import Failure

if TYPE_CHECKING:
    from PIL import Image

    from embedstore.engine import Engine
    from embedstore.store import Collection
    from embedstore.store.types import ItemInfo

log = logging.getLogger(__name__)
CAPTIONABLE = ("vision", "video")
PAGE = 500
VIDEO_HINT = "These are frames of one video, in order. "


@dataclass(frozen=True, slots=True)
class CaptionReport:
    """What one captioning run did."""

    captioned: int = 0
    skipped: int = 0
    failed: tuple[Failure, ...] = ()
    seconds: float = 0.0
    tokens: int = 0  # caption tokens generated (throughput figures)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's ``--json`` form: counts only (failures go to stderr)."""
        return {"captioned": self.captioned, "skipped": self.skipped, "failed": len(self.failed)}


# -- media -------------------------------------------------------------------------------------
def _rgb(img: Image.Image) -> Image.Image:
    """RGB, with transparent parts (cut-out stamps, icons) on white."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return img.convert("RGB")


def keyframes(source: Source, n: int, limits: DecodeLimits) -> list[Image.Image]:
    """``n`` frames evenly spread over a video (the middle of ``n`` equal spans)."""
    import av

    from embedstore.modalities.sources import open_source
    from embedstore.modalities.video import _duration, _grab_frames

    with open_source(source, limits) as f, av.open(f, metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        duration = _duration(container, stream) or 0.0
        times = [duration * (i + 0.5) / n for i in range(n)]
        return [_rgb(im) for im in _grab_frames(container, source, times, limits)]


def pictures_of(modality: str, uri: str, frames: int, limits: DecodeLimits) -> list[Image.Image]:
    """What a generator sees of an item: the picture, or a video's keyframes."""
    from embedstore.modalities.vision import open_image

    if modality == "video":
        return keyframes(Path(uri), frames, limits)
    return [_rgb(open_image(Path(uri), limits))]


# -- the run -----------------------------------------------------------------------------------
def _with_text_vector(coll: Collection, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` carry a ``text`` vector (their caption's)."""
    from sqlalchemy import select

    from embedstore.store.tables import vectors

    found: set[int] = set()
    with coll.store.engine.connect() as conn:
        for start in range(0, len(ids), PAGE):
            q = select(vectors.c.item_id).where(
                vectors.c.item_id.in_(list(ids[start : start + PAGE])), vectors.c.modality == "text"
            )
            found.update(int(i) for i in conn.execute(q).scalars())
    return found


def pending(
    coll: Collection, model: str, where: Mapping[str, Any] | None
) -> tuple[list[ItemInfo], list[ItemInfo], int]:
    """Pictures and videos to caption with ``model``, those whose ``model`` caption lost its
    vector (re-embedded with another encoder: only the vector is made again), and how many are
    done already."""
    todo: list[ItemInfo] = []
    captioned: list[ItemInfo] = []
    offset = 0
    scope = {**(where or {}), "modality": {"in": list(CAPTIONABLE)}}
    while True:
        page = coll.list_items(where=scope, limit=PAGE, offset=offset, status="ok")
        for item in page:
            done = item.metadata.get("caption_model") == model and item.metadata.get("caption")
            (captioned if done else todo).append(item)
        if len(page) < PAGE:
            break
        offset += PAGE
    with_vector = _with_text_vector(coll, [it.id for it in captioned])
    lost = [it for it in captioned if it.id not in with_vector]
    return todo, lost, len(captioned) - len(lost)


def embed_texts(engine: Engine, coll: Collection, texts: Sequence[str]) -> np.ndarray:
    """Text embeddings of ``texts`` with the collection's encoder: ``(n, dim)``."""
    import torch

    from embedstore.modalities import load

    enc = engine.collection_encoder(coll)
    if "text" not in enc.modalities:
        raise UnsupportedModality(
            f"Encoder {enc.name!r} of collection {coll.name!r} cannot embed text, so captions "
            "cannot become searchable vectors"
        )
    batch = torch.stack([load("text", t) for t in texts])
    return engine.encode(enc, "text", batch)


def caption_collection(
    engine: Engine,
    collection: str,
    model: str | None = None,
    *,
    where: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CaptionReport:
    """Caption every picture and video of ``collection`` that ``model`` has not captioned yet."""
    from embedstore.generators import Prompt
    from embedstore.store.captions import Caption

    start = time.perf_counter()
    s = engine.settings
    coll = engine.collection(collection)
    model = model or s.generator
    todo, lost, skipped = pending(coll, model, where)
    restored = 0
    for batch in _chunks(lost, s.batch_size):  # the caption stays, its vector is made again
        texts = [str(it.metadata["caption"]) for it in batch]
        vecs = embed_texts(engine, coll, texts)
        restored += coll.set_captions(
            [Caption(it.id, t, model, v) for it, t, v in zip(batch, texts, vecs)]
        )
    if not todo:
        return CaptionReport(restored, skipped, (), time.perf_counter() - start)
    generator = engine.generator(model)
    limits = DecodeLimits.from_settings(s)
    size = batch_size or s.generator_batch_size
    failed: list[Failure] = []
    done = tokens = 0
    for batch in _chunks(todo, size):
        prompts, ready = [], []
        for item in batch:
            try:
                pics = pictures_of(item.modality, item.uri, s.caption_frames, limits)
            except (EmbedstoreError, OSError, ValueError) as e:
                failed.append(Failure(item.uri, str(e)))
                continue
            hint = VIDEO_HINT if item.modality == "video" and len(pics) > 1 else ""
            prompts.append(Prompt(hint + s.caption_prompt, pics))
            ready.append(item)
        if ready:
            texts = generator.generate(prompts, max_new_tokens=s.caption_max_tokens)
            tokens += sum(_token_count(generator, t) for t in texts)
            vecs = embed_texts(engine, coll, texts)
            done += coll.set_captions(
                [Caption(it.id, t, model, v) for it, t, v in zip(ready, texts, vecs)]
            )
        if progress is not None:
            progress(done + len(failed), len(todo))
    seconds = time.perf_counter() - start
    return CaptionReport(done + restored, skipped, tuple(failed), seconds, tokens)


def _token_count(generator: Any, text: str) -> int:
    tok = getattr(generator, "tokenizer", None)
    return len(tok(text, add_special_tokens=False)["input_ids"]) if tok is not None else 0


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = ["CaptionReport", "caption_collection", "keyframes", "pictures_of"]
