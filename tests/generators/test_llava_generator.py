"""The LLaVA family: a tiny checkpoint written with ``save_pretrained`` and loaded back through
``llava:<folder>``, exactly the path a user's llava-hf checkpoint takes (no download)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from testdata import require_module

from embedstore.errors import UnknownGenerator, WeightsNotFound
from embedstore.generators import Prompt, create_generator, get_generator_info, list_generators
from embedstore.generators.llava import LlavaGenerator
from embedstore.generators.tiny import IMAGE_SIZE, PATCH, save_tiny_llava

require_module("transformers", "the [llava] extra is not installed")
pytestmark = pytest.mark.slow  # builds and loads models: tens of seconds in all


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test never reaches the network, whatever the loader does."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llava(tmp_path_factory.mktemp("llava") / "tiny-llava")


@pytest.fixture(scope="module")
def loaded(checkpoint: Path) -> LlavaGenerator:
    gen = create_generator(f"llava:{checkpoint}", device="cpu")
    assert isinstance(gen, LlavaGenerator)
    return gen


@pytest.fixture(scope="module")
def built() -> LlavaGenerator:
    gen = create_generator("llava_test", device="cpu")
    assert isinstance(gen, LlavaGenerator)
    return gen


@pytest.fixture
def pictures() -> Iterator[list[Image.Image]]:
    yield [Image.new("RGB", (64, 48), (220, 30, 30)), Image.new("RGB", (40, 40), (20, 40, 230))]


def test_registry_names_the_family() -> None:
    assert "llava_test" in [g.name for g in list_generators()]
    assert get_generator_info("llava:/models/x").family == "llava"
    with pytest.raises(UnknownGenerator, match="llava_test"):
        get_generator_info("gpt-5")


def test_a_missing_checkpoint_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound, match="hf download"):
        create_generator("llava:nobody/no-such-llava-hf", device="cpu")
    with pytest.raises(WeightsNotFound):
        create_generator(f"llava:{tmp_path / 'empty'}", device="cpu")


def test_the_saved_checkpoint_loads_as_the_same_model(
    loaded: LlavaGenerator, built: LlavaGenerator, pictures: list[Image.Image]
) -> None:
    prompts = [Prompt("Describe the picture.", [p]) for p in pictures]
    # greedy decoding of identical fp32 weights on one machine: identical tokens
    first = loaded.generate(prompts, max_new_tokens=8)
    assert first == built.generate(prompts, max_new_tokens=8)
    assert first == loaded.generate(prompts, max_new_tokens=8)
    assert all(isinstance(t, str) and t for t in first)


def test_the_checkpoints_chat_template_and_image_tokens(loaded: LlavaGenerator) -> None:
    picture = Image.new("RGB", (32, 32), (0, 128, 0))
    text = loaded.template(Prompt("What is it?", [picture]))
    assert text.startswith("USER: <image>\n") and text.endswith("ASSISTANT:")
    with_image = loaded.count_tokens(Prompt("What is it?", [picture]))
    without = loaded.count_tokens(Prompt("What is it?"))
    # the <image> placeholder becomes (32 / 8)^2 = 16 patch tokens, and the template's newline
    # after it is one more token of this vocabulary
    assert with_image - without == (IMAGE_SIZE // PATCH) ** 2 + 1


def test_streaming_gives_the_batched_answer_piece_by_piece(
    loaded: LlavaGenerator, pictures: list[Image.Image]
) -> None:
    prompt = Prompt("Describe the picture.", pictures[:1])
    pieces = list(loaded.stream(prompt, max_new_tokens=8))
    assert len(pieces) > 1
    assert "".join(pieces).strip() == loaded.generate([prompt], max_new_tokens=8)[0]
    short = "".join(loaded.stream(prompt, max_new_tokens=2))
    assert len(loaded.tokenizer(short.strip(), add_special_tokens=False)["input_ids"]) <= 2


def test_a_closed_stream_stops_generating(
    loaded: LlavaGenerator, pictures: list[Image.Image]
) -> None:
    stream = loaded.stream(Prompt("Describe.", pictures[:1]), max_new_tokens=500)
    next(stream)
    stream.close()  # the reader went away: the worker thread ends and the model is free again
    assert loaded._lock.acquire(timeout=30)
    loaded._lock.release()
