"""`ImageBindModel`: six modality towers mapping into one embedding space (official key layout)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from embedstore.encoders.imagebind.init import init_weights
from embedstore.encoders.imagebind.layers import Trunk
from embedstore.encoders.imagebind.stages import (
    IMU_CHANNELS,
    IMU_WINDOW,
    TEXT_CONTEXT,
    TEXT_VOCAB,
    ImuPatches,
    LogitScale,
    Normalize,
    PadToVideo,
    PatchStem,
    TextHead,
    TextPreprocessor,
    TokenHead,
    TokenPreprocessor,
)
from embedstore.errors import InvalidInput, UnsupportedModality

MODALITIES = ("vision", "text", "audio", "depth", "thermal", "imu")
# fixed logit scales of the non-text modalities (buffers in the checkpoint)
FIXED_SCALES = {"audio": 20.0, "depth": 5.0, "thermal": 10.0, "imu": 5.0}


class ImageBindModel(nn.Module):
    """ImageBind; ``ImageBindModel(**official_kwargs)`` loads the official ``state_dict`` strictly."""

    def __init__(
        self,
        video_frames: int = 2,
        kernel_size: Sequence[int] = (2, 14, 14),
        audio_kernel_size: int = 16,
        audio_stride: int = 10,
        out_embed_dim: int = 768,
        vision_embed_dim: int = 1024,
        vision_num_blocks: int = 24,
        vision_num_heads: int = 16,
        audio_embed_dim: int = 768,
        audio_num_blocks: int = 12,
        audio_num_heads: int = 12,
        audio_num_mel_bins: int = 128,
        audio_target_len: int = 204,
        audio_drop_path: float = 0.1,
        text_embed_dim: int = 768,
        text_num_blocks: int = 12,
        text_num_heads: int = 12,
        depth_embed_dim: int = 384,
        depth_kernel_size: int = 16,
        depth_num_blocks: int = 12,
        depth_num_heads: int = 8,
        depth_drop_path: float = 0.0,
        thermal_embed_dim: int = 768,
        thermal_kernel_size: int = 16,
        thermal_num_blocks: int = 12,
        thermal_num_heads: int = 12,
        thermal_drop_path: float = 0.0,
        imu_embed_dim: int = 512,
        imu_kernel_size: int = 8,  # accepted for compatibility; the window is fixed at 8
        imu_num_blocks: int = 6,
        imu_num_heads: int = 8,
        imu_drop_path: float = 0.7,  # stochastic depth is the identity at inference
    ) -> None:
        super().__init__()
        kt, kh, kw = (int(k) for k in kernel_size)
        self.out_embed_dim = out_embed_dim
        self.image_size = 224
        vision_patches = (video_frames // kt) * (224 // kh) * (224 // kw)
        audio_patches = ((audio_num_mel_bins - audio_kernel_size) // audio_stride + 1) * (
            (audio_target_len - audio_kernel_size) // audio_stride + 1
        )
        self.input_shapes: dict[str, tuple[int, ...]] = {
            "audio": (1, audio_num_mel_bins, audio_target_len),
            "depth": (1, 224, 224),
            "thermal": (1, 224, 224),
            "imu": (IMU_CHANNELS, 2000),
        }
        widths = {
            "vision": vision_embed_dim,
            "text": text_embed_dim,
            "audio": audio_embed_dim,
            "depth": depth_embed_dim,
            "thermal": thermal_embed_dim,
            "imu": imu_embed_dim,
        }
        depths = {
            "vision": vision_num_blocks,
            "text": text_num_blocks,
            "audio": audio_num_blocks,
            "depth": depth_num_blocks,
            "thermal": thermal_num_blocks,
            "imu": imu_num_blocks,
        }
        heads = {
            "vision": vision_num_heads,
            "text": text_num_heads,
            "audio": audio_num_heads,
            "depth": depth_num_heads,
            "thermal": thermal_num_heads,
            "imu": imu_num_heads,
        }
        self.widths = widths

        def conv2d_stem(dim: int, kernel: int, stride: int) -> PatchStem:
            proj = nn.Conv2d(1, dim, kernel_size=kernel, stride=stride, bias=False)
            return PatchStem(proj, dim)

        d_kernel, t_kernel = depth_kernel_size, thermal_kernel_size
        self.modality_preprocessors = nn.ModuleDict(
            {
                "vision": TokenPreprocessor(
                    "rgbt_stem",
                    PatchStem(
                        nn.Sequential(
                            PadToVideo(video_frames),
                            nn.Conv3d(3, vision_embed_dim, (kt, kh, kw), (kt, kh, kw), bias=False),
                        )
                    ),
                    vision_embed_dim,
                    vision_patches,
                    resizable=True,
                ),
                "text": TextPreprocessor(text_embed_dim),
                "audio": TokenPreprocessor(
                    "rgbt_stem",
                    conv2d_stem(audio_embed_dim, audio_kernel_size, audio_stride),
                    audio_embed_dim,
                    audio_patches,
                ),
                "depth": TokenPreprocessor(
                    "depth_stem",
                    conv2d_stem(depth_embed_dim, d_kernel, d_kernel),
                    depth_embed_dim,
                    (224 // d_kernel) ** 2,
                ),
                "thermal": TokenPreprocessor(
                    "rgbt_stem",
                    conv2d_stem(thermal_embed_dim, t_kernel, t_kernel),
                    thermal_embed_dim,
                    (224 // t_kernel) ** 2,
                ),
                "imu": TokenPreprocessor(
                    "imu_stem",
                    PatchStem(
                        nn.Linear(IMU_CHANNELS * IMU_WINDOW, imu_embed_dim, bias=False),
                        imu_embed_dim,
                    ),
                    imu_embed_dim,
                    2000 // IMU_WINDOW,
                    pos_helper=False,
                ),
            }
        )
        self.imu_patches = ImuPatches()
        self.modality_trunks = nn.ModuleDict(
            {
                m: Trunk(
                    widths[m],
                    depths[m],
                    heads[m],
                    pre_norm=m == "vision",
                    bias_kv=m not in ("vision", "text"),
                )
                for m in MODALITIES
            }
        )
        self.modality_heads = nn.ModuleDict(
            {
                m: TextHead(widths[m], out_embed_dim)
                if m == "text"
                else TokenHead(widths[m], out_embed_dim, dropout=m == "imu")
                for m in MODALITIES
            }
        )
        post: dict[str, nn.Module] = {"vision": nn.Sequential(Normalize())}
        post["text"] = nn.Sequential(Normalize(), LogitScale(1 / 0.07, learnable=True))
        for m, scale in FIXED_SCALES.items():
            post[m] = nn.Sequential(Normalize(), LogitScale(scale, learnable=False))
        self.modality_postprocessors = nn.ModuleDict(post)
        if self.modality_preprocessors["text"].pos_embed.device.type != "meta":
            init_weights(self)
        self.eval()

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Refill the constant buffers (text causal mask, fixed logit scales), e.g. after ``to_empty``."""
        text = cast(TextPreprocessor, self.modality_preprocessors["text"])
        text.mask.copy_(torch.full_like(text.mask, float("-inf")).triu_(1))
        for m, scale in FIXED_SCALES.items():
            post = cast(nn.Sequential, self.modality_postprocessors[m])
            cast(LogitScale, post[1]).log_logit_scale.fill_(math.log(scale))

    # -- stages --------------------------------------------------------------------------------
    def check_input(self, modality: str, x: torch.Tensor) -> None:
        """Raise `InvalidInput` unless ``x`` is a batch of items of ``modality`` (no clip axis)."""
        if modality not in MODALITIES:
            raise UnsupportedModality(
                f"ImageBind has no {modality!r} tower; modalities: {', '.join(MODALITIES)}",
                field="modality",
            )
        shape = tuple(x.shape[1:])
        if modality == "text":
            ok = x.ndim == 2 and shape == (TEXT_CONTEXT,) and not x.is_floating_point()
            ok = ok and (x.numel() == 0 or (int(x.min()) >= 0 and int(x.max()) < TEXT_VOCAB))
            want = f"(N, {TEXT_CONTEXT}) integer token ids in [0, {TEXT_VOCAB})"
        elif modality == "vision":
            ok = x.ndim in (4, 5) and shape[0] == 3 and shape[-1] == shape[-2]
            ok = ok and shape[-1] % 14 == 0
            want = (
                "(N, 3, H, W) images or (N, 3, T, H, W) clips with square H = W, a multiple of 14"
            )
        else:
            ok = shape == self.input_shapes[modality]
            want = f"(N, {', '.join(map(str, self.input_shapes[modality]))})"
        if not ok:
            raise InvalidInput(
                f"{modality}: expected {want}, got shape {tuple(x.shape)} ({x.dtype})",
                field=modality,
            )

    def preprocess(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Input batch -> (N, L, D) tokens for the trunk."""
        if modality == "imu":
            x = self.imu_patches(x)
        return self.modality_preprocessors[modality](x)

    def image_tokens(self, x: torch.Tensor) -> torch.Tensor | None:
        """Tokens of (N, 3, H, W) images through a 2-D patch kernel, or None where that is not exact.

        An image enters the vision stem as a clip of identical frames. When the 3-D kernel spans
        exactly those frames once, its output equals a 2-D convolution with the kernel summed
        over time: half the multiply-adds and no (N, 3, T, H, W) copy. The sum is taken in
        float32, so the result differs from the 3-D path by rounding only.
        """
        pre = cast(TokenPreprocessor, self.modality_preprocessors["vision"])
        stem = cast(PatchStem, getattr(pre, pre.stem_name))
        pad, conv = cast(nn.Sequential, stem.proj)
        conv = cast(nn.Conv3d, conv)
        kt = conv.kernel_size[0]
        if (
            x.ndim != 4
            or kt != cast(PadToVideo, pad).frames
            or conv.stride[0] != kt
            or any(conv.padding)  # type: ignore[arg-type]
            or conv.bias is not None
        ):
            return None
        weight = conv.weight.float().sum(dim=2).to(conv.weight.dtype)
        grid = F.conv2d(x, weight, stride=conv.stride[1:])
        return pre.assemble(stem.tokens(grid))

    def stages(self, modality: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate of the official pipeline (inputs with >= 5 dims folded to B*S items)."""
        if x.ndim >= 5:
            x = x.flatten(0, 1)
        tokens = self.preprocess(modality, x)
        trunk = self.modality_trunks[modality](tokens, causal=modality == "text")
        head = self.modality_heads[modality]
        head_out = head(trunk, x) if modality == "text" else head(trunk)
        post = self.modality_postprocessors[modality](head_out)
        return {
            "preprocessor_tokens": tokens,
            "trunk_output": trunk,
            "head_output": head_out,
            "postprocessor_output": post,
        }

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Official semantics: ``{modality: (B, E)}``, scaled, clips (>= 5-D inputs) averaged."""
        out = {}
        for modality, x in inputs.items():
            post = self.stages(modality, x)["postprocessor_output"]
            if x.ndim >= 5:
                post = post.view(x.shape[0], x.shape[1], -1).mean(dim=1)
            out[modality] = post
        return out

    def logit_scales(self) -> dict[str, float]:
        """The effective logit scale per modality (vision has none: 1.0)."""
        scales = {"vision": 1.0}
        for m in MODALITIES[1:]:
            post = cast(nn.Sequential, self.modality_postprocessors[m])
            scales[m] = float(cast(LogitScale, post[1]).scale().detach())
        return scales

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the parameters (float32 unless the model was cast)."""
        return self.modality_postprocessors["text"][1].log_logit_scale.dtype  # type: ignore[index]

    # -- fast, exact embedding -----------------------------------------------------------------
    def encode_items(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm float32 embeddings (N, E), one per item (images, single clips, texts, ...).

        The trunk's last block only computes the token the head reads, and a text batch is cut
        after its last end-of-text position (exact: attention is causal).
        """
        self.check_input(modality, x)
        head = cast(TokenHead | TextHead, self.modality_heads[modality])
        trunk = cast(Trunk, self.modality_trunks[modality])
        if modality == "text":
            rows = x.argmax(dim=-1)
            x = x[:, : int(rows.max()) + 1]
        else:
            rows = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            x = x.to(self.dtype)
        fast = self.image_tokens(x) if modality == "vision" else None
        tokens = fast if fast is not None else self.preprocess(modality, x)
        pooled = trunk.forward_pooled(tokens, rows, causal=modality == "text")
        return F.normalize(head.project(pooled).float(), dim=-1)

    def embed(self, modality: str, batch: torch.Tensor) -> torch.Tensor:
        """Unit-norm float32 embeddings (B, E) for official input shapes; clips are averaged.

        Videos (B, S, 3, T, H, W), audio (B, S, 1, 128, 204) and depth/thermal (B, S, 1, H, W)
        average their S clip embeddings like the official model, then renormalise. A 5-D vision
        batch (B, 3, T, H, W) is read as one clip per item.
        """
        folded = batch.ndim >= (6 if modality == "vision" else 5) and modality != "text"
        if folded:
            b, s = batch.shape[:2]
            emb = self.encode_items(modality, batch.flatten(0, 1))
            return F.normalize(emb.view(b, s, -1).mean(dim=1), dim=-1)
        return self.encode_items(modality, batch)
