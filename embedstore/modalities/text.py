"""Text: open_clip's CLIP BPE tokenizer with ImageBind's special-token handling -> (77,) int64."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import regex
import torch

from embedstore.modalities.registry import Modality, register_modality
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, read_text

if TYPE_CHECKING:
    from open_clip.tokenizer import SimpleTokenizer

CONTEXT_LENGTH = 77
# The original CLIP markers. open_clip names its special tokens differently and does not
# escape them in its pattern, so literal markers in user text would not map to the real ids.
_SPECIALS = ("<|startoftext|>", "<|endoftext|>")
_PIECES = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


@functools.cache
def tokenizer() -> SimpleTokenizer:
    """The shared CLIP tokenizer (49408 ids, SOT 49406, EOT 49407), built once per process."""
    from open_clip.tokenizer import SimpleTokenizer  # imported on first use: slow to import

    tok = SimpleTokenizer(context_length=CONTEXT_LENGTH)
    for marker, token_id in zip(_SPECIALS, (tok.sot_token_id, tok.eot_token_id), strict=True):
        tok.encoder[marker] = token_id
        tok.cache[marker] = marker
    special = "|".join(regex.escape(m) for m in _SPECIALS)
    tok.pat = regex.compile(f"{special}|{_PIECES}", regex.IGNORECASE)
    return tok


def tokenize(texts: list[str]) -> torch.Tensor:
    """Token ids (N, 77) int64: SOT + BPE ids, cut to 76, then EOT, zero padded."""
    return tokenizer()(texts, context_length=CONTEXT_LENGTH)


def load(source: Source, limits: DecodeLimits = DEFAULT_LIMITS) -> torch.Tensor:
    """A ``str`` (the text itself) or a UTF-8 text file (``Path`` or bytes) as (77,) int64 ids."""
    return tokenize([read_text(source, limits)])[0]


TEXT = register_modality(
    Modality("text", load, frozenset({".txt", ".md"}), "text -> int64 (77,) CLIP BPE ids")
)
