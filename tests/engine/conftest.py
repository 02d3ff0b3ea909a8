"""Fixtures for the engine tests: a real media library and an engine with the tiny encoder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_media import make_library  # noqa: E402

from embedstore.config import Settings  # noqa: E402
from embedstore.engine import Engine  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "lib")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = Engine(settings.model_copy(update={"workers": 1, "batch_size": 4}))
    yield eng
    eng.close()
