"""The Ray job's decode task preprocesses with the collection's encoder family (its recipe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from testdata import require_data

from embedstore.ingest.ray_job import decode_batch
from embedstore.modalities import load
from embedstore.modalities.recipes import recipe_for_encoder

ASSETS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "languagebind" / "assets"


@pytest.mark.parametrize("encoder", ["languagebind_test", "imagebind_test"])
def test_decode_task_uses_the_encoder_family_recipe(encoder: str) -> None:
    require_data(ASSETS / "image", "LanguageBind fixture images in ../shared")
    photo = sorted((ASSETS / "image").iterdir())[0]
    recipe = recipe_for_encoder(encoder)
    batch = {
        "key": np.array([0]),
        "uri": np.array([str(photo)], dtype=object),
        "modality": np.array(["vision"], dtype=object),
    }
    out = decode_batch(batch, None, ("vision", "text"), recipe=recipe)
    assert out["error"] == [""]
    want = load("vision", photo, recipe=recipe).numpy().astype(np.float32)
    got = np.frombuffer(out["data"][0], np.float32)
    # the same decode on the same machine: equal up to float rounding of identical operations
    np.testing.assert_allclose(got, want.ravel(), atol=1e-6, rtol=0)
