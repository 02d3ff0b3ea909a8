"""Captions as a keyword field, and captioning throughput.

Recall (``--part recall``): text -> picture on the Tux Paint stamps (Debian
``tuxpaint-stamps-default``), every stamp in a real store collection with its caption (line 1 of
``X.txt``) as the keyword field. The vector side has meaning: a text tower is trained with
``embedstore.bind`` against the frozen ``imagebind_test`` vision tower on the stamps that are not
queried (``--held-out`` stamps are kept out). Queries are the held-out stamps' captions in two
forms: the whole caption, and its last word alone (``A great blue heron.`` -> ``heron``). Rows:
vector-only, keyword-only and hybrid (reciprocal rank fusion, ``rrf_k``, ``hybrid_candidates``
hits per side), recall@1/5/10 that the query's own stamp is found.

Throughput (``--part caption``): greedy captions of Tux Paint photos, images/s and generated
tokens/s, with ``llava_test`` on CPU, and on CUDA with a llava-1.5-7b shaped model (CLIP ViT-L/14
at 336 px + a 7B Llama; random weights, bf16) at batch 1, 8 and 32. Every answer is forced to
``--new-tokens`` tokens so batches do the same work.

    python -m benchmarks.llava --smoke
    python -m benchmarks.llava --out benchmarks/results/llava-cpu.json
    python -m benchmarks.llava --part caption --arch 7b --batches 1,8,32 --out ...  # on a GPU
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from benchmarks.common import emit, output_options, parse_ints, result_doc
from benchmarks.emergent import STAMPS, Stamp, find_stamps

KS = (1, 5, 10)


# -- recall ------------------------------------------------------------------------------------
def last_word(caption: str) -> str:
    """The caption's last word ('A great blue heron.' -> 'heron')."""
    import re

    words = re.findall(r"\w+", caption)
    return words[-1].lower() if words else caption


def recall_rows(
    stamps: list[Stamp],
    held_out: int,
    epochs: int,
    width: int,
    seed: int,
    work: Path,
    rrf_k: float,
    candidates: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Bind a text tower on the non-held-out stamps, index every stamp, query the held-out ones."""
    from embedstore.bind import Pair, TowerSpec, TrainConfig, bind
    from embedstore.encoders import create_encoder
    from embedstore.hybrid import fuse
    from embedstore.modalities import load
    from embedstore.store import NewItem, NewVector, Store

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(stamps))
    queried = [stamps[i] for i in order[:held_out]]
    train = [stamps[i] for i in order[held_out:]]
    t0 = time.perf_counter()
    bound = bind(
        [Pair(s.image, s.caption) for s in train], modality="text", base_encoder="imagebind_test",
        out_dir=work / "text", tower=TowerSpec(width=width, layers=2, heads=max(1, width // 32)),
        train=TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, seed=seed), val_fraction=0.05,
        device="cpu", on_stage=lambda s: click.echo(s, err=True),
    )  # fmt: skip
    bind_s = time.perf_counter() - t0
    enc = create_encoder(bound.encoder, device="cpu")
    store = Store(f"sqlite:///{work / 'catalog.db'}", work / "indexes")
    coll = store.create_collection("stamps", bound.encoder, enc.dim, index_spec="Flat")
    t0 = time.perf_counter()
    for start in range(0, len(stamps), 64):
        part = stamps[start : start + 64]
        x = enc.encode("vision", torch.stack([load("vision", s.image) for s in part]))
        coll.add_items(
            [
                NewItem(str(s.image), "vision", metadata={"caption": s.caption},
                        vectors=[NewVector("vision", v)])
                for s, v in zip(part, x)
            ]
        )  # fmt: skip
    index_s = time.perf_counter() - t0
    uri_id = {it.uri: it.id for it in coll.list_items(limit=len(stamps) + 1)}
    rows = []
    for form, text_of in (("caption", lambda s: s.caption), ("last word", last_word_of)):
        texts = [text_of(s) for s in queried]
        q = enc.encode("text", torch.stack([load("text", t) for t in texts]))
        depth = max(max(KS), candidates)
        vec = coll.search(q, depth)
        kw = [coll.keyword_search(t, depth) for t in texts]
        ranked = {
            "vector": vec,
            "keyword": kw,
            "hybrid": [fuse(v, w, rrf_k, max(KS)) for v, w in zip(vec, kw)],
        }
        for mode, results in ranked.items():
            row: dict[str, Any] = {"query": form, "mode": mode, "n": len(queried)}
            for k in KS:
                hits = sum(
                    uri_id[str(s.image)] in [h.id for h in r[:k]] for s, r in zip(queried, results)
                )
                row[f"recall@{k}"] = round(hits / len(queried), 4)
            rows.append(row)
    store.close()
    info = {
        "stamps": len(stamps),
        "queried (held out of the binding)": len(queried),
        "bind_seconds": round(bind_s, 1),
        "index_seconds": round(index_s, 1),
        "bind_final": bound.metrics,
    }
    return rows, info


def last_word_of(s: Stamp) -> str:
    return last_word(s.caption)


# -- throughput --------------------------------------------------------------------------------
def big_llava(arch: str) -> tuple[Any, Any]:
    """A llava-1.5-7b shaped model (random weights) with the tiny tokenizer, for speed only."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from embedstore.generators.tiny import CHAT_TEMPLATE, IMAGE_TOKEN, build_tokenizer

    if arch != "7b":
        raise click.BadParameter(f"unknown arch {arch!r} (7b)")
    tok = build_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
        image_size=336, patch_size=14, projection_dim=768,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_seq_length=576,
        image_token_index=tok.convert_tokens_to_ids(IMAGE_TOKEN),
    )  # fmt: skip
    with torch.device("cuda"):
        model = LlavaForConditionalGeneration(config).to(torch.bfloat16).eval()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}
        ),
        tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE, num_additional_image_tokens=1,
    )  # fmt: skip
    return model, processor


def throughput_rows(
    arch: str, device: str, pictures: list[Any], batches: list[int], new_tokens: int, repeats: int
) -> list[dict[str, Any]]:
    """Images/s and tokens/s of batched greedy captioning (answers forced to ``new_tokens``)."""
    from embedstore.generators import Prompt, create_generator
    from embedstore.generators.llava import LlavaGenerator

    if arch == "tiny":
        gen = create_generator("llava_test", device=device)
        assert isinstance(gen, LlavaGenerator)
        label = "llava_test (fp32)"
    else:
        model, processor = big_llava(arch)
        gen = LlavaGenerator(f"llava-1.5-{arch} shape", model, processor, device, torch.bfloat16)
        label = f"llava-1.5-{arch} shape, random weights (bf16)"
    rows = []
    for batch in batches:
        prompts = [
            Prompt("Describe this picture in one sentence.", [pictures[i % len(pictures)]])
            for i in range(batch)
        ]
        inputs = gen._inputs(prompts)
        opts = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}
        opts["pad_token_id"] = gen.tokenizer.pad_token_id
        times = []
        for run in range(repeats + 1):  # the first run warms up
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = gen.model.generate(**inputs, **opts)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if run:
                times.append(time.perf_counter() - t0)
        seconds = float(np.median(times))
        made = int(out.shape[1] - inputs["input_ids"].shape[1]) * batch
        rows.append(
            {
                "model": label,
                "device": device,
                "batch": batch,
                "prompt_tokens": int(inputs["input_ids"].shape[1]),
                "new_tokens": new_tokens,
                "seconds": round(seconds, 4),
                "images_per_s": round(batch / seconds, 2),
                "tokens_per_s": round(made / seconds, 1),
            }
        )
        click.echo(f"{label} batch {batch}: {rows[-1]['images_per_s']} images/s", err=True)
    return rows


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@output_options
@click.option("--part", type=click.Choice(["all", "recall", "caption"]), default="all")
@click.option(
    "--stamps", "root", type=click.Path(path_type=Path), default=STAMPS, show_default=True
)
@click.option("--held-out", default=150, show_default=True, help="Queried stamps, not bound.")
@click.option("--epochs", default=30, show_default=True, help="Text-tower training epochs.")
@click.option("--width", default=64, show_default=True, help="Text-tower width.")
@click.option("--rrf-k", default=60.0, show_default=True)
@click.option("--candidates", default=50, show_default=True, help="Hits per side of hybrid.")
@click.option("--arch", type=click.Choice(["tiny", "7b"]), default="tiny", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--batches", default="1,8", show_default=True, help="Captioning batch sizes.")
@click.option("--new-tokens", default=32, show_default=True)
@click.option("--repeats", default=3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=1, show_default=True, help="torch CPU threads.")
def main(
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
    part: str,
    root: Path,
    held_out: int,
    epochs: int,
    width: int,
    rrf_k: float,
    candidates: int,
    arch: str,
    device: str,
    batches: str,
    new_tokens: int,
    repeats: int,
    seed: int,
    threads: int,
) -> None:
    """Recall of vector / keyword / hybrid search over captions, and captioning throughput."""
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    stamps = find_stamps(root)
    batch_list = parse_ints(batches)
    if smoke:
        stamps = stamps[:: max(1, len(stamps) // 80)][:80]
        held_out, epochs, width, new_tokens, repeats = 16, 2, 32, 4, 1
        batch_list = [1, 2]
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {
        "dataset": "tuxpaint-stamps-default", "smoke": smoke, "part": part, "seed": seed,
        "rrf_k": rrf_k, "hybrid_candidates": candidates, "text_epochs": epochs,
        "tower_width": width, "threads": threads,
    }  # fmt: skip
    if part in ("all", "recall"):
        with tempfile.TemporaryDirectory(prefix="embedstore-llava-") as tmp:
            recall, info = recall_rows(
                stamps, held_out, epochs, width, seed, Path(tmp), rrf_k, candidates
            )
        rows += [{"part": "recall", **r} for r in recall]
        params["recall"] = info
    if part in ("all", "caption"):
        from embedstore.captioning import pictures_of
        from embedstore.modalities.sources import DecodeLimits

        limits = DecodeLimits()
        pictures = [pictures_of("vision", str(s.image), 1, limits)[0] for s in stamps[:32]]
        rows += [
            {"part": "caption", **r}
            for r in throughput_rows(arch, device, pictures, batch_list, new_tokens, repeats)
        ]
        params |= {"arch": arch, "device": device, "new_tokens": new_tokens, "repeats": repeats}
    emit(result_doc("llava", params, rows), as_json=as_json, out=out, plot=plot)


if __name__ == "__main__":
    main()
