"""LanguageBind's text tokens: the CLIP BPE as the hub tokenizer (HF ``CLIPTokenizer``) applies it.

Literal ``<|startoftext|>`` / ``<|endoftext|>`` become the real ids; every other piece goes through
``ftfy.fix_text``, whitespace collapsing and lower-casing (no separate ``html.unescape``), the CLIP
pre-tokeniser and byte-level BPE. Ids are cut to 75, wrapped in SOT/EOT and padded to 77 with the
end-of-text id 49407 (LanguageBind's pad token), so the model pools at the first largest id.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import re
from pathlib import Path

import regex
import torch

from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, read_text

CONTEXT_LENGTH = 77
SOT, EOT = 49406, 49407
_SPECIAL = re.compile(r"(<\|startoftext\|>|<\|endoftext\|>)")
_PATTERN = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)


def _vocab_file() -> Path:
    """open_clip's ``bpe_simple_vocab_16e6.txt.gz``, found without importing open_clip (slow)."""
    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    raise FileNotFoundError("open_clip's bpe_simple_vocab_16e6.txt.gz was not found")


def _byte_symbols() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    extra = [b for b in range(256) if b not in keep]
    return {**{b: chr(b) for b in keep}, **{b: chr(256 + i) for i, b in enumerate(extra)}}


class BPE:
    """The CLIP byte-level BPE: 256 byte symbols, the same with ``</w>``, 48,894 merges, 2 specials."""

    def __init__(self, path: Path) -> None:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
        self.byte_encoder = _byte_symbols()
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one instance per process
    def bpe(self, token: str) -> list[int]:
        """Ids of one pre-token (already mapped to byte symbols)."""
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, 1 << 30))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return [self.encoder[w] for w in word]


@functools.cache
def _bpe() -> BPE:
    return BPE(_vocab_file())


def _clean(piece: str) -> str:
    import ftfy

    return " ".join(ftfy.fix_text(piece).split()).strip().lower()


def bpe_ids(text: str) -> list[int]:
    """BPE ids of ``text`` without SOT/EOT padding and before truncation."""
    tok = _bpe()
    ids: list[int] = []
    for piece in _SPECIAL.split(text):
        if piece == "<|startoftext|>":
            ids.append(SOT)
        elif piece == "<|endoftext|>":
            ids.append(EOT)
        elif piece:
            for word in _PATTERN.findall(_clean(piece)):
                ids.extend(tok.bpe("".join(tok.byte_encoder[b] for b in word.encode("utf-8"))))
    return ids


def tokenize(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask``, both (N, 77) int64, as the official processor gives."""
    ids = torch.full((len(texts), CONTEXT_LENGTH), EOT, dtype=torch.long)
    mask = torch.zeros((len(texts), CONTEXT_LENGTH), dtype=torch.long)
    for row, text in enumerate(texts):
        seq = [SOT, *bpe_ids(text)[: CONTEXT_LENGTH - 2], EOT]
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def load(source: Source, limits: DecodeLimits = DEFAULT_LIMITS) -> torch.Tensor:
    """A ``str`` or a UTF-8 text file as LanguageBind's (77,) int64 ids (padded with 49407)."""
    return tokenize([read_text(source, limits)])[0][0]
