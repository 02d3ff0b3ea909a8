"""Cross-modal retrieval quality: Recall@1/5/10, median rank and mAP per (query, target) modality pair.

Each pair is ranked twice, by the exact cosine ranking and by an ANN index from ``indexers``, so
the recall lost to approximation is explicit; with labels, zero-shot classification accuracy
(prompts "A photo of a {label}.", best cosine wins) is reported per modality. Embeddings are
cached on disk, so a rerun with another ``--index`` does no model work.

    python -m benchmarks.recall pairs.jsonl --encoder imagebind_huge --index HNSW32 --json
    python -m benchmarks.recall --tuxpaint 200 --encoder imagebind_huge --encoder languagebind
    python -m benchmarks.recall --smoke --json

Several ``--encoder`` options evaluate the same pairs with each encoder (each with its family's
preprocessing) and print the rows side by side per modality pair, with the chance level; an
encoder with random weights (``*_test``) is flagged, since its numbers are chance numbers.
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click
import numpy as np

from benchmarks.common import emit, output_options, result_doc
from benchmarks.recall_data import EmbeddingCache, Key, Pair, read_manifest, tuxpaint_manifest
from embedstore.errors import EmbedstoreError

KS = (1, 5, 10)
PROMPT = "A photo of a {label}."


def ranks_exact(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    """1-based rank of every gallery item for every query under the exact cosine ranking."""
    order = np.argsort(-(q @ g.T), axis=1, kind="stable")
    ranks = np.empty(order.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, np.arange(1, g.shape[0] + 1, dtype=np.float64)[None, :], axis=1)
    return ranks


def ranks_from_ids(ids: np.ndarray, n_gallery: int) -> np.ndarray:
    """Ranks from an index's top-k ids (gallery positions, -1 padding); unreturned items get inf."""
    ranks = np.full((ids.shape[0], n_gallery), np.inf)
    rows, cols = np.nonzero(ids >= 0)
    ranks[rows, ids[rows, cols]] = cols + 1
    return ranks


def retrieval_metrics(ranks: np.ndarray, relevant: np.ndarray) -> dict[str, float | None]:
    """Recall@1/5/10 (a relevant item in the top k), median first-relevant rank, and mAP."""
    rel = np.where(relevant, ranks, np.inf)
    first = rel.min(axis=1)
    srt = np.sort(rel, axis=1)
    hits = np.arange(1, srt.shape[1] + 1)[None, :]
    precision = np.where(np.isfinite(srt), hits / np.where(np.isfinite(srt), srt, 1.0), 0.0)
    ap = precision.sum(axis=1) / np.maximum(relevant.sum(axis=1), 1)
    median = float(np.median(first))
    out: dict[str, float | None] = {
        f"recall_at_{k}": round(float((first <= k).mean()), 4) for k in KS
    }
    out["median_rank"] = median if np.isfinite(median) else None
    out["map"] = round(float(ap.mean()), 4)
    return out


def ann_ids(g: np.ndarray, q: np.ndarray, spec: str, k: int) -> tuple[str, np.ndarray]:
    """Build ``spec`` (``auto``: ``indexers.auto_spec``) over the gallery; top-k gallery positions."""
    import indexers

    if spec == "auto":
        spec = indexers.auto_spec(len(g), g.shape[1])
    index = indexers.create_index(spec, g.shape[1])
    if not index.is_trained:
        index.train(g)
    index.add(np.arange(len(g), dtype=np.int64), g)
    return spec, np.asarray(index.search(q, min(k, len(g)))[1])


def evaluate(
    pairs: list[Pair], vectors: dict[Key, np.ndarray], spec: str, ann_k: int
) -> list[dict[str, Any]]:
    """Exact and ANN retrieval rows for every (query modality, target modality) present."""
    gallery_of: dict[str, list[Key]] = defaultdict(list)
    for p in pairs:
        gallery_of[p.target[0]].append(p.target)
    rows = []
    for (qm, tm), group in sorted(_group(pairs).items()):
        gallery = list(dict.fromkeys(gallery_of[tm]))
        pos = {key: i for i, key in enumerate(gallery)}
        queries = list(group)
        relevant = np.zeros((len(queries), len(gallery)), dtype=bool)
        for i, q in enumerate(queries):
            relevant[i, [pos[t] for t in group[q]]] = True
        qv = np.stack([vectors[q] for q in queries]).astype(np.float32)
        gv = np.stack([vectors[t] for t in gallery]).astype(np.float32)
        base: dict[str, Any] = {"task": "retrieval", "query_modality": qm, "target_modality": tm}
        base |= {"queries": len(queries), "gallery": len(gallery)}
        exact = retrieval_metrics(ranks_exact(qv, gv), relevant)
        used, ids = ann_ids(gv, qv, spec, ann_k)
        ann = retrieval_metrics(ranks_from_ids(ids, len(gallery)), relevant)
        lost = {f"lost_at_{k}": round(_f(exact, k) - _f(ann, k), 4) for k in KS}
        rows.append(base | {"index": "exact"} | exact)
        rows.append(base | {"index": used} | ann | lost)
    return rows


def chance(row: dict[str, Any]) -> dict[str, float]:
    """Recall@k of a random ranking with one relevant item: k / gallery (at most 1)."""
    return {f"chance_at_{k}": round(min(1.0, k / max(row["gallery"], 1)), 4) for k in KS}


def random_weights(encoder: str) -> bool:
    """True for the tiny seeded test encoders (random weights: their recall is at chance)."""
    return encoder.endswith("_test")


def _f(metrics: dict[str, float | None], k: int) -> float:
    return float(metrics[f"recall_at_{k}"] or 0.0)


def _group(pairs: list[Pair]) -> dict[tuple[str, str], dict[Key, list[Key]]]:
    out: dict[tuple[str, str], dict[Key, list[Key]]] = defaultdict(lambda: defaultdict(list))
    for p in pairs:
        targets = out[(p.query[0], p.target[0])][p.query]
        if p.target not in targets:
            targets.append(p.target)
    return out


def zero_shot(pairs: list[Pair], cache: EmbeddingCache, prompt: str) -> list[dict[str, Any]]:
    """Accuracy per non-text modality of picking each labelled item's class by its best prompt."""
    labelled: dict[Key, str] = {}
    for p in pairs:
        if p.label is not None:
            for key in (p.query, p.target):
                if key[0] != "text":
                    labelled.setdefault(key, p.label)
    if not labelled:
        return []
    classes = sorted(set(labelled.values()))
    prompts = [("text", prompt.format(label=c)) for c in classes]
    vecs = cache.embed([*prompts, *labelled])
    pv = np.stack([vecs[p] for p in prompts])
    rows = []
    by_modality: dict[str, list[Key]] = defaultdict(list)
    for key in labelled:
        by_modality[key[0]].append(key)
    for modality, keys in sorted(by_modality.items()):
        pred = np.argmax(np.stack([vecs[k] for k in keys]) @ pv.T, axis=1)
        truth = np.array([classes.index(labelled[k]) for k in keys])
        acc = float((pred == truth).mean())
        rows.append(
            {
                "task": "zero-shot",
                "query_modality": modality,
                "target_modality": "text",
                "queries": len(keys),
                "gallery": len(classes),
                "index": "exact",
                "accuracy": round(acc, 4),
                "chance": round(1 / len(classes), 4),
            }
        )
    return rows


def smoke_manifest(folder: Path, n: int = 6) -> Path:
    """A tiny labelled set of generated images and captions: image->itself must rank first."""
    from PIL import Image

    colours = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}
    names = list(colours)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        name = names[i % len(names)]
        noise = rng.integers(0, 90, (64, 64, 3))
        img = np.clip(np.array(colours[name])[None, None, :] + noise - 45, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
        caption = f"a {name} square number {i}"
        for q, qm, t, tm in (
            (f"img{i}.png", "vision", f"img{i}.png", "vision"),
            (caption, "text", f"img{i}.png", "vision"),
            (f"img{i}.png", "vision", caption, "text"),
        ):
            lines.append(
                {
                    "query": q,
                    "query_modality": qm,
                    "target": t,
                    "target_modality": tm,
                    "label": name,
                }
            )
    import json

    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def run_many(
    manifest: Path, cache_dir: Path, encoders: list[str], spec: str = "auto", **kwargs: Any
) -> dict[str, Any]:
    """`run` for each encoder on the same pairs: rows tagged by encoder, grouped per pair."""
    docs = [run(manifest, cache_dir, name, spec, **kwargs) for name in encoders]
    rows = []
    for name, doc in zip(encoders, docs, strict=True):
        for r in doc["rows"]:
            rows.append({"encoder": name} | r)
    order = {name: i for i, name in enumerate(encoders)}
    rows.sort(
        key=lambda r: (
            r["task"],
            r["query_modality"],
            r["target_modality"],
            r["index"] != "exact",
            order[r["encoder"]],
        )
    )
    params = dict(docs[0]["params"])
    params["encoder"] = ",".join(encoders)
    params["encoders"] = list(encoders)
    params["embedded"] = sum(d["params"]["embedded"] for d in docs)
    params["cached"] = sum(d["params"]["cached"] for d in docs)
    random = [n for n in encoders if random_weights(n)]
    if random:
        params["note"] = NOTE.format(names=", ".join(random))
    return result_doc("recall", params, rows)


NOTE = "{names}: random weights, recall at chance level (see chance_at_k); not a quality figure"


def run(
    manifest: Path,
    cache_dir: Path,
    encoder: str,
    spec: str = "auto",
    *,
    ann_k: int = 100,
    prompt: str = PROMPT,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: int = 32,
    weights_dir: Path | None = None,
) -> dict[str, Any]:
    """Evaluate a manifest: the result document (rows for retrieval and zero-shot)."""
    pairs = read_manifest(manifest)
    cache = EmbeddingCache(
        cache_dir,
        encoder,
        device=device,
        precision=precision,
        batch_size=batch_size,
        weights_dir=weights_dir,
    )
    vectors = cache.embed([k for p in pairs for k in (p.query, p.target)])
    rows = [
        r | chance(r) if r["task"] == "retrieval" else r
        for r in evaluate(pairs, vectors, spec, ann_k)
    ]
    rows += zero_shot(pairs, cache, prompt)
    params = {
        "manifest": str(manifest),
        "pairs": len(pairs),
        "encoder": encoder,
        "precision": precision,
        "device": device,
        "index": spec,
        "ann_k": ann_k,
        "prompt": prompt,
        "cache_dir": str(cache_dir),
        "embedded": cache.encoded,
        "cached": cache.hits,
    }
    return result_doc("recall", params, rows)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("manifest", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--encoder",
    "encoders",
    multiple=True,
    default=("imagebind_huge",),
    show_default=True,
    help="Registered encoder name; repeat (or comma-separate) to compare encoders side by side.",
)
@click.option(
    "--index",
    "spec",
    default="auto",
    show_default=True,
    help="ANN index spec (FAISS factory string) or auto.",
)
@click.option(
    "--ann-k", type=int, default=100, show_default=True, help="Hits fetched from the ANN index."
)
@click.option("--prompt", default=PROMPT, show_default=True, help="Zero-shot prompt template.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Embedding cache (default: <data dir>/bench-cache).",
)
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", default="fp32", show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--threads", type=int, default=0, help="torch threads (0: torch default).")
@click.option(
    "--tuxpaint",
    "tuxpaint",
    type=int,
    default=None,
    metavar="N",
    help="Evaluate N stamps of Debian's tuxpaint-stamps-default (caption/sound <-> photo).",
)
@output_options
def main(
    manifest: Path | None,
    encoders: tuple[str, ...],
    spec: str,
    ann_k: int,
    prompt: str,
    cache_dir: Path | None,
    device: str,
    precision: str,
    batch_size: int,
    weights_dir: Path | None,
    threads: int,
    tuxpaint: int | None,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Recall@1/5/10, median rank and mAP of MANIFEST's pairs: exact vs ANN, plus zero-shot accuracy.

    \b
        python -m benchmarks.recall pairs.jsonl --encoder imagebind_huge --index HNSW32
        python -m benchmarks.recall --tuxpaint 200 --encoder imagebind_huge,languagebind
        embedstore bench recall pairs.csv --index IVF256,Flat --out recall.json
    """
    names = [n.strip() for e in encoders for n in e.split(",") if n.strip()]
    if "{label}" not in prompt:
        raise click.BadParameter("must contain {label}", param_hint="--prompt")
    with tempfile.TemporaryDirectory(prefix="embedstore-recall-") as tmp:
        if smoke:
            manifest = manifest or smoke_manifest(Path(tmp))
            device, threads = "cpu", threads or 2
            names = [n for n in names if n.endswith("_test")] or ["imagebind_test"]
            spec = "HNSW16" if spec == "auto" else spec  # exercise a real ANN index
        if tuxpaint is not None:
            if manifest is not None:
                raise click.UsageError("give either MANIFEST or --tuxpaint")
            manifest = tuxpaint_manifest(Path(tmp) / "tuxpaint.jsonl", limit=tuxpaint or None)
        if manifest is None:
            raise click.UsageError("give a MANIFEST (or --tuxpaint N, or --smoke)")
        if threads:
            import torch

            torch.set_num_threads(threads)
        if cache_dir is None:
            from embedstore.config import load_settings

            cache_dir = Path(tmp) / "cache" if smoke else load_settings().data_dir / "bench-cache"
        try:
            doc = run_many(
                manifest,
                cache_dir,
                names,
                spec,
                ann_k=ann_k,
                prompt=prompt,
                device=device,
                precision=precision,
                batch_size=batch_size,
                weights_dir=weights_dir,
            )
        except EmbedstoreError as e:
            raise click.ClickException(str(e)) from e
        except Exception as e:
            import indexers

            if isinstance(e, indexers.IndexError_):
                raise click.ClickException(str(e)) from e
            raise
        doc["params"]["smoke"] = smoke
        if smoke or tuxpaint is not None:
            doc["params"]["manifest"] = (
                "smoke" if smoke else f"tuxpaint-stamps-default ({tuxpaint})"
            )
        if "note" in doc["params"]:
            click.echo(f"note: {doc['params']['note']}", err=True)
        emit(doc, as_json=as_json, out=out, plot=plot)


if __name__ == "__main__":
    main()
