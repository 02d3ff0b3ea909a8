"""CUDA graphs of an encoder's forward, one per (tower, item shape, dtype, batch size).

Narrow towers (depth, thermal, IMU) spend their time launching kernels, not in them; a CUDA graph
replays the whole forward with one launch. A graph is captured at fixed shapes, so `GraphRunner`
captures a few batch sizes (lazily, on first use), pads a batch up to the next captured size
(`pad_rows`: the rows after the batch are zeros) and returns only the batch's own rows
(`unpad_rows`). Items never interact in these towers (attention and normalisation are per item),
so the padding rows change nothing in the others. A batch larger than the largest size runs in
chunks of that size. Graphs share one memory pool and replay under a lock, one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

log = logging.getLogger(__name__)

Forward = Callable[[str, torch.Tensor], torch.Tensor]
WARMUP_CALLS = 2  # on a side stream before capture: cuBLAS/cuDNN workspaces, lazy init


def bucket_for(n: int, sizes: Sequence[int]) -> int:
    """The smallest of ``sizes`` (ascending) that holds ``n`` rows; the largest when none does."""
    if n < 1:
        raise ValueError(f"a batch needs at least one row, got {n}")
    for size in sizes:
        if size >= n:
            return size
    return sizes[-1]


def pad_rows(x: torch.Tensor, size: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` (n, ...) in the first n rows of a (size, ...) tensor whose other rows are zeros.

    ``out`` (the captured input buffer) is filled in place and returned.
    """
    n = x.shape[0]
    if n > size:
        raise ValueError(f"cannot pad {n} rows down to {size}")
    if out is None:
        out = x.new_empty((size, *x.shape[1:]))
    elif out.shape != (size, *x.shape[1:]) or out.dtype != x.dtype:
        raise ValueError(
            f"buffer {tuple(out.shape)} {out.dtype} does not hold {size} rows of "
            f"{tuple(x.shape[1:])} {x.dtype}"
        )
    out[:n].copy_(x)
    out[n:].zero_()
    return out


def unpad_rows(y: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows of a padded result, as a tensor of their own (not a view)."""
    return y[:n].clone()


class CapturedForward:
    """One captured graph: static input and output buffers, replayed for each batch."""

    def __init__(self, fn: Forward, modality: str, static_in: torch.Tensor, pool: Any) -> None:
        self.size = static_in.shape[0]
        self.static_in = static_in
        device = static_in.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                fn(modality, static_in)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.static_out = fn(modality, static_in)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Embed ``x`` (at most ``size`` rows) by one replay."""
        pad_rows(x, self.size, out=self.static_in)
        self.graph.replay()
        return unpad_rows(self.static_out, x.shape[0])


class GraphRunner:
    """``fn(modality, x)`` through CUDA graphs for ``towers``; other towers call ``fn`` directly."""

    def __init__(self, fn: Forward, *, sizes: Iterable[int], towers: Iterable[str]) -> None:
        self.fn = fn
        self.sizes = tuple(sorted(set(sizes)))
        if not self.sizes:
            raise ValueError("CUDA graphs need at least one batch size to capture")
        self.towers = frozenset(towers)
        self._graphs: dict[tuple[str, tuple[int, ...], torch.dtype, int], CapturedForward] = {}
        self._lock = threading.Lock()
        self._pool: Any = None  # torch.cuda.graph_pool_handle(), shared by every graph

    def __call__(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """The rows of ``fn(modality, x)``, from graph replays when ``modality`` is captured."""
        if modality not in self.towers or x.device.type != "cuda" or x.shape[0] == 0:
            return self.fn(modality, x)
        with self._lock:
            parts = [self._replay(modality, chunk) for chunk in x.split(self.sizes[-1])]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def captured(self) -> list[tuple[str, tuple[int, ...], str, int]]:
        """(tower, item shape, dtype, batch size) of every graph captured so far."""
        return [(m, shape, str(dtype), size) for m, shape, dtype, size in self._graphs]

    def _replay(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        size = bucket_for(x.shape[0], self.sizes)
        key = (modality, tuple(x.shape[1:]), x.dtype, size)
        graph = self._graphs.get(key)
        if graph is None:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            static_in = pad_rows(x, size)
            log.info("capturing a CUDA graph: %s %s %s batch %d", modality, key[1], x.dtype, size)
            graph = CapturedForward(self.fn, modality, static_in, self._pool)
            self._graphs[key] = graph
        return graph(x)
