"""The LLaVA family on Hugging Face ``transformers``: llava-hf checkpoints and ``llava_test``.

``llava:<folder or hub id>`` loads a checkpoint from a local folder or the local Hugging Face
cache through ``from_pretrained`` (``local_files_only``: nothing is downloaded here). LLaVA-1.5,
LLaVA-NeXT and LLaVA-OneVision checkpoints share this code: ``AutoModelForImageTextToText`` picks
the class, ``AutoProcessor`` the image processing and the checkpoint's own chat template.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from embedstore.errors import InvalidInput, Unavailable, WeightsNotFound
from embedstore.generators.base import Generator, Prompt
from embedstore.generators.registry import (
    GeneratorInfo,
    register_generator,
    register_generator_prefix,
)

FAMILIES = ("llava", "llava_next", "llava_onevision")
INSTALL_HINT = "install the generator extra: pip install 'embedstore[llava]'"


def _dtype(precision: str, device: str) -> Any:
    """``auto``: bf16 on CUDA, fp32 elsewhere; otherwise the named precision."""
    import torch

    if precision == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    table = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}
    return table.get(precision, torch.float16)


class LlavaGenerator(Generator):
    """Batched greedy generation with a llava-hf model and its processor."""

    def __init__(self, name: str, model: Any, processor: Any, device: str, dtype: Any) -> None:
        self.name = name
        self.device = device
        self.dtype = dtype
        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        text_config = getattr(model.config, "text_config", model.config)
        self.max_context = int(getattr(text_config, "max_position_embeddings", 4096))
        self._lock = threading.Lock()  # one generation at a time on this model

    # -- prompts ---------------------------------------------------------------------------------
    def template(self, prompt: Prompt) -> str:
        """The prompt in the checkpoint's chat template, ready for the assistant's answer."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in prompt.images]
        content.append({"type": "text", "text": prompt.text})
        text: str = self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
        return text

    def _inputs(self, prompts: Sequence[Prompt]) -> Any:
        images = [im for p in prompts for im in p.images]
        kwargs: dict[str, Any] = {"text": [self.template(p) for p in prompts]}
        if images:
            kwargs["images"] = images
        inputs = self.processor(**kwargs, return_tensors="pt", padding=True)
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return inputs

    def count_tokens(self, prompt: Prompt) -> int:
        """Prompt tokens with every picture expanded to its image tokens."""
        return int(self._inputs([prompt])["input_ids"].shape[1])

    # -- generation ------------------------------------------------------------------------------
    def _options(self, max_new_tokens: int) -> dict[str, Any]:
        return {
            "max_new_tokens": max_new_tokens,
            "do_sample": False,
            "pad_token_id": self.tokenizer.pad_token_id,
        }

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int = 64) -> list[str]:
        """Greedy answers to a batch of prompts."""
        import torch

        if not prompts:
            return []
        inputs = self._inputs(prompts)
        with self._lock, torch.inference_mode():
            out = self.model.generate(**inputs, **self._options(max_new_tokens))
        new = out[:, inputs["input_ids"].shape[1] :]
        return [s.strip() for s in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def stream(
        self, prompt: Prompt, *, max_new_tokens: int = 256, max_time: float | None = None
    ) -> Iterator[str]:
        """Pieces of the greedy answer as they are decoded (generation runs in a thread)."""
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        inputs = self._inputs([prompt])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []
        stop = threading.Event()  # set when the reader goes away (a closed HTTP stream)

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    self.model.generate(
                        **inputs,
                        **self._options(max_new_tokens),
                        streamer=streamer,
                        max_time=max_time,
                        stopping_criteria=StoppingCriteriaList([_stop_when(stop)]),
                    )
            except BaseException as e:  # re-raised in the caller's thread
                failure.append(e)
                streamer.end()

        thread = threading.Thread(target=run, name="embedstore-generate", daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            stop.set()
            thread.join()
        if failure:
            raise failure[0]


def _stop_when(event: threading.Event) -> Any:
    """A stopping criterion that ends generation once ``event`` is set."""
    from transformers import StoppingCriteria

    class Flag(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool)

    return Flag()


# -- loading -------------------------------------------------------------------------------------
def _require_transformers() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError as e:
        raise Unavailable(f"LLaVA needs the 'transformers' package; {INSTALL_HINT}") from e


def load_llava(source: str, *, name: str, device: str, precision: str) -> LlavaGenerator:
    """Load a llava-hf checkpoint from a folder or the local Hugging Face cache (no download)."""
    _require_transformers()
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    path = Path(source).expanduser()
    ref = str(path) if path.is_dir() else source
    try:
        config = AutoConfig.from_pretrained(ref, local_files_only=True)
    except (OSError, ValueError) as e:
        raise WeightsNotFound(
            f"LLaVA checkpoint {source!r} is neither a folder nor in the local Hugging Face "
            f"cache; fetch it first, e.g.: hf download {source if '/' in source else 'llava-hf/llava-1.5-7b-hf'}"
        ) from e
    if config.model_type not in FAMILIES:
        raise InvalidInput(
            f"{source!r} is a {config.model_type!r} checkpoint, not one of: {', '.join(FAMILIES)}",
            field="model",
        )
    dtype = _dtype(precision, device)
    model = AutoModelForImageTextToText.from_pretrained(ref, local_files_only=True, dtype=dtype)
    processor = AutoProcessor.from_pretrained(ref, local_files_only=True)
    return LlavaGenerator(name, model, processor, device, dtype)


def _resolve(rest: str) -> GeneratorInfo:
    name = f"llava:{rest}"

    def factory(*, device: str = "cpu", precision: str = "auto") -> LlavaGenerator:
        return load_llava(rest, name=name, device=device, precision=precision)

    return GeneratorInfo(name, "llava", f"LLaVA checkpoint {rest}", factory)


register_generator_prefix("llava", _resolve)


@register_generator(
    "llava_test",
    family="llava",
    description="Tiny seeded random LLaVA (CLIP tower + Llama) built in process; no weights",
)
def llava_test(*, device: str = "cpu", precision: str = "auto") -> LlavaGenerator:
    """The tiny LLaVA of :mod:`embedstore.generators.tiny`, seeded, in fp32 unless told otherwise."""
    _require_transformers()
    from embedstore.generators.tiny import TINY_SEED, build_tiny_llava

    model, processor = build_tiny_llava(TINY_SEED)
    return LlavaGenerator("llava_test", model, processor, device, _dtype(precision, "cpu"))
