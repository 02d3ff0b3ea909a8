"""Draw benchmark JSON results as PNGs (the only module that imports matplotlib).

python -m benchmarks.plot benchmarks/results/*.json      # writes a .png beside each .json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(doc: dict[str, Any]) -> str:
    m, p = doc.get("machine", {}), doc.get("params", {})
    data = p.get("dataset") or p.get("encoder") or ""
    return f"{doc.get('benchmark')} {data} - {m.get('device')} ({m.get('cpu_count')} cores) @ {doc.get('git')}"


def plot_ann(doc: dict[str, Any], ax_for: Any) -> None:
    """Recall@k vs QPS (log) per (layer, spec), one panel per batch size."""
    by_batch: dict[int, dict[tuple[str, str], list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in doc["rows"]:
        by_batch[r["batch"]][(r["layer"], r["spec"])].append((r["recall_at_k"], r["qps"]))
    styles = {"faiss": "-", "indexers": "--", "store": ":"}
    for ax, (batch, curves) in zip(ax_for(len(by_batch)), sorted(by_batch.items()), strict=False):
        for (layer, spec), pts in sorted(curves.items()):
            pts.sort()
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                styles.get(layer, "-"),
                marker="o",
                markersize=3,
                label=f"{spec} ({layer})",
            )
        ax.set_yscale("log")
        ax.set_xlabel(f"recall@{doc['params'].get('k', 10)}")
        ax.set_ylabel("queries / s")
        ax.set_title(f"batch {batch}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)


def plot_recall(doc: dict[str, Any], ax_for: Any) -> None:
    """Recall@1/5/10 bars per (query, target) pair, exact vs ANN."""
    rows = [r for r in doc["rows"] if "recall_at_1" in r]
    (ax,) = ax_for(1)
    labels = [f"{r['query_modality']}->{r['target_modality']}\n{r['index']}" for r in rows]
    width = 0.25
    for j, key in enumerate(("recall_at_1", "recall_at_5", "recall_at_10")):
        ax.bar(
            [i + (j - 1) * width for i in range(len(rows))],
            [r[key] for r in rows],
            width,
            label=key,
        )
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)


def plot_generic(doc: dict[str, Any], ax_for: Any) -> None:
    """Bars of the first throughput-like number of each row (items/s, qps, ...)."""
    rows = doc.get("rows", [])
    (ax,) = ax_for(1)
    keys = ("items_per_s", "qps", "per_s", "median_s")
    key = next((k for k in keys if rows and k in rows[0]), None)
    if key is None and rows:
        key = next((k for k, v in rows[0].items() if isinstance(v, int | float)), None)
    if key is None:
        return
    label_keys = [k for k, v in rows[0].items() if isinstance(v, str)][:3]
    ax.bar(range(len(rows)), [r.get(key) or 0 for r in rows])
    ax.set_xticks(
        range(len(rows)), [" ".join(str(r.get(k)) for k in label_keys) for r in rows], rotation=60
    )
    ax.set_ylabel(key)


def markdown_ann(doc: dict[str, Any]) -> str:
    """A Markdown table of an ann result: recall and QPS per layer, batch 1 and 256, per knob."""
    layers = list(dict.fromkeys(r["layer"] for r in doc["rows"]))
    cells: dict[tuple[str, str, Any], dict[tuple[str, int], dict[str, Any]]] = defaultdict(dict)
    for r in doc["rows"]:
        cells[(r["spec"], r["param"] or "", r["value"])][(r["layer"], r["batch"])] = r
    head = ["spec", "knob"] + [f"recall {lay}" for lay in layers]
    for b in (1, 256):
        head += [f"QPS b{b} {lay}" for lay in layers]
    for b in (1, 256):
        head += [f"CPU-QPS b{b} {lay}" for lay in layers]
    head += [f"CPU ratio b{b} {lay}" for b in (1, 256) for lay in layers if lay != "faiss"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (spec, param, value), by in cells.items():
        row = [spec, f"{param}={value}" if param else ""]
        row += [
            f"{by[(lay, 256)]['recall_at_k']:.3f}" if (lay, 256) in by else "" for lay in layers
        ]
        for key in ("qps", "qps_cpu"):
            for b in (1, 256):
                row += [f"{by[(lay, b)][key]:,.0f}" if (lay, b) in by else "" for lay in layers]
        for b in (1, 256):
            for lay in layers:
                if lay == "faiss":
                    continue
                ours, ref = by.get((lay, b)), by.get(("faiss", b))
                ok = ours and ref and ref.get("qps_cpu")
                row.append(f"{ours['qps_cpu'] / ref['qps_cpu']:.2f}" if ok else "")  # type: ignore[index]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


PLOTTERS = {"ann": plot_ann, "recall": plot_recall}


def plot_result(doc: dict[str, Any], png: Path) -> Path:
    """Draw one result document into ``png``."""
    plt = _pyplot()
    fig = plt.figure(figsize=(11, 5))

    def ax_for(n: int) -> list[Any]:
        return [fig.add_subplot(1, n, i + 1) for i in range(n)]

    PLOTTERS.get(doc.get("benchmark", ""), plot_generic)(doc, ax_for)
    fig.suptitle(_title(doc), fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("results", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--markdown", is_flag=True, help="Print Markdown tables (ann results) instead.")
def main(results: tuple[Path, ...], markdown: bool) -> None:
    """Write RESULT.png beside every RESULT.json given (or print Markdown tables)."""
    for path in results:
        doc = json.loads(path.read_text())
        if markdown:
            if doc.get("benchmark") == "ann":
                click.echo(f"{path.name}\n\n{markdown_ann(doc)}\n")
            continue
        png = plot_result(doc, path.with_suffix(".png"))
        click.echo(str(png), err=True)


if __name__ == "__main__":
    main()
