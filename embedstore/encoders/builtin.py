"""The built-in encoders, declared without importing their model code (torch, open_clip).

Each family module registers the same names with its factories when `create_encoder` first
imports it; the registry checks that the metadata there matches this table.
"""

from __future__ import annotations

from embedstore.encoders.registry import declare_encoder

IMAGEBIND = "embedstore.encoders.imagebind.encoder"
OPENCLIP = "embedstore.encoders.openclip"
IMAGEBIND_MODALITIES = ("vision", "text", "audio", "thermal", "depth", "imu")

declare_encoder(
    "imagebind_huge",
    module=IMAGEBIND,
    family="imagebind",
    dim=1024,
    modalities=IMAGEBIND_MODALITIES,
    description="ImageBind huge (official weights, 1.2B parameters): vision, text, audio, depth, "
    "thermal, imu in one 1024-d space",
    weights_file="imagebind_huge.pth",
)
declare_encoder(
    "imagebind_test",
    module=IMAGEBIND,
    family="imagebind",
    dim=64,
    modalities=IMAGEBIND_MODALITIES,
    description="Tiny seeded random ImageBind (64-d) for tests and CPU smoke benchmarks; no weights",
)
declare_encoder(
    "openclip_vit_b_32",
    module=OPENCLIP,
    family="openclip",
    dim=512,
    modalities=("vision", "text"),
    description="OpenCLIP ViT-B-32 (GELU; e.g. the LAION-2B checkpoint) from a local file",
    weights_file="openclip_vit_b_32.pt",
)
declare_encoder(
    "openclip_test",
    module=OPENCLIP,
    family="openclip",
    dim=32,
    modalities=("vision", "text"),
    description="Tiny seeded random OpenCLIP (32-d, 64 px images) for tests; no weights",
)
