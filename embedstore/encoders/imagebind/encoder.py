"""The ImageBind encoder family: ``imagebind_huge`` (official weights) and ``imagebind_test``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from embedstore.encoders.base import (
    Encoder,
    as_batch,
    assign_state,
    strict_fp32,
)
from embedstore.encoders.cuda_graphs import GraphRunner
from embedstore.encoders.imagebind.init import init_weights
from embedstore.encoders.imagebind.layers import Trunk
from embedstore.encoders.imagebind.model import MODALITIES, ImageBindModel
from embedstore.encoders.levers import (
    Levers,
    check_levers,
    compile_blocks,
    graphs_active,
    levers_from_settings,
    sdpa_context,
)
from embedstore.encoders.registry import register_encoder
from embedstore.encoders.weights import WeightsSource, file_fingerprint, resolve_weights

if TYPE_CHECKING:
    from embedstore.config import Settings

log = logging.getLogger(__name__)

HUGE_CONFIG: dict[str, Any] = {
    "vision_embed_dim": 1280,
    "vision_num_blocks": 32,
    "vision_num_heads": 16,
    "text_embed_dim": 1024,
    "text_num_blocks": 24,
    "text_num_heads": 16,
    "out_embed_dim": 1024,
    "audio_drop_path": 0.1,
    "imu_drop_path": 0.7,
}
TEST_CONFIG: dict[str, Any] = {
    "out_embed_dim": 64,
    **{f"{m}_embed_dim": 32 for m in MODALITIES},
    **{f"{m}_num_blocks": 1 for m in MODALITIES},
    **{f"{m}_num_heads": 2 for m in MODALITIES},
    "vision_embed_dim": 64,
    "vision_num_blocks": 2,
}
TEST_SEED = 0
HUGE_WEIGHTS = WeightsSource(
    file_name="imagebind_huge.pth",
    url="https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
    sha256=None,  # not published; set EMBEDSTORE_IMAGEBIND_HUGE_SHA256 to enforce one
)
VISION_NDIMS = (4, 5)  # images (B,3,H,W) and single clips (B,3,T,H,W)
# towers whose items have one fixed shape (text batches are cut after their last end-of-text)
GRAPHABLE = tuple(m for m in MODALITIES if m != "text")


def huge_weights(settings: Settings | None) -> WeightsSource:
    """The imagebind_huge checkpoint's source, with the settings' mirror URL and sha256."""
    if settings is None:
        return HUGE_WEIGHTS
    return HUGE_WEIGHTS.with_overrides(settings.imagebind_huge_url, settings.imagebind_huge_sha256)


def load_checkpoint(config: dict[str, Any], path: Path) -> ImageBindModel:
    """Build the model on the meta device and assign the checkpoint's tensors (strict keys/shapes)."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    with torch.device("meta"):
        model = ImageBindModel(**config)
    assign_state(model, state, f"{path} is not a checkpoint of this ImageBind configuration")
    return model.eval()


class ImageBindEncoder(Encoder):
    """Embeds all six ImageBind modalities with one `ImageBindModel`.

    ``levers`` (`embedstore.encoders.levers`) choose how the same computation runs: compiled
    blocks per tower, CUDA graphs per (tower, batch size), the SDPA attention kernel. ``compile``
    wraps the whole fast path in ``torch.compile`` instead.
    """

    family = "imagebind"

    def __init__(
        self,
        name: str,
        model: ImageBindModel,
        *,
        version: str,
        device: str = "auto",
        precision: str = "fp32",
        compile: bool = False,
        levers: Levers | None = None,
    ) -> None:
        self.model = self._place(name, model, version=version, device=device, precision=precision)
        self.dim = model.out_embed_dim
        self.modalities = frozenset(MODALITIES)
        self.levers = levers or Levers()
        check_levers(self.levers, self.device, MODALITIES, GRAPHABLE)
        for tower in self.levers.compiled_towers(MODALITIES):
            trunk: Trunk = model.modality_trunks[tower]  # type: ignore[assignment]
            compile_blocks(trunk.blocks, self.levers.compile_mode)
        forward = torch.compile(model.encode_items) if compile else model.encode_items
        self.graphs: GraphRunner | None = None
        if graphs_active(self.levers, self.device):
            self.graphs = GraphRunner(
                forward, sizes=self.levers.capture_sizes(), towers=self.levers.graph_towers
            )
        elif self.levers.cuda_graphs == "auto":
            log.info("cuda_graphs=auto: %s runs on %s, so eagerly", name, self.device)
        self._encode = self.graphs or forward

    def encode(self, modality: str, batch: torch.Tensor) -> np.ndarray:
        """Embed (B, ...) items; vision takes images (B,3,224,224) or single clips (B,3,2,224,224).

        Audio (B, 3, 1, 128, 204) averages the 3 clips of each item like the official model.
        """
        self.check_modality(modality)
        ndims = VISION_NDIMS if modality == "vision" else (2,) if modality == "text" else (3, 4, 5)
        batch = as_batch(modality, batch, ndims, self.name)
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with (
            torch.inference_mode(),
            strict_fp32(self.device, self.precision),
            sdpa_context(self.levers.sdpa_backend),
        ):
            batch = batch.to(self.device, non_blocking=True)
            if batch.ndim == 5 and modality != "vision":
                b, s = batch.shape[:2]
                emb = self._encode(modality, batch.flatten(0, 1)).view(b, s, -1).mean(dim=1)
                emb = torch.nn.functional.normalize(emb, dim=-1)
            else:
                emb = self._encode(modality, batch)
            return emb.cpu().numpy()


@register_encoder(
    "imagebind_huge",
    family="imagebind",
    dim=1024,
    modalities=MODALITIES,
    description="ImageBind huge (official weights, 1.2B parameters): vision, text, audio, depth, "
    "thermal, imu in one 1024-d space",
    weights_file=HUGE_WEIGHTS.file_name,
)
def imagebind_huge(
    *,
    device: str = "auto",
    precision: str = "fp32",
    weights_path: Path | None = None,
    weights_dir: Path | None = None,
    settings: Settings | None = None,
) -> ImageBindEncoder:
    """The official ImageBind huge model; weights from a path, the cache or the official URL."""
    path = resolve_weights(
        huge_weights(settings), weights_path=weights_path, weights_dir=weights_dir
    )
    model = load_checkpoint(HUGE_CONFIG, path)
    version = f"imagebind_huge:{file_fingerprint(path)}"
    return ImageBindEncoder(
        "imagebind_huge",
        model,
        version=version,
        device=device,
        precision=precision,
        levers=levers_from_settings(settings),
    )


@register_encoder(
    "imagebind_test",
    family="imagebind",
    dim=64,
    modalities=MODALITIES,
    description="Tiny seeded random ImageBind (64-d) for tests and CPU smoke benchmarks; no weights",
)
def imagebind_test(
    *,
    device: str = "auto",
    precision: str = "fp32",
    weights_path: Path | None = None,
    weights_dir: Path | None = None,
    settings: Settings | None = None,
) -> ImageBindEncoder:
    """A tiny deterministic random-init ImageBind; ``weights_path`` loads a matching state dict.

    ``settings`` give the speed levers (compile, CUDA graphs, SDPA kernel); none without them.
    """
    if weights_path is not None:
        model = load_checkpoint(TEST_CONFIG, weights_path)
        version = f"imagebind_test:{file_fingerprint(weights_path)}"
    else:
        with torch.device("meta"):
            model = ImageBindModel(**TEST_CONFIG)
        model = model.to_empty(device="cpu")
        model.reset_buffers()
        init_weights(model, seed=TEST_SEED)
        version = f"imagebind_test:seed{TEST_SEED}"
    return ImageBindEncoder(
        "imagebind_test",
        model,
        version=version,
        device=device,
        precision=precision,
        levers=levers_from_settings(settings),
    )
