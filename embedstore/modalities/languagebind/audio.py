"""LanguageBind's audio processor: a 16 kHz log-mel fbank cut into 3 chunks of ``target_length``.

Load (float32, PCM16 / 32768), resample to 16 kHz, subtract the mean over all channels and
samples, Kaldi fbank of channel 0 (``num_mel_bins`` bins, 25 ms Hanning windows every 10 ms),
then 3 chunks of ``target_length`` frames stacked as channels: (3, mel, target_length), normalised
by ``(x - mean) / (2 * std)``. Clips shorter than the target are tiled (not padded); longer
clips take 3 chunks, one from each third of the valid start positions. The official code draws
those starts at random (numpy's global RNG); here ``chunk_starts=[a, b, c]`` gives them and the
default takes the **middle** start of each third: deterministic, and the expected position of the
official random draw, so the three chunks still cover the beginning, middle and end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from embedstore.modalities.audio import kaldi_fbank, read_waveform
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, decoding, invalid

SAMPLE_RATE = 16000
MEL_BINS = 112
TARGET_LENGTH = 1036
MEAN = -4.2677393
STD = 4.5689974
WINDOW = 400  # samples in one 25 ms frame at 16 kHz


def chunk_groups(frames: int, target: int = TARGET_LENGTH) -> list[np.ndarray]:
    """The valid starts ``0 .. frames - target`` split in 3 near-equal groups (empty -> [0])."""
    groups = np.array_split(np.arange(frames - target + 1), 3)
    return [g if len(g) else np.array([0]) for g in groups]


def default_starts(frames: int, target: int = TARGET_LENGTH) -> list[int]:
    """The middle start of each group: the deterministic stand-in for the official random draw."""
    return [int(g[len(g) // 2]) for g in chunk_groups(frames, target)]


def fbank(waveform: torch.Tensor, mel_bins: int = MEL_BINS) -> torch.Tensor:
    """Kaldi fbank (frames, mel_bins) of channel 0 with the official settings."""
    return kaldi_fbank(waveform, mel_bins)


def chunks(
    mel: torch.Tensor, target: int = TARGET_LENGTH, starts: Sequence[int] | None = None
) -> torch.Tensor:
    """(3, mel_bins, target) from a (frames, mel_bins) fbank: tiled, repeated or 3 chunks."""
    frames = mel.shape[0]
    if frames > target:
        if starts is None:
            starts = default_starts(frames, target)
        if len(starts) != 3 or any(not 0 <= int(s) <= frames - target for s in starts):
            raise ValueError(
                f"chunk_starts must be 3 starts in 0..{frames - target}, got {list(starts)}"
            )
        parts = [mel[int(s) : int(s) + target] for s in starts]
    else:
        if frames < target:
            mel = mel.repeat(int(target / frames) + 1, 1)[:target]
        parts = [mel, mel, mel]
    return torch.stack(parts).transpose(1, 2)


def waveform_to_input(
    waveform: torch.Tensor,
    rate: int,
    *,
    source: Source = b"",
    mel_bins: int = MEL_BINS,
    target_length: int = TARGET_LENGTH,
    mean: float = MEAN,
    std: float = STD,
    chunk_starts: Sequence[int] | None = None,
) -> torch.Tensor:
    """The official transform of a (channels, n) float32 waveform: (3, mel_bins, target_length)."""
    if rate != SAMPLE_RATE:
        import torchaudio

        waveform = torchaudio.functional.resample(waveform, rate, SAMPLE_RATE)
    elif waveform.shape[0] > 1:
        # the official loader hands over a transposed (samples, channels) array; the mean over
        # that layout can differ in the last bit from the mean over a contiguous copy
        waveform = waveform.T.contiguous().T
    if waveform.shape[1] < WINDOW:
        raise invalid(
            source,
            f"audio too short: {waveform.shape[1]} samples at 16 kHz, need at least {WINDOW}",
        )
    waveform = waveform - waveform.mean()
    x = chunks(fbank(waveform, mel_bins), target_length, chunk_starts)
    return (x - mean) / (std * 2)


def load(
    source: Source,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    mel_bins: int = MEL_BINS,
    target_length: int = TARGET_LENGTH,
    chunk_starts: Sequence[int] | None = None,
) -> torch.Tensor:
    """An audio file as LanguageBind's (3, mel_bins, target_length) float32 input."""
    waveform, rate = read_waveform(source, limits)
    with decoding(source, "audio"):
        return waveform_to_input(
            waveform,
            rate,
            source=source,
            mel_bins=mel_bins,
            target_length=target_length,
            chunk_starts=chunk_starts,
        ).contiguous()
