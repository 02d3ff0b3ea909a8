"""Shared benchmark pieces: timer, recall, datasets, machine info, JSON results and CLI options.

Every benchmark script writes one JSON document (``result_doc``) to ``--out`` or stdout and a human
table to stderr (``write_result``/``emit``); ``--smoke`` picks a tiny preset CI runs in seconds.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

F = TypeVar("F", bound=Callable[..., Any])


# -- timing ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Timing:
    """Wall-clock seconds of repeated calls: median, 90th percentile and the number of runs."""

    median_s: float
    p90_s: float
    runs: int
    times: tuple[float, ...] = field(default=(), repr=False)
    cpu_median_s: float = 0.0  # process CPU time: steadier than wall time on a shared machine

    @property
    def min_s(self) -> float:
        return min(self.times) if self.times else self.median_s


def _cuda_sync() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def timeit(
    fn: Callable[[], Any], warmup: int = 3, runs: int = 10, *, cuda_sync: bool = False
) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``runs`` times timed; CUDA is synced around each run."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    for _ in range(warmup):
        fn()
    if cuda_sync:
        _cuda_sync()
    times, cpu = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        if cuda_sync:
            _cuda_sync()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    p90 = float(np.percentile(times, 90)) if len(times) > 1 else times[0]
    return Timing(statistics.median(times), p90, runs, tuple(times), statistics.median(cpu))


# -- recall ------------------------------------------------------------------------------------
def recall_at_k(I: np.ndarray, gt: np.ndarray, k: int) -> float:  # noqa: E741 - FAISS naming
    """|I[:, :k] ∩ gt[:, :k]| / (nq * k): FAISS's knn intersection measure (ids < 0 never count)."""
    I, gt = np.asarray(I)[:, :k], np.asarray(gt)[:, :k]  # noqa: E741
    if I.shape[0] != gt.shape[0]:
        raise ValueError(f"result has {I.shape[0]} queries, ground truth {gt.shape[0]}")
    if I.shape[0] == 0 or k <= 0:
        return 0.0
    a = np.where(I < 0, -1, I)
    b = np.where(gt < 0, -2, gt)  # padding on both sides must never match
    hits = 0
    for s in range(0, a.shape[0], 4096):  # bounded memory: a (rows, k, k) comparison per chunk
        hits += int((a[s : s + 4096, :, None] == b[s : s + 4096, None, :]).any(axis=2).sum())
    return hits / (I.shape[0] * k)


# -- datasets ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dataset:
    """Base vectors, query vectors and exact inner-product ground truth (ids into ``xb``)."""

    xb: np.ndarray
    xq: np.ndarray
    gt: np.ndarray
    name: str = "synthetic"

    @property
    def dim(self) -> int:
        return int(self.xb.shape[1])


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32 (zero rows stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def exact_knn(xb: np.ndarray, xq: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids by inner product (faiss IndexFlatIP)."""
    import faiss

    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(np.ascontiguousarray(xb, dtype=np.float32))
    _, ids = index.search(np.ascontiguousarray(xq, dtype=np.float32), min(k, xb.shape[0]))
    return ids.astype(np.int64)


def synthetic_clustered(
    n: int,
    nq: int,
    dim: int,
    seed: int = 0,
    n_clusters: int | None = None,
    *,
    k: int = 100,
    spread: float = 0.35,
) -> Dataset:
    """A mixture of Gaussians on the unit sphere (structured, like real embeddings), exact ground truth.

    Queries come from the same mixture but are not in the base set.
    """
    rng = np.random.default_rng(seed)
    n_clusters = n_clusters or max(1, int(np.sqrt(n + nq)) // 2)
    centers = normalize(rng.standard_normal((n_clusters, dim), dtype=np.float32))
    sigma = np.float32(spread / np.sqrt(dim))

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, dim), dtype=np.float32)
        step = 65536
        for s in range(0, m, step):  # chunks bound peak memory at 1M x 1024
            e = min(m, s + step)
            labels = rng.integers(0, n_clusters, e - s)
            out[s:e] = centers[labels] + sigma * rng.standard_normal((e - s, dim), dtype=np.float32)
        return normalize(out)

    xb, xq = draw(n), draw(nq)
    return Dataset(xb, xq, exact_knn(xb, xq, k), f"clustered-{n}x{dim}")


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(
    root: Path = FASHION_MNIST_DIR, *, nq: int | None = None, k: int = 100
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Fashion-MNIST (Debian ``dataset-fashion-mnist``) as unit 784-d vectors: train = base, t10k = queries.

    Returns the dataset and the train and test labels.
    """
    files = {s: root / f"{s}-images-idx3-ubyte.gz" for s in ("train", "t10k")} | {
        f"{s}-labels": root / f"{s}-labels-idx1-ubyte.gz" for s in ("train", "t10k")
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found ({', '.join(missing)}); "
            "install it with: apt-get install dataset-fashion-mnist"
        )
    xb = normalize(_read_idx(files["train"]).reshape(-1, 784).astype(np.float32))
    xq = normalize(_read_idx(files["t10k"]).reshape(-1, 784).astype(np.float32))
    yb, yq = _read_idx(files["train-labels"]), _read_idx(files["t10k-labels"])
    if nq is not None:
        xq, yq = xq[:nq], yq[:nq]
    return Dataset(xb, xq, exact_knn(xb, xq, k), "fashion-mnist"), yb, yq


# -- machine and provenance --------------------------------------------------------------------
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU, core count, library versions and the GPU name (or None) of this machine."""
    gpu = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    faiss_version = _version("faiss-cpu") or _version("faiss-gpu-cu12") or _version("faiss")
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _version("torch"),
        "faiss": faiss_version,
        "gpu": gpu,
        "device": gpu or "cpu",
    }


def git_rev() -> str:
    """Short commit hash of the working tree ("unknown" outside git), with "+dirty" if modified."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024


def rss_mb() -> float:
    """Current resident memory of this process, in MiB (Linux; falls back to the peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


# -- results -----------------------------------------------------------------------------------
def result_doc(
    benchmark: str, params: dict[str, Any], rows: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The JSON document every benchmark writes: name, time, git, machine, parameters and rows."""
    return {
        "benchmark": benchmark,
        "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git": git_rev(),
        "machine": machine_info(),
        "params": dict(params),
        "rows": [dict(r) for r in rows],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, dict | list):
        return json.dumps(v)
    return "" if v is None else str(v)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as an aligned plain-text table (columns in first-seen key order)."""
    if not rows:
        return "(no rows)"
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def write_result(
    doc: dict[str, Any], out: Path | None = None, *, stdout: bool | None = None
) -> None:
    """JSON to ``out`` (or to stdout when ``out`` is None, or ``stdout`` is True); a table to stderr."""
    text = json.dumps(doc, indent=2, default=_json_default)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    if stdout or (stdout is None and out is None):
        click.echo(text)
    m = doc.get("machine", {})
    click.echo(
        f"# {doc.get('benchmark')} @ {doc.get('git')} on {m.get('device')} "
        f"({m.get('cpu')}, {m.get('cpu_count')} cores)",
        err=True,
    )
    click.echo(format_table(doc.get("rows", [])), err=True)
    if out is not None:
        click.echo(f"wrote {out}", err=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def emit(
    doc: dict[str, Any], *, as_json: bool = False, out: Path | None = None, plot: Path | None = None
) -> None:
    """Write the result as the shared options ask: JSON file/stdout, table, and optionally a PNG."""
    write_result(doc, out, stdout=as_json or out is None)
    if plot is not None:
        from benchmarks.plot import plot_result

        plot_result(doc, plot)
        click.echo(f"wrote {plot}", err=True)


def output_options(fn: F) -> F:
    """Add ``--json`` (as_json), ``--out``, ``--smoke`` and ``--plot`` to a click command."""
    options = [
        click.option("--json", "as_json", is_flag=True, help="Print the JSON document to stdout."),
        click.option(
            "--out",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Write the JSON document to this file (stdout gets it only with --json).",
        ),
        click.option("--smoke", is_flag=True, help="Tiny preset that finishes in seconds (CI)."),
        click.option(
            "--plot",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Also draw the curves into this PNG (needs matplotlib).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def parse_ints(text: str) -> list[int]:
    """'1,4,16' -> [1, 4, 16]."""
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from e
