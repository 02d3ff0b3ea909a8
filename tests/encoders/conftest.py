"""Fixtures of the encoder tests: the official tiny ImageBind (weights, inputs, outputs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_a_config(imagebind_fixtures: Path) -> dict[str, Any]:
    return json.loads((imagebind_fixtures / "tiny_a_config.json").read_text())


@pytest.fixture(scope="session")
def tiny_a_state(imagebind_fixtures: Path) -> dict[str, torch.Tensor]:
    return torch.load(imagebind_fixtures / "tiny_a_state_dict.pt", weights_only=True)


@pytest.fixture(scope="session")
def tiny_a_io(imagebind_fixtures: Path) -> dict[str, Any]:
    return torch.load(imagebind_fixtures / "tiny_a_io.pt", weights_only=True)


@pytest.fixture(scope="session")
def tiny_a(tiny_a_config: dict[str, Any], tiny_a_state: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
    """Our ImageBindModel with the official tiny weights loaded strictly."""
    from embedstore.encoders.imagebind import ImageBindModel

    model = ImageBindModel(**tiny_a_config)
    model.load_state_dict(tiny_a_state, strict=True)
    return model.eval()
