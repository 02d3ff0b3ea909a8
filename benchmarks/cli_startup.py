"""Start-up time of catalog commands: ``embedstore --help``, ``stats``, ``ls``, ``encoders``.

Each command runs as a fresh ``python -m cli`` process against a small real catalog (SQLite,
FAISS Flat files; made here without any model) and is timed in wall-clock and CPU seconds (the
children's user + system time, the steadier figure on a shared machine). ``-X importtime`` lists
which heavy packages each command imported. ``--before DIR`` runs a second source checkout (e.g.
``git worktree add /tmp/before <commit>``) alternately with this one under the same load.

    python -m benchmarks.cli_startup --runs 5
    python -m benchmarks.cli_startup --runs 5 --before /tmp/before --out result.json
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from benchmarks.common import result_doc, write_result

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "faiss", "open_clip", "torchvision", "torchaudio", "PIL", "alembic")
COMMANDS = {
    "help": ["--help"],
    "stats": ["stats"],
    "ls": ["ls", "-c", "bench"],
    "encoders": ["encoders"],
}


def make_catalog(data_dir: Path, n: int = 200, dim: int = 64) -> None:
    """A collection ``bench`` of ``n`` items with random unit vectors and saved FAISS files."""
    import numpy as np

    from embedstore.config import Settings
    from embedstore.store import NewItem, NewVector, Store

    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with Store.open(Settings(data_dir=data_dir)) as store:
        coll = store.create_collection("bench", "imagebind_test", dim, index_spec="Flat")
        coll.add_items(
            [
                NewItem(f"/lib/{i}.jpg", "vision", vectors=[NewVector("vision", x[i])])
                for i in range(n)
            ]
        )
        coll.search(x[:1], k=1)  # loads the index; closing the store saves it


def run_once(checkout: Path, data_dir: Path, args: list[str]) -> dict[str, Any]:
    """One timed process: wall and CPU seconds, and the heavy packages it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDSTORE_")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cli", "--data-dir", str(data_dir), *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{checkout}: embedstore {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in out.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "heavy": sorted(names & set(HEAVY))}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--runs", default=5, show_default=True, help="Timed runs per command and checkout.")
@click.option("--commands", default=",".join(COMMANDS), show_default=True, help="A subset.")
@click.option(
    "--before",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Another source checkout, run alternately with this one.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="JSON file.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document on stdout.")
def main(runs: int, commands: str, before: Path | None, out: Path | None, as_json: bool) -> None:
    """Wall and CPU seconds of catalog commands, and the heavy packages they import."""
    checkouts = {"this": ROOT} | ({"before": before.resolve()} if before else {})
    names = [c.strip() for c in commands.split(",") if c.strip()]
    unknown = sorted(set(names) - set(COMMANDS))
    if unknown:
        raise click.BadParameter(f"unknown {unknown}; known: {', '.join(COMMANDS)}")
    timed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        make_catalog(data_dir)
        for name in names:  # one untimed warm-up each (page cache, .pyc files)
            for checkout in checkouts.values():
                run_once(checkout, data_dir, COMMANDS[name])
        for _ in range(runs):  # alternate, so both see the same machine load
            for name in names:
                for label, checkout in checkouts.items():
                    timed.setdefault((name, label), []).append(
                        run_once(checkout, data_dir, COMMANDS[name])
                    )
    rows = [
        {
            "command": "embedstore " + " ".join(COMMANDS[name]),
            "checkout": label,
            "wall_median_s": round(statistics.median(r["wall_s"] for r in rs), 3),
            "wall_min_s": round(min(r["wall_s"] for r in rs), 3),
            "cpu_median_s": round(statistics.median(r["cpu_s"] for r in rs), 3),
            "heavy_imports": ",".join(rs[0]["heavy"]) or "-",
        }
        for (name, label), rs in timed.items()
    ]
    params: dict[str, Any] = {"runs": runs, "before": str(before) if before else None}
    params["load_average"] = [round(x, 2) for x in os.getloadavg()]
    write_result(result_doc("cli_startup", params, rows), out, stdout=as_json or None)


if __name__ == "__main__":
    main()
