"""Writer for the kill -9 test: a pre-imported parent forks one writer per trial.

``python crash_writer.py`` reads ``URL INDEX_DIR LOG SEED`` lines on stdin; for each it forks a
child that writes to the store forever (adds, upserts, removes, index saves) and prints the
child's pid. After every commit the child appends ``add ID`` / ``del ID`` lines to LOG (``rm IDS`` just before a removal).
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

from embedstore.store import NewItem, NewVector, Store

DIM = 8


def write_forever(url: str, index_dir: str, log_path: str, seed: int) -> None:
    """Random adds, upserts, removes and flushes until killed."""
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(seed)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    store = Store(url, index_dir)
    coll = store.create_collection(
        "crash", "e", DIM, index_spec="HNSW8" if seed % 3 == 0 else "auto", exist_ok=True
    )
    live = [i.id for i in coll.list_items(limit=100_000)]
    os.write(log, b"ready\n")
    n = 0
    while True:
        op = rng.random()
        if op < 0.6 or len(live) < 10:
            k = int(rng.integers(1, 20))
            uris = [f"/s{seed}/{n + j}" for j in range(k)]
            if live and rng.random() < 0.3:  # upsert an existing uri too
                uris[0] = coll.get_item(int(rng.choice(live))).uri
            n += k
            x = rng.standard_normal((k, DIM)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            ids = coll.add_items(
                [NewItem(u, "vision", vectors=[NewVector("vision", v)]) for u, v in zip(uris, x)]
            )
            live.extend(i for i in ids if i not in live)
            os.write(log, "".join(f"add {i}\n" for i in ids).encode())
        elif op < 0.9:
            gone = [int(i) for i in rng.choice(live, int(rng.integers(1, 6)), replace=False)]
            os.write(
                log, f"rm {' '.join(map(str, gone))}\n".encode()
            )  # intent: may commit unlogged
            coll.remove(ids=gone)
            live = [i for i in live if i not in gone]
            os.write(log, "".join(f"del {i}\n" for i in gone).encode())
        else:
            coll.flush()


def main() -> None:
    """Fork a writer for every line read on stdin."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    for line in sys.stdin:
        url, index_dir, log_path, seed = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                write_forever(url, index_dir, log_path, int(seed))
            finally:
                os._exit(1)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
