"""ANN benchmark: recall@k vs QPS, build time and memory per index, raw FAISS vs our layers.

Every index spec is built three ways on the same data: raw ``faiss.index_factory`` (the reference),
``indexers.create_index`` (our wrapper) and an ``embedstore.store`` collection (SQLite catalog +
FAISS); each is swept over its search parameter (IVF ``nprobe``, HNSW ``efSearch``) and timed at
batch 1 and batch 256. ``overhead`` rows give our QPS as a fraction of raw FAISS at the same
parameter (same recall). An ``auto`` row checks ``indexers.auto_spec`` against the best candidate
that reaches the recall target.

    python -m benchmarks.ann --smoke --json
    python -m benchmarks.ann --n 100000 --out benchmarks/results/ann-clustered-100k.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click
import numpy as np

from benchmarks.ann_layers import HNSW_EF_CONSTRUCTION, LAYERS, Built, default_specs, param_sweep
from benchmarks.common import (
    Dataset,
    emit,
    fashion_mnist,
    output_options,
    parse_ints,
    recall_at_k,
    result_doc,
    synthetic_clustered,
    timeit,
)

SMOKE: dict[str, Any] = {
    "n": 2000,
    "nq": 50,
    "dim": 64,
    "nq1": 10,
    "runs": 1,
    "nprobe": "1,4,16",
    "ef": "16,64",
}


def measure(
    built: Built,
    ds: Dataset,
    k: int,
    batches: list[int],
    nq1: int,
    runs: int,
    sweep: dict[str, tuple[int, ...]],
) -> list[dict[str, Any]]:
    """One row per (search parameter, batch size): recall@k and QPS."""
    rows = []
    for param, value in param_sweep(built.spec, sweep):
        built.set_param(param, value)
        ids = built.search(ds.xq, k)
        recall = recall_at_k(ids, ds.gt, k)
        for b in batches:
            q = ds.xq if b > 1 else ds.xq[:nq1]

            def run(q: np.ndarray = q, b: int = b) -> None:
                for s in range(0, len(q), b):
                    built.search(q[s : s + b], k)

            t = timeit(run, warmup=1, runs=runs)
            rows.append(
                {
                    "layer": built.layer,
                    "spec": built.spec,
                    "param": param,
                    "value": value,
                    "batch": b,
                    "recall_at_k": round(recall, 4),
                    "qps": round(len(q) / t.median_s, 1),
                    "qps_cpu": round(len(q) / max(t.cpu_median_s, 1e-9), 1),
                    "build_s": round(built.build_s, 3),
                    "index_mb": round(built.index_mb, 2),
                    "rss_delta_mb": round(built.rss_delta_mb, 1),
                }
            )
    return rows


def measure_together(
    views: list[Built],
    ds: Dataset,
    k: int,
    batches: list[int],
    nq1: int,
    runs: int,
    sweep: dict[str, tuple[int, ...]],
) -> list[dict[str, Any]]:
    """``measure`` for views of one index, interleaved per knob so machine noise hits all alike."""
    if len(views) == 1:
        return measure(views[0], ds, k, batches, nq1, runs, sweep)
    out: list[dict[str, Any]] = []
    for param, value in param_sweep(views[0].spec, sweep):
        knob = {param: (value,)} if param is not None and value is not None else sweep
        for view in views:
            out += measure(view, ds, k, batches, nq1, runs, knob)
    return out


def overhead_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our QPS / reference QPS per row: at the same search knob, and at equal (or better) recall.

    The reference at the same knob is raw FAISS on the store's own index (``store_faiss``) for the
    store layers, and a raw FAISS build for ``indexers``. The equal-recall reference is the
    fastest raw FAISS build point of the same spec and batch whose recall is at least ours (None
    when raw FAISS never gets there).
    """
    faiss_rows = [r for r in rows if r["layer"] == "faiss"]
    same = {(r["spec"], r["param"], r["value"], r["batch"]): r for r in faiss_rows}
    own = {
        (r["spec"], r["param"], r["value"], r["batch"]): r
        for r in rows
        if r["layer"] == "store_faiss"
    }
    out = []
    for r in rows:
        if r["layer"] in ("faiss", "store_faiss"):
            continue
        key = (r["spec"], r["param"], r["value"], r["batch"])
        reference = "store_faiss" if r["layer"].startswith("store") and key in own else "faiss"
        base = own.get(key) if reference == "store_faiss" else same.get(key)
        better = [
            f
            for f in faiss_rows
            if f["spec"] == r["spec"]
            and f["batch"] == r["batch"]
            and f["recall_at_k"] >= r["recall_at_k"] - 1e-9
        ]
        out.append(
            {
                "layer": r["layer"],
                "reference": reference,
                "spec": r["spec"],
                "param": r["param"],
                "value": r["value"],
                "batch": r["batch"],
                "recall_at_k": r["recall_at_k"],
                "faiss_recall_at_k": base["recall_at_k"] if base else None,
                "qps": r["qps"],
                "faiss_qps": base["qps"] if base else None,
                "qps_ratio": round(r["qps"] / base["qps"], 3) if base and base["qps"] else None,
                "qps_ratio_equal_recall": _ratio(r, better, "qps"),
                "cpu_ratio": round(r["qps_cpu"] / base["qps_cpu"], 3) if base else None,
                "cpu_ratio_equal_recall": _ratio(r, better, "qps_cpu"),
            }
        )
    return out


def _ratio(row: dict[str, Any], refs: list[dict[str, Any]], key: str) -> float | None:
    best = max((f[key] for f in refs), default=0.0)
    return round(row[key] / best, 3) if best else None


def best_at(
    rows: list[dict[str, Any]], target: float, batch: int, layer: str
) -> dict[str, Any] | None:
    """The fastest row of ``layer`` at ``batch`` whose recall reaches ``target``."""
    ok = [
        r
        for r in rows
        if r["layer"] == layer and r["batch"] == batch and r["recall_at_k"] >= target
    ]
    return max(ok, key=lambda r: r["qps"]) if ok else None


CANDIDATE_LAYERS = ("faiss", "indexers", "store_faiss")  # index speed without catalog work


def auto_row(
    ds: Dataset, rows: list[dict[str, Any]], k: int, target: float, runs: int, nq1: int
) -> dict[str, Any]:
    """Build what the store builds on its own for this data and compare it with the candidates.

    That is ``indexers.auto_spec`` for the size, trained on a sample, filled with ``add_tuned``
    (the store's knob tuning for recall@10 >= 0.95). It is compared, per batch size, with the
    fastest swept point of any spec that reaches ``target``.
    """
    import indexers

    spec = indexers.auto_spec(len(ds.xb), ds.dim)
    t0 = time.perf_counter()
    index = indexers.create_index(spec, ds.dim, n=len(ds.xb))
    if not index.is_trained:
        size = indexers.training_size(index.min_training_points, len(ds.xb))  # type: ignore[union-attr]
        pick = np.random.default_rng(0).choice(len(ds.xb), size, replace=False)
        index.train(ds.xb[np.sort(pick)])
    ids = np.arange(len(ds.xb), dtype=np.int64)
    tuned = index.add_tuned(ids, ds.xb) if hasattr(index, "add_tuned") else index.add(ids, ds.xb)
    build_s = time.perf_counter() - t0
    recall = recall_at_k(index.search(ds.xq, k)[1], ds.gt, k)
    out: dict[str, Any] = {
        "auto_spec": spec,
        "tuned": tuned or None,
        "recall_at_k": round(recall, 4),
        "build_s": round(build_s, 3),
        "meets_target": recall >= target,
    }
    for b in (1, 256):
        q = ds.xq if b > 1 else ds.xq[:nq1]
        t = timeit(
            lambda q=q, b=b: [index.search(q[s : s + b], k) for s in range(0, len(q), b)], 1, runs
        )
        qps = len(q) / t.median_s
        best = max(
            (r for lay in CANDIDATE_LAYERS if (r := best_at(rows, target, b, lay))),
            key=lambda r: r["qps"],
            default=None,
        )
        out[f"qps_b{b}"] = round(qps, 1)
        knob = f" {best['param']}={best['value']}" if best and best["param"] else ""
        out[f"best_b{b}"] = best and f"{best['spec']}{knob}"
        out[f"best_qps_b{b}"] = best and best["qps"]
        out[f"qps_vs_best_b{b}"] = round(qps / best["qps"], 3) if best else None
    click.echo(
        f"auto: {spec} {tuned or ''} recall@{k} {recall:.3f}, "
        f"{out['qps_b1']:,.0f} QPS at batch 1 ({out['qps_vs_best_b1']} of the best candidate)",
        err=True,
    )
    return out


def load_dataset(
    name: str, n: int, nq: int, dim: int, seed: int, n_clusters: int | None
) -> Dataset:
    """The clustered synthetic set or Fashion-MNIST (subsampled to ``n`` base / ``nq`` queries)."""
    if name == "fashion-mnist":
        ds, _, _ = fashion_mnist(nq=nq)
        if n < len(ds.xb):
            from benchmarks.common import exact_knn

            xb = ds.xb[:n]
            return Dataset(xb, ds.xq, exact_knn(xb, ds.xq, 100), f"fashion-mnist-{n}")
        return ds
    return synthetic_clustered(n, nq, dim, seed, n_clusters)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dataset",
    type=click.Choice(["clustered", "fashion-mnist"]),
    default="clustered",
    show_default=True,
)
@click.option(
    "--n", type=int, default=100_000, show_default=True, help="Base vectors (1000000 on request)."
)
@click.option("--nq", type=int, default=1000, show_default=True, help="Queries.")
@click.option(
    "--dim", type=int, default=1024, show_default=True, help="Dimension (clustered only)."
)
@click.option("--clusters", type=int, default=None, help="Gaussian clusters (default sqrt(n)/2).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option(
    "--spec", "specs", multiple=True, help="FAISS factory spec (repeatable); default by size."
)
@click.option(
    "--layers", default="faiss,indexers,store", show_default=True, help="Which layers to run."
)
@click.option("--batch", "batches", default="1,256", show_default=True, help="Query batch sizes.")
@click.option("--nq1", type=int, default=200, show_default=True, help="Queries timed at batch 1.")
@click.option(
    "--nprobe", "nprobes", default="1,2,4,8,16,32,64", show_default=True, help="IVF sweep."
)
@click.option(
    "--ef", "efs", default="16,32,64,128,256", show_default=True, help="HNSW efSearch sweep."
)
@click.option(
    "--ef-construction",
    type=int,
    default=HNSW_EF_CONSTRUCTION,
    show_default=True,
    help="HNSW build effort (faiss and indexers layers).",
)
@click.option("--threads", type=int, default=0, help="FAISS OpenMP threads (0: FAISS default).")
@click.option("--runs", type=int, default=3, show_default=True, help="Timed repeats (median).")
@click.option(
    "--target", type=float, default=0.95, show_default=True, help="Recall target for auto."
)
@output_options
def main(
    dataset: str,
    n: int,
    nq: int,
    dim: int,
    clusters: int | None,
    seed: int,
    k: int,
    specs: tuple[str, ...],
    layers: str,
    batches: str,
    nq1: int,
    nprobes: str,
    efs: str,
    ef_construction: int,
    threads: int,
    runs: int,
    target: float,
    as_json: bool,
    out: Path | None,
    smoke: bool,
    plot: Path | None,
) -> None:
    """Recall@k vs QPS, build time and memory: raw FAISS vs indexers vs the store."""
    if smoke:
        n, nq, nq1, runs = SMOKE["n"], SMOKE["nq"], SMOKE["nq1"], SMOKE["runs"]
        dim = dim if dataset == "fashion-mnist" else SMOKE["dim"]
        nprobes, efs = SMOKE["nprobe"], SMOKE["ef"]
        threads = threads or 1  # OpenMP on a shared 2-core box costs 100x at tiny batches
    if threads:
        import faiss

        faiss.omp_set_num_threads(threads)
    sweep = {"nprobe": tuple(parse_ints(nprobes)), "efSearch": tuple(parse_ints(efs))}
    layer_names = [x.strip() for x in layers.split(",") if x.strip()]
    unknown = set(layer_names) - set(LAYERS)
    if unknown:
        raise click.BadParameter(f"unknown layers {sorted(unknown)}; known: {sorted(LAYERS)}")
    ds = load_dataset(dataset, n, nq, dim, seed, clusters)
    spec_list = list(specs) or default_specs(len(ds.xb), ds.dim)
    rows: list[dict[str, Any]] = []
    for spec in spec_list:
        for layer in layer_names:
            click.echo(f"building {spec} via {layer} ...", err=True)
            made = LAYERS[layer](spec, ds.xb, ef_construction)
            views = made if isinstance(made, list) else [made]
            rows += measure_together(views, ds, k, parse_ints(batches), nq1, runs, sweep)
            for view in views:
                view.close()
    params = {
        "dataset": ds.name,
        "n": len(ds.xb),
        "nq": len(ds.xq),
        "dim": ds.dim,
        "k": k,
        "seed": seed,
        "clusters": clusters,
        "specs": spec_list,
        "layers": layer_names,
        "batches": parse_ints(batches),
        "nq_batch1": nq1,
        "runs": runs,
        "sweep": sweep,
        "threads": threads or None,
        "ef_construction": ef_construction,
        "target": target,
        "smoke": smoke,
    }
    doc = result_doc("ann", params, rows)
    doc["overhead"] = overhead_rows(rows)
    doc["auto"] = auto_row(ds, rows, k, target, runs, nq1)
    emit(doc, as_json=as_json, out=out, plot=plot)


if __name__ == "__main__":
    main()
