"""Finding, downloading and loading the hub checkpoints (``config.json`` + weights per tower).

A checkpoint folder holds the hub's ``config.json`` and ``model.safetensors`` or
``pytorch_model.bin``. It is looked for in ``<weights_dir>/languagebind/<name>/``, then in the local
Hugging Face cache, then downloaded with ``huggingface_hub.snapshot_download`` (progress bars,
resumable), and the weights file's sha256 is checked against the hub's LFS checksum. Offline, the
error names every folder to create.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from embedstore.encoders.languagebind.presets import Checkpoint
from embedstore.errors import ChecksumMismatch, WeightsNotFound

if TYPE_CHECKING:
    from embedstore.encoders.languagebind.model import LanguageBindModel

log = logging.getLogger(__name__)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PATTERNS = ["config.json", *WEIGHT_FILES]
SUBDIR = "languagebind"


def weights_file(folder: Path) -> Path | None:
    """The weights file of a checkpoint folder (safetensors preferred), or None."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def fingerprint(folder: Path) -> str:
    """A cheap identity of a checkpoint: sha256 over the weights' size, first and last MiB."""
    from embedstore.encoders.weights import file_fingerprint

    return file_fingerprint(weights_file(folder) or folder / "config.json")


def is_checkpoint(folder: Path) -> bool:
    """True when ``folder`` holds ``config.json`` and a weights file."""
    return (folder / "config.json").is_file() and weights_file(folder) is not None


def local_folder(ckpt: Checkpoint, weights_dir: Path) -> Path | None:
    """The checkpoint in the weights folder or the Hugging Face cache, without any network."""
    for folder in (weights_dir / SUBDIR / ckpt.folder, weights_dir / ckpt.folder):
        if is_checkpoint(folder):
            return folder
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(ckpt.repo, allow_patterns=PATTERNS, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or no huggingface_hub
        return None
    return cached if is_checkpoint(cached) else None


def where_to_put(ckpts: Iterable[Checkpoint], weights_dir: Path) -> str:
    """The folders to fill by hand: one per checkpoint, with config.json and the weights."""
    lines = [
        f"  {weights_dir / SUBDIR / c.folder}/  <- config.json and pytorch_model.bin (or "
        f"model.safetensors) from https://huggingface.co/{c.repo}"
        for c in ckpts
    ]
    return "\n".join(lines)


def download(ckpt: Checkpoint, weights_dir: Path) -> Path:
    """Fetch ``config.json`` and the weights into the Hugging Face cache and check the sha256."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(ckpt.repo, allow_patterns=PATTERNS))
    except Exception as e:  # offline, HF_HUB_OFFLINE, DNS, HTTP errors
        raise WeightsNotFound(
            f"LanguageBind checkpoint {ckpt.repo} is not available offline and could not be "
            f"downloaded ({type(e).__name__}: {e}). Put it here:\n"
            f"{where_to_put([ckpt], weights_dir)}",
            field="weights_path",
        ) from e
    path = weights_file(folder)
    if path is None or not (folder / "config.json").is_file():
        raise WeightsNotFound(
            f"{ckpt.repo} has no config.json with model.safetensors or pytorch_model.bin",
            field="weights_path",
        )
    verify_hub_sha256(ckpt.repo, path)
    return folder


def verify_hub_sha256(repo: str, path: Path) -> None:
    """Compare ``path`` with the sha256 the hub publishes for its LFS file (skipped offline)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    from embedstore.encoders.weights import sha256_file

    try:
        etag = get_hf_file_metadata(hf_hub_url(repo, path.name)).etag or ""
    except Exception as e:
        log.warning("%s: checksum not verified (%s)", path, e)
        return
    expected = etag.strip('"').removeprefix("W/").strip('"').lower()
    if len(expected) == 64 and sha256_file(path) != expected:
        raise ChecksumMismatch(
            f"{path}: sha256 differs from the hub's {expected} for {repo}; delete it and retry",
            field="weights_path",
        )


def resolve(ckpt: Checkpoint, weights_dir: Path, *, allow_download: bool = True) -> Path:
    """The checkpoint folder: local, cached, else downloaded (``allow_download``)."""
    folder = local_folder(ckpt, weights_dir)
    if folder is not None:
        return folder
    if not allow_download:
        raise WeightsNotFound(
            f"LanguageBind checkpoint {ckpt.repo} not found. Put it here:\n"
            f"{where_to_put([ckpt], weights_dir)}",
            field="weights_path",
        )
    return download(ckpt, weights_dir)


def load_tower(folder: Path) -> LanguageBindModel:
    """Build the tower from ``folder/config.json`` on the meta device and assign its weights."""
    import torch

    from embedstore.encoders.base import assign_state
    from embedstore.encoders.languagebind.model import LanguageBindModel

    path = weights_file(folder)
    if path is None:
        raise WeightsNotFound(f"{folder}: no model.safetensors or pytorch_model.bin")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise WeightsNotFound(f"{folder / 'config.json'}: unreadable ({e})") from e
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    with torch.device("meta"):
        model = LanguageBindModel.from_config(config)
    assign_state(model, state, f"{path} does not match {folder / 'config.json'}")
    model.merge_lora()
    return model.eval()
