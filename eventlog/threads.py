"""Blocking librdkafka calls off the event loop, in threads that never hold up process exit."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import traceback
from collections.abc import Callable
from typing import TypeVar

__all__ = ["run_in_daemon_thread"]

T = TypeVar("T")


async def run_in_daemon_thread(call: Callable[[], T], *, name: str = "kafka-call") -> T:
    """``call()`` in a daemon thread. Unlike ``asyncio.to_thread``, a call still waiting on an
    unreachable cluster when the caller gives up (``asyncio.timeout``) does not keep the
    process alive: the interpreter does not wait for daemon threads at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    # Nothing here may keep what ``call`` holds (a Kafka client, whose thread-local key is
    # freed only with the object) past the call: the callable is taken out of the closure as
    # it runs, and an error's finished frames drop their locals. An error's traceback is a
    # reference cycle, and the processes collect cycles rarely (``gc.freeze``, fewer young
    # collections): a client reachable from one stayed alive for minutes.
    pending = [call]

    def run() -> None:
        try:
            result = pending.pop()()
        except Exception as exc:  # handed to the awaiting coroutine
            _drop_locals(exc)
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future


def _drop_locals(error: BaseException) -> None:
    """Clear the finished frames of ``error``'s traceback and of the errors it chains."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        pending += [current.__cause__, current.__context__]
