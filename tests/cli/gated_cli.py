"""``python -m cli`` with a pause point, for the tests that interrupt ``embedstore index``.

Run as ``python tests/cli/gated_cli.py ARGS...`` with ``TEST_INDEX_GATE_AT=N`` and
``TEST_INDEX_GATE_FILE=PATH``: once N items have been handed to the writer, the indexing thread
writes that count to PATH and waits there until the test signals the process. The run can then
never finish before the test interrupts it, whatever the speed of the machine.
"""

from __future__ import annotations

import os
import runpy
import signal
import time
from pathlib import Path
from typing import Any

GATE_TIMEOUT_S = 600.0  # never leave a process behind if the test died


def install(at: int, flag: Path) -> None:
    """Pause ``Writer.put`` (the indexing thread) once, after ``at`` items are queued, until a
    signal ends the pause; later calls (the run winding down) pass straight through."""
    from embedstore.ingest.pipeline import Writer

    put = Writer.put
    fed = 0

    def gated_put(self: Writer, items: list[Any], failures: list[Any] | None = None) -> None:
        nonlocal fed
        put(self, items, failures)
        if fed >= at:  # paused once already: the way out (e.g. batches filed on Ctrl-C) is free
            return
        fed += len(items)
        if fed >= at:
            flag.write_text(str(fed))
            deadline = time.monotonic() + GATE_TIMEOUT_S
            while time.monotonic() < deadline:
                time.sleep(0.05)  # a signal (Ctrl-C: KeyboardInterrupt) lands here
            raise RuntimeError("gated_cli: nobody interrupted the paused index run")

    Writer.put = gated_put  # type: ignore[method-assign]


if __name__ == "__main__":
    # Ctrl-C as at a terminal, even when this runs under a shell that started it in the
    # background (such shells hand their children SIGINT ignored, and Python then keeps it so)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    install(int(os.environ["TEST_INDEX_GATE_AT"]), Path(os.environ["TEST_INDEX_GATE_FILE"]))
    runpy.run_module("cli", run_name="__main__", alter_sys=True)
