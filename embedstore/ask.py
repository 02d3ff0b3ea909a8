"""Ask: retrieve with the question, then let a generator answer from the retrieved media.

The top hits go into one prompt in the model's chat template: pictures (a video's middle
keyframe) up to ``ask_max_images``, and for audio, text or pictures beyond that limit their
caption or their text. Items are numbered so the answer can cite them as ``[n]``. Limits:
pictures per prompt, prompt tokens (the last items are dropped until it fits), answer tokens
and a time limit on generation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from embedstore.errors import EmbedstoreError, InvalidQuery, NotFound
from embedstore.types import SearchResult

if TYPE_CHECKING:
    from PIL import Image

    from embedstore.engine import Engine
    from embedstore.generators import Generator, Prompt

TEXT_CHARS = 600  # of a text item, or a caption, quoted in the prompt
INSTRUCTION = (
    "Answer the question from these numbered items of a media library. "
    "Cite the items you use as [n]."
)


@dataclass(slots=True)
class Context:
    """One retrieved item as the model sees it: maybe a picture, maybe words."""

    hit: SearchResult
    modality: str
    picture: Image.Image | None = None
    words: str = ""

    def line(self, n: int, picture_no: int | None) -> str:
        name = self.hit.uri.rsplit("/", 1)[-1]
        seen = f" (picture {picture_no})" if picture_no is not None else ""
        words = f": {self.words}" if self.words else ""
        return f"[{n}] {self.modality} {name}{seen}{words}"


@dataclass(slots=True)
class Prepared:
    """A question ready to answer: the prompt and the items it holds."""

    generator: Generator
    prompt: Prompt
    items: list[SearchResult]
    max_new_tokens: int
    max_time: float
    prompt_tokens: int = 0

    def cited(self) -> list[dict[str, Any]]:
        """The ids and URIs of the items given to the model, in prompt order."""
        return [{"id": h.id, "uri": h.uri} for h in self.items]

    def stream(self) -> Iterator[str]:
        """The answer, piece by piece."""
        return self.generator.stream(
            self.prompt, max_new_tokens=self.max_new_tokens, max_time=self.max_time
        )


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer and the items it was grounded in."""

    answer: str
    items: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "items": list(self.items)}


def _words(hit: SearchResult, modality: str) -> str:
    caption = hit.metadata.get("caption")
    if isinstance(caption, str) and caption:
        return caption[:TEXT_CHARS]
    if modality == "text":
        from embedstore.store.keyword import text_of_file

        return " ".join(text_of_file(hit.uri)[:TEXT_CHARS].split())
    return ""


def _picture(engine: Engine, modality: str, hit: SearchResult) -> Image.Image | None:
    from embedstore.captioning import pictures_of
    from embedstore.modalities.sources import DecodeLimits

    if modality not in ("vision", "video"):
        return None
    try:
        pics = pictures_of(modality, hit.uri, 1, DecodeLimits.from_settings(engine.settings))
    except (EmbedstoreError, OSError, ValueError):
        return None  # the file changed or went away since it was indexed: words only
    return pics[0] if pics else None


def build_prompt(question: str, contexts: Sequence[Context]) -> Prompt:
    """The prompt text (items numbered, pictures in order) and its pictures."""
    from embedstore.generators import Prompt

    lines, pictures = [], []
    for n, ctx in enumerate(contexts, start=1):
        no = None
        if ctx.picture is not None:
            pictures.append(ctx.picture)
            no = len(pictures)
        lines.append(ctx.line(n, no))
    text = f"{INSTRUCTION}\n" + "\n".join(lines) + f"\nQuestion: {question}"
    return Prompt(text, pictures)


def prepare(
    engine: Engine,
    collection: str,
    question: str,
    *,
    k: int = 4,
    modalities: Sequence[str] | None = None,
    mode: str = "hybrid",
    model: str | None = None,
) -> Prepared:
    """Retrieve for ``question`` and build the prompt within the configured limits."""
    s = engine.settings
    question = question.strip() if isinstance(question, str) else ""
    if not question:
        raise InvalidQuery("The question is empty", field="question")
    if len(question) > s.max_query_chars:
        raise InvalidQuery(
            f"The question has {len(question)} characters; the limit is {s.max_query_chars}",
            field="question",
        )
    if k < 1 or k > s.max_k:
        raise InvalidQuery(f"k must be between 1 and {s.max_k}, got {k}", field="k")
    where = {"modality": {"in": sorted(set(modalities))}} if modalities else None
    hits = engine.search(collection, text=question, k=k, mode=mode, where=where)
    coll = engine.collection(collection)
    contexts: list[Context] = []
    for hit in hits:
        # a hit's modality is the matching vector's (a caption matches as text): the item's own
        modality = coll.get_item(hit.id).modality if hit.modality == "text" else hit.modality
        room = sum(c.picture is not None for c in contexts) < s.ask_max_images
        picture = _picture(engine, modality, hit) if room else None
        ctx = Context(hit, modality, picture, _words(hit, modality))
        if ctx.picture is not None or ctx.words:
            contexts.append(ctx)
    if not contexts:
        raise NotFound(
            f"Nothing in collection {collection!r} that a model can read matches the question "
            f"(index pictures or text, or caption the collection: embedstore caption -c {collection})"
        )
    generator = engine.generator(model)
    prompt = build_prompt(question, contexts)
    tokens = generator.count_tokens(prompt)
    while tokens > s.ask_max_prompt_tokens and len(contexts) > 1:
        contexts.pop()
        prompt = build_prompt(question, contexts)
        tokens = generator.count_tokens(prompt)
    if tokens > s.ask_max_prompt_tokens:
        raise InvalidQuery(
            f"The prompt takes {tokens} tokens even with one item; the limit is "
            f"{s.ask_max_prompt_tokens} (ask_max_prompt_tokens)",
            field="question",
        )
    left = generator.max_context - tokens
    max_new = min(s.ask_max_answer_tokens, left) if left > 0 else 1
    return Prepared(generator, prompt, [c.hit for c in contexts], max_new, s.ask_timeout_s, tokens)


def ask(
    engine: Engine,
    collection: str,
    question: str,
    *,
    k: int = 4,
    modalities: Sequence[str] | None = None,
    mode: str = "hybrid",
    model: str | None = None,
) -> Answer:
    """Answer ``question`` from the collection's best ``k`` items; returns the items used."""
    prepared = prepare(
        engine, collection, question, k=k, modalities=modalities, mode=mode, model=model
    )
    return Answer("".join(prepared.stream()).strip(), prepared.cited())


__all__ = ["Answer", "Prepared", "ask", "build_prompt", "prepare"]
