"""The `Encoder` interface and the device/precision helpers every torch family shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import numpy as np
import torch

from embedstore.errors import ChecksumMismatch, InvalidConfig, InvalidInput, UnsupportedModality

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks ``cuda`` when a GPU is visible, else ``cpu``; other values are checked."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise InvalidConfig(f"Invalid device {device!r}: {e}", field="device") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidConfig(
            f"device {device!r} was asked for but CUDA is not available", field="device"
        )
    return dev


def resolve_dtype(precision: str) -> torch.dtype:
    """Map ``fp32``/``tf32``/``bf16``/``fp16`` to the parameter dtype."""
    if precision not in PRECISIONS:
        raise InvalidConfig(
            f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}",
            field="precision",
        )
    return PRECISIONS[precision]


def enable_tf32(device: torch.device, precision: str) -> None:
    """Let CUDA matmuls use TF32 when precision is ``tf32`` (a process-wide torch setting)."""
    if precision == "tf32" and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def strict_fp32(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """On CUDA with ``fp32``, keep cuDNN convolutions (the patch stems) out of TF32."""
    if device.type != "cuda" or precision != "fp32":
        return nullcontext()
    cudnn = torch.backends.cudnn
    return cudnn.flags(
        enabled=cudnn.enabled,
        benchmark=cudnn.benchmark,
        deterministic=cudnn.deterministic,
        allow_tf32=False,
    )


def assign_state(model: torch.nn.Module, state: Any, mismatch: str) -> None:
    """Assign ``state``'s tensors to ``model`` (strict keys and shapes); `ChecksumMismatch` if not.

    ``mismatch`` starts the error message (which file does not fit which configuration).
    """
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise ChecksumMismatch(f"{mismatch}: {e}", field="weights_path") from e


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation in float32 (``x / max(|x|, 1e-12)``)."""
    return torch.nn.functional.normalize(x.float(), dim=-1)


class Encoder(ABC):
    """Turns stacked, preprocessed items of one modality into L2-normalised float32 vectors."""

    name: str
    dim: int
    modalities: frozenset[str]
    version: str
    device: torch.device
    precision: str = "fp32"
    dtype: torch.dtype = torch.float32
    family: ClassVar[str] = ""

    @abstractmethod
    def encode(self, modality: str, batch: torch.Tensor) -> np.ndarray:
        """Embed a batch as stacked by ``embedstore.modalities.load``: float32 (B, dim), unit rows."""

    def _place(
        self, name: str, model: torch.nn.Module, *, version: str, device: str, precision: str
    ) -> torch.nn.Module:
        """Set name, device, precision and version; return ``model`` moved there in eval mode."""
        self.name = name
        self.device = resolve_device(device)
        self.precision = precision
        self.dtype = resolve_dtype(precision)
        self.version = f"{version}/{precision}"
        enable_tf32(self.device, precision)
        return model.to(device=self.device, dtype=self.dtype).eval()

    def check_modality(self, modality: str) -> None:
        """Raise `UnsupportedModality` when this encoder cannot embed ``modality``."""
        if modality not in self.modalities:
            raise UnsupportedModality(
                f"Encoder {self.name!r} cannot embed {modality!r}; it supports "
                f"{', '.join(sorted(self.modalities))}",
                field="modality",
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={str(self.device)!r}, "
            f"precision={self.precision!r})"
        )


def as_batch(modality: str, batch: Any, ndims: tuple[int, ...], name: str) -> torch.Tensor:
    """Check that ``batch`` is a tensor with one of the allowed ranks, else raise `InvalidInput`."""
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
    if not isinstance(batch, torch.Tensor):
        raise InvalidInput(
            f"{name}: a {modality} batch must be a torch.Tensor, got {type(batch).__name__}",
            field=modality,
        )
    if batch.ndim not in ndims:
        raise InvalidInput(
            f"{name}: a {modality} batch must have {' or '.join(map(str, ndims))} dimensions, "
            f"got shape {tuple(batch.shape)}",
            field=modality,
        )
    return batch
