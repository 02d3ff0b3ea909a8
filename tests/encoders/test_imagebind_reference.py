"""Our ImageBind reproduces the official tiny model at every stage, for every modality."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from embedstore.encoders.imagebind import ImageBindModel
from embedstore.encoders.imagebind.encoder import HUGE_CONFIG

CASES = ["vision", "vision_video", "vision_252", "text", "audio", "depth", "thermal", "imu"]
SCALES = {"vision": 1.0, "text": 100.0, "audio": 20.0, "depth": 5.0, "thermal": 10.0, "imu": 5.0}


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def test_state_dict_has_exactly_the_official_keys_and_shapes(
    tiny_a: ImageBindModel, tiny_a_state: dict[str, torch.Tensor]
) -> None:
    ours = tiny_a.state_dict()
    assert list(ours) == list(tiny_a_state)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in tiny_a_state.items()}
    assert all(torch.equal(ours[k], v) for k, v in tiny_a_state.items())


def test_strict_load_rejects_a_wrong_key_set(
    tiny_a_config: dict[str, Any], tiny_a_state: dict[str, torch.Tensor]
) -> None:
    broken = dict(tiny_a_state)
    broken.pop("modality_trunks.audio.blocks.0.attn.bias_k")
    with pytest.raises(RuntimeError, match="bias_k"):
        ImageBindModel(**tiny_a_config).load_state_dict(broken, strict=True)


@pytest.mark.parametrize("case", CASES)
def test_every_stage_matches_the_official_model(
    tiny_a: ImageBindModel, tiny_a_io: dict[str, Any], case: str
) -> None:
    ref = tiny_a_io[case]
    modality, x = ref["modality"], ref["input"]
    scale = SCALES[modality]
    with torch.inference_mode():
        stages = tiny_a.stages(modality, x)
        output = tiny_a({modality: x})[modality]
        embedded = tiny_a.embed(modality, x)
    close(stages["preprocessor_tokens"], ref["preprocessor_tokens"], 1e-5)
    close(stages["trunk_output"], ref["trunk_output"], 5e-5)
    close(stages["head_output"], ref["head_output"], 1e-5)
    close(stages["postprocessor_output"], ref["postprocessor_output"], 1e-5 * scale)
    close(output, ref["output"], 1e-5 * scale)
    assert embedded.dtype == torch.float32
    close(embedded, ref["output_normalized"], 1e-5)
    close(embedded.norm(dim=-1), torch.ones(len(embedded)), 1e-6)


def test_forward_takes_all_modalities_at_once(
    tiny_a: ImageBindModel, tiny_a_io: dict[str, Any]
) -> None:
    inputs = {tiny_a_io[c]["modality"]: tiny_a_io[c]["input"] for c in ("vision", "text", "imu")}
    with torch.inference_mode():
        out = tiny_a(inputs)
    for case in ("vision", "text", "imu"):
        close(out[case], tiny_a_io[case]["output"], 1e-5 * SCALES[case])
    assert tiny_a.logit_scales() == pytest.approx(
        tiny_a_io["meta"]["effective_logit_scale"] | {"vision": 1.0}
    )


def test_text_pools_at_the_first_end_of_text(
    tiny_a: ImageBindModel, tiny_a_io: dict[str, Any]
) -> None:
    ids = tiny_a_io["text"]["input"]
    assert ids.argmax(-1).tolist() == [1, 4, 14, 2, 76]  # row 3 holds two end-of-text ids
    with torch.inference_mode():
        close(
            tiny_a.encode_items("text", ids[3:4]), tiny_a_io["text"]["output_normalized"][3:4], 1e-5
        )


def test_text_batch_cut_at_the_longest_eos_equals_the_uncut_result(
    tiny_a: ImageBindModel, tiny_a_io: dict[str, Any]
) -> None:
    ids = tiny_a_io["text"]["input"][:4]  # longest EOS at 14: the batch runs 15 of 77 positions
    with torch.inference_mode():
        cut = tiny_a.encode_items("text", ids)
        full = F.normalize(tiny_a.stages("text", ids)["head_output"], dim=-1)
    close(cut, full, 1e-6)
    close(cut, tiny_a_io["text"]["output_normalized"][:4], 1e-5)


def test_single_clips_are_embedded_one_per_item(
    tiny_a: ImageBindModel, tiny_a_io: dict[str, Any]
) -> None:
    video = tiny_a_io["vision_video"]
    clips = video["input"].flatten(0, 1)  # (4, 3, 2, 224, 224): 4 single clips
    with torch.inference_mode():
        per_clip = tiny_a.embed("vision", clips)
    close(per_clip, F.normalize(video["postprocessor_output"], dim=-1), 1e-5)


def test_a_single_image_equals_the_image_repeated_as_a_two_frame_clip(
    tiny_a: ImageBindModel, tiny_a_io: dict[str, Any]
) -> None:
    images = tiny_a_io["vision"]["input"]
    with torch.inference_mode():
        as_clip = tiny_a.embed("vision", images.unsqueeze(2).repeat(1, 1, 2, 1, 1))
    close(as_clip, tiny_a_io["vision"]["output_normalized"], 1e-5)


@pytest.mark.parametrize(
    ("modality", "shape"),
    [
        ("text", (2, 40)),
        ("imu", (2, 6, 1000)),
        ("depth", (1, 1, 256, 256)),
        ("vision", (1, 3, 224, 280)),
    ],
)
def test_wrong_input_shapes_raise_invalid_input(
    tiny_a: ImageBindModel, modality: str, shape: tuple[int, ...]
) -> None:
    from embedstore.errors import InvalidInput

    x = torch.zeros(shape, dtype=torch.long if modality == "text" else torch.float32)
    with pytest.raises(InvalidInput, match=modality):
        tiny_a.embed(modality, x)


def test_imagebind_huge_has_the_official_parameter_count() -> None:
    with torch.device("meta"):
        model = ImageBindModel(**HUGE_CONFIG)
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 1_200_781_057
    assert len(state) == 1311
    assert sum(b.numel() for b in model.buffers()) == 5933
    assert state["modality_trunks.vision.blocks.31.attn.in_proj_weight"].shape == (3840, 1280)
    assert state["modality_preprocessors.vision.rgbt_stem.proj.1.weight"].shape == (
        1280,
        3,
        2,
        14,
        14,
    )


def test_bf16_embeddings_are_close_to_fp32(
    tiny_a: ImageBindModel, tiny_a_io: dict[str, Any]
) -> None:
    import copy

    low = copy.deepcopy(tiny_a).to(torch.bfloat16)
    with torch.inference_mode():
        for case in CASES:
            ref = tiny_a_io[case]
            got = low.embed(ref["modality"], ref["input"])
            cos = (got * ref["output_normalized"]).sum(-1)
            assert cos.min().item() >= 0.999, (case, cos)


def test_token_ids_outside_the_vocabulary_are_rejected(tiny_a: ImageBindModel) -> None:
    from embedstore.errors import InvalidInput

    ids = torch.zeros(1, 77, dtype=torch.long)
    ids[0, 1] = 49408
    with pytest.raises(InvalidInput, match="token ids in"):
        tiny_a.embed("text", ids)
