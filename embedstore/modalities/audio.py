"""Audio: soundfile / PyAV decoding and ImageBind's mel-spectrogram clips -> (3, 1, 128, 204)."""

from __future__ import annotations

import functools
import logging
import math
from fractions import Fraction

import numpy as np
import soundfile
import torch
import torchaudio
import torchaudio.functional.functional as _F

from embedstore.errors import PayloadTooLarge
from embedstore.modalities.registry import Modality, register_modality
from embedstore.modalities.sources import (
    DEFAULT_LIMITS,
    DecodeLimits,
    Source,
    decoding,
    describe,
    invalid,
    open_source,
)

log = logging.getLogger(__name__)

EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a", ".opus"})
SAMPLE_RATE = 16_000
CLIP_SECONDS = 2
CLIPS = 3
MEL_BINS = 128
TARGET_FRAMES = 204
MEAN, STD = -4.268, 9.138
MIN_SAMPLES = 400  # one 25 ms fbank window at 16 kHz
MAX_CACHED_PHASES = 1000  # cache resampling kernels with at most this many output phases


@functools.lru_cache(maxsize=16)
def _resample_kernel(orig: int, new: int) -> tuple[torch.Tensor, int]:
    gcd = math.gcd(orig, new)
    return _F._get_sinc_resample_kernel(orig, new, gcd, dtype=torch.float32)  # type: ignore[no-any-return]


def resample(waveform: torch.Tensor, orig: int, new: int = SAMPLE_RATE) -> torch.Tensor:
    """``torchaudio.functional.resample`` with its defaults, caching the sinc kernel per rate pair."""
    if orig == new:
        return waveform
    gcd = math.gcd(orig, new)
    # Odd rates (11127 Hz -> 16 kHz has gcd 1) give kernels of hundreds of MB: build those per
    # call and let them go instead of keeping up to 16 of them alive in every worker.
    small = new // gcd <= MAX_CACHED_PHASES
    if (
        not small
        or waveform.dtype != torch.float32
        or not hasattr(_F, "_apply_sinc_resample_kernel")
    ):
        return torchaudio.functional.resample(waveform, orig, new)
    kernel, width = _resample_kernel(orig, new)
    return _F._apply_sinc_resample_kernel(waveform, orig, new, gcd, kernel, width)  # type: ignore[no-any-return]


def clip_windows(
    duration: float, clip_seconds: float = CLIP_SECONDS, clips: int = CLIPS
) -> list[tuple[Fraction, Fraction]]:
    """(start, end) seconds of ``clips`` windows spread evenly over ``duration`` (exact rationals)."""
    room = Fraction(max(duration - clip_seconds, 0))
    step = room / max(clips - 1, 1)
    return [(step * k, step * k + Fraction(clip_seconds)) for k in range(clips)]


def _soundfile_read(source: Source, limits: DecodeLimits) -> tuple[np.ndarray, int] | None:
    with open_source(source, limits) as f:
        try:
            sf = soundfile.SoundFile(f)
        except soundfile.LibsndfileError:
            return None  # not a format libsndfile knows: let PyAV try
        with sf:
            _check_duration(source, sf.frames / sf.samplerate, limits)
            with decoding(source, "audio"):
                data = sf.read(dtype="float32", always_2d=True)
            return np.ascontiguousarray(data.T), sf.samplerate


def _check_duration(source: Source, seconds: float, limits: DecodeLimits) -> None:
    if seconds > limits.max_duration_s:
        raise PayloadTooLarge(
            f"{describe(source)}: {seconds:.0f} s of audio exceeds the limit of {limits.max_duration_s:.0f} s"
        )


def decode_av_audio(
    container: object, source: Source, limits: DecodeLimits
) -> tuple[np.ndarray, int]:
    """All samples of the first audio stream of an open PyAV container: (channels, n) float32, rate."""
    import av

    stream = container.streams.audio[0]  # type: ignore[attr-defined]
    rate = stream.rate or stream.codec_context.sample_rate
    if not rate:
        raise invalid(source, "audio stream has no sample rate")
    resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
    chunks: list[np.ndarray] = []
    total, cap = 0, int(limits.max_duration_s * rate)
    for frame in container.decode(stream):  # type: ignore[attr-defined]
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray())
            total += out.samples
        if total > cap:
            _check_duration(source, total / rate, limits)
    chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    if not chunks:
        raise invalid(source, "audio stream holds no samples")
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), rate


def _pyav_read(source: Source, limits: DecodeLimits) -> tuple[np.ndarray, int]:
    import av

    with open_source(source, limits) as f:
        try:
            container = av.open(f, mode="r", metadata_errors="ignore")
        except av.error.InvalidDataError as e:
            raise invalid(source, f"not an audio file we can read ({e.strerror or e})") from e
        with container, decoding(source, "audio"):
            if not container.streams.audio:
                raise invalid(source, "no audio stream")
            return decode_av_audio(container, source, limits)


def read_waveform(
    source: Source, limits: DecodeLimits = DEFAULT_LIMITS
) -> tuple[torch.Tensor, int]:
    """Decode to float32 (channels, samples) and the sample rate (PCM16 becomes int16 / 32768)."""
    with decoding(source, "audio"):
        got = _soundfile_read(source, limits)
    data, rate = got if got is not None else _pyav_read(source, limits)
    if data.size == 0 or data.shape[1] == 0:
        raise invalid(source, "audio holds no samples")
    return torch.from_numpy(data), rate


def kaldi_fbank(waveform: torch.Tensor, mel_bins: int) -> torch.Tensor:
    """Kaldi fbank (frames, mel_bins) of channel 0 at 16 kHz, as ImageBind and LanguageBind set it."""
    return torchaudio.compliance.kaldi.fbank(
        waveform,
        htk_compat=True,
        sample_frequency=SAMPLE_RATE,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=mel_bins,
        dither=0.0,
        frame_length=25,
        frame_shift=10,
    )


def waveform_to_clips(
    waveform: torch.Tensor, rate: int, *, source: Source = b"", independent_clips: bool = False
) -> torch.Tensor:
    """ImageBind's audio transform of a (channels, n) float32 waveform: (3, 1, 128, 204).

    By default each clip's mean is subtracted in place from the shared waveform, as the official
    code does, so overlapping clips see samples already shifted by earlier clips;
    ``independent_clips=True`` centres each clip on its own copy instead.
    """
    waveform = resample(waveform, rate) if rate != SAMPLE_RATE else waveform.clone()
    n = waveform.shape[1]
    if n < MIN_SAMPLES:
        raise invalid(
            source, f"audio too short: {n} samples at 16 kHz, need at least {MIN_SAMPLES}"
        )
    out = []
    for start, end in clip_windows(n / SAMPLE_RATE):
        clip = waveform[:, int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        if independent_clips:
            clip = clip.clone()
        clip -= clip.mean()
        fbank = kaldi_fbank(clip, MEL_BINS).transpose(0, 1)
        frames = fbank.shape[1]
        if abs(TARGET_FRAMES - frames) / frames > 0.2:
            log.debug("%s: clip of %d frames padded to %d", describe(source), frames, TARGET_FRAMES)
        if frames < TARGET_FRAMES:
            fbank = torch.nn.functional.pad(fbank, (0, TARGET_FRAMES - frames))
        out.append(fbank[None, :, :TARGET_FRAMES])
    mel = torch.stack(out)
    return (mel - MEAN) / STD


def load(
    source: Source, limits: DecodeLimits = DEFAULT_LIMITS, *, independent_clips: bool = False
) -> torch.Tensor:
    """An audio file as ImageBind's (3, 1, 128, 204) float32 input (3 clips of 2 s)."""
    waveform, rate = read_waveform(source, limits)
    with decoding(source, "audio"):
        return waveform_to_clips(waveform, rate, source=source, independent_clips=independent_clips)


AUDIO = register_modality(
    Modality("audio", load, EXTENSIONS, "audio -> float32 (3, 1, 128, 204) log-mel clips")
)
