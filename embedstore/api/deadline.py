"""``within(seconds, awaitable)``: stop waiting for an answer after a deadline (504)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from embedstore.errors import RequestTimeout

T = TypeVar("T")


def _forget(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a task nobody awaits any more (no 'never retrieved' warning)."""
    with contextlib.suppress(BaseException):
        task.result()


async def within(timeout_s: float, awaitable: Awaitable[T], what: str = "The request") -> T:
    """The result of ``awaitable``, or ``RequestTimeout`` once ``timeout_s`` seconds have passed.

    On the deadline the work is cancelled without waiting for it: a call already running in a
    worker thread finishes there, but the request answers at once.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:  # the request itself was cancelled (client gone)
        task.cancel()
        task.add_done_callback(_forget)
        raise
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(_forget)
    raise RequestTimeout(
        f"{what} got no answer within {timeout_s:g} s (request_timeout_s); the server is "
        "overloaded or a model is still loading: try again later"
    )
