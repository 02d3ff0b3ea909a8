"""Process-wide runtime settings, applied once at start (never per request)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedstore.config import Settings

_lock = threading.Lock()
_threads: int | None = None


def torch_threads_for(settings: Settings, cores: int | None = None, current: int = 1) -> int:
    """The intra-op thread count ``settings`` ask for: ``torch_threads``, or on CPU with decode
    workers one core left to each worker (oversubscribed intra-op threads crawl), else ``current``."""
    if settings.torch_threads > 0:
        return settings.torch_threads
    cores = cores or os.cpu_count() or 1
    if settings.workers > 0 and settings.resolved_device() == "cpu":
        return max(1, min(current, cores - settings.workers))
    return current


def configure_threads(settings: Settings) -> int:
    """Set torch's intra-op thread count once per process (later calls return the first choice).

    Called when the first model of the process loads and at API startup: the count is a
    process-wide setting, so changing it from request threads would race between requests.
    """
    global _threads
    with _lock:
        if _threads is None:
            import torch

            _threads = torch_threads_for(settings, current=torch.get_num_threads())
            if _threads != torch.get_num_threads():
                torch.set_num_threads(_threads)
        return _threads
