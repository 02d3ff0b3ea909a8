"""A tiny random-weight LLaVA (CLIP vision tower + Llama) built offline, for tests and smoke runs.

Everything a llava-hf checkpoint folder holds is made here without a download: the model from
``transformers`` config classes with seeded weights, a word-level tokenizer trained with
``tokenizers`` on a few sentences and saved as a fast tokenizer, a CLIP image processor and the
processor's chat template (LLaVA-1.5's ``USER: <image>\\n... ASSISTANT:`` layout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_SEED = 0
IMAGE_SIZE = 32
PATCH = 8
IMAGE_TOKEN = "<image>"
SPECIALS = ("<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN)
CORPUS = (
    "A photo of a dog running on the beach.",
    "A red car parked in front of a house.",
    "Two birds sitting on a branch in the snow.",
    "A cat sleeping on a blue sofa.",
    "A badger, a fox and a rabbit in the forest.",
    "USER: What is in the picture? ASSISTANT: A green apple on a wooden table.",
    "The sound of a bell, the colour yellow, three flowers and one boat.",
)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build_tokenizer() -> Any:
    """A word-level fast tokenizer over the words of :data:`CORPUS` (captions come out as words)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Punctuation(), pre_tokenizers.Metaspace()]
    )
    tok.decoder = decoders.Metaspace()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIALS), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",
    )
    return fast


def build_tiny_llava(seed: int = TINY_SEED) -> tuple[Any, Any]:
    """``(model, processor)``: a seeded random LLaVA small enough to generate on one CPU core."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = build_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    n_image_tokens = (IMAGE_SIZE // PATCH) ** 2  # "default" strategy drops the CLS token
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=n_image_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    return model, processor


def save_tiny_llava(folder: Path | str, seed: int = TINY_SEED) -> Path:
    """Write a complete tiny llava-hf style checkpoint folder (``save_pretrained``) and return it."""
    folder = Path(folder)
    model, processor = build_tiny_llava(seed)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
