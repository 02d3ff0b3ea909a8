"""A writer in a process of its own: indexes a new real picture at a time into a collection.

``python reembed_writer.py COLLECTION FOLDER SOURCE_IMAGE STOP_FILE``: until STOP_FILE exists,
writes ``w00000.png``, ``w00001.png``, ... into FOLDER (SOURCE_IMAGE with a different stripe each,
so every file has its own content) and indexes each with ``Engine.index`` into COLLECTION,
printing the path once the call returned (acknowledged). Any error ends it with a traceback and
exit status 1. The catalog and data folder come from the EMBEDSTORE_* environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image

from embedstore.config import Settings
from embedstore.engine import Engine


def main(collection: str, folder: Path, source: Path, stop: Path) -> None:
    torch.set_num_threads(1)  # the re-embedding runs beside it on a shared CPU
    engine = Engine(Settings(encoder="imagebind_test", device="cpu", workers=0))
    with Image.open(source) as im:
        base = im.convert("RGB")
    i = 0
    try:
        while not stop.exists():
            path = folder / f"w{i:05d}.png"
            pic = base.copy()
            pic.paste((i * 37 % 256, i * 11 % 256, 255 - i % 256), (0, i % 90, 96, i % 90 + 6))
            pic.save(path)
            engine.index([path], collection)
            print(path, flush=True)  # acknowledged: the add returned
            i += 1
    finally:
        engine.close()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
