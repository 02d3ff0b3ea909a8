"""What every generator does: turn prompts (pictures + text) into text, batched or streamed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Prompt:
    """One user turn: zero or more pictures (PIL images) followed by text."""

    text: str
    images: list[Any] = field(default_factory=list)


class Generator(ABC):
    """A vision-language model that writes text about pictures."""

    name: str
    max_context: int = 4096
    """Prompt plus answer tokens the model was trained for (checked before generating)."""

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int = 64) -> list[str]:
        """Greedy answers to ``prompts``, run as one batch."""

    @abstractmethod
    def stream(
        self, prompt: Prompt, *, max_new_tokens: int = 256, max_time: float | None = None
    ) -> Iterator[str]:
        """The greedy answer to one prompt, piece by piece as it is decoded."""

    @abstractmethod
    def count_tokens(self, prompt: Prompt) -> int:
        """Tokens the prompt takes in the model's template, picture tokens included."""
