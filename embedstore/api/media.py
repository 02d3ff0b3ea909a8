"""Uploaded files on disk, and the media and thumbnails of stored items."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import shutil
import tempfile
from pathlib import Path

from embedstore.api.security import is_inside
from embedstore.api.sniff import FORMAT_SUFFIX
from embedstore.config import Settings
from embedstore.errors import InvalidMedia, NotFound, PathNotAllowed, UnsupportedMediaType

THUMBNAIL_SIZE = (256, 256)
IMAGE_MODALITIES = frozenset({"vision", "depth", "thermal"})


def uploads_dir(settings: Settings, collection: str) -> Path:
    """Where uploads to ``collection`` are kept (the URI of an uploaded item points here)."""
    return settings.data_dir / "uploads" / collection


def save_upload(settings: Settings, collection: str, data: bytes, fmt: str) -> Path:
    """Store an upload under its content hash (atomically) and return its absolute path."""
    folder = uploads_dir(settings, collection)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:32]
    path = (folder / f"{digest}{FORMAT_SUFFIX.get(fmt, '.bin')}").resolve()
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def remove_upload(settings: Settings, collection: str, uri: str) -> None:
    """Delete the stored upload behind ``uri`` (no-op for files that were not uploaded)."""
    path = Path(uri)
    if is_inside(path, [uploads_dir(settings, collection)]):
        path.unlink(missing_ok=True)


def drop_uploads(settings: Settings, collection: str) -> None:
    """Delete every upload of a dropped collection."""
    shutil.rmtree(uploads_dir(settings, collection), ignore_errors=True)


def media_path(settings: Settings, collection: str, uri: str) -> Path:
    """The file behind an item, if it lies inside the roots or the collection's uploads (else 403)."""
    path = Path(uri)
    allowed = [*settings.root_list, uploads_dir(settings, collection)]
    if not path.is_absolute() or not is_inside(path, allowed):
        raise PathNotAllowed(f"The file of item {uri!r} is outside the served folders")
    if not path.is_file():
        raise NotFound(f"The file of item {uri!r} no longer exists")
    return path.resolve()


def media_type(path: Path) -> str:
    """The MIME type to serve a file with."""
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def thumbnail(path: Path, modality: str, max_pixels: int) -> bytes:
    """A JPEG thumbnail of an image (or the first frame of a video), at most 256x256."""
    from PIL import Image

    try:
        if modality in IMAGE_MODALITIES:
            with Image.open(path) as im:
                if im.width * im.height > max_pixels:
                    raise InvalidMedia(f"{path}: image too large for a thumbnail", uri=str(path))
                im.draft("RGB", THUMBNAIL_SIZE)
                frame = _to_rgb(im)
        elif modality == "video":
            frame = _first_frame(path)
        else:
            raise UnsupportedMediaType(f"Items of modality {modality!r} have no thumbnail")
    except (InvalidMedia, UnsupportedMediaType):
        raise
    except Exception as e:
        raise InvalidMedia(f"{path}: cannot make a thumbnail: {e}", uri=str(path)) from e
    frame.thumbnail(THUMBNAIL_SIZE)
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _to_rgb(im):  # type: ignore[no-untyped-def]
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I", "F"):  # depth / thermal: scale to 8 bits
        import numpy as np

        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo or 1.0) * 255.0
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Transparent pixels hold arbitrary colours: lay the picture on white, as viewers show it.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def _first_frame(path: Path):  # type: ignore[no-untyped-def]
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    raise InvalidMedia(f"{path}: video has no frames", uri=str(path))
