"""Helper processes that serve on loopback (the dispatch benchmark's sink, the OTLP span
counter): each runs in a process of its own, so that it shares no GIL with the
client or the service measured, and tells the benchmark its port through a file.

A helper module defines ``main = helper_command(make_app, "what it serves")`` and runs it under
``if __name__ == "__main__"``; the benchmark starts it with ``helper(...)``. Any other program
that takes ``--port-file`` (the compiled sink) is started with ``serving(...)``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx
from aiohttp import web

from benchmarks.exceptions import BenchError
from benchmarks.measure import wait_for
from benchmarks.processes import Child, started

__all__ = ["HelperClient", "helper", "helper_command", "run_loop", "serving"]

LIFETIME = 1800.0
"""A helper exits by itself after this long, should the benchmark die without stopping it."""
START_TIMEOUT = 30.0
C = TypeVar("C", bound="HelperClient")


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on uvloop when installed, as the services do."""
    try:
        import uvloop  # noqa: PLC0415 - optional, as in the services
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def serve(app: web.Application, port_file: Path, lifetime: float) -> None:
    """Serve ``app`` on a free loopback port for ``lifetime`` seconds; the port goes to
    ``port_file``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=4096).start()
    bound = runner.addresses[0][1]
    port_file.with_suffix(".tmp").write_text(str(bound))
    port_file.with_suffix(".tmp").rename(port_file)  # the reader never sees half a number
    try:
        await asyncio.sleep(lifetime)
    finally:
        await runner.cleanup()


def helper_command(make_app: Callable[[], web.Application], help_text: str) -> click.Command:
    """The command line of a helper process serving ``make_app()``."""

    @click.command(help=help_text)
    @click.option("--port-file", type=click.Path(path_type=Path, dir_okay=False), required=True)
    @click.option("--lifetime", default=LIFETIME, show_default=True)
    def main(port_file: Path, lifetime: float) -> None:
        run_loop(serve(make_app(), port_file, lifetime))

    return main


class HelperClient:
    """The benchmark's view of a helper process: the process, and HTTP to it."""

    def __init__(self, process: Child, port: int) -> None:
        self.process = process
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.base_url, timeout=10.0)

    def close(self) -> None:
        self.http.close()


@contextmanager
def helper(name: str, module: str, workdir: Path, client: type[C]) -> Iterator[C]:
    """Start ``python -m <module>`` (a ``helper_command``); yields a ``client`` of it, closed
    and the process stopped on leaving the block."""
    with serving(name, [sys.executable, "-m", module], workdir, client) as view:
        yield view


@contextmanager
def serving(name: str, argv: list[str], workdir: Path, client: type[C]) -> Iterator[C]:
    """Start ``argv --port-file <file>``, any program that serves on loopback and writes its
    port to that file (a ``helper_command``, the compiled sink); yields a ``client`` of it."""
    port_file = workdir / f"{name}.port"
    port_file.unlink(missing_ok=True)
    with started(name, [*argv, "--port-file", str(port_file)], workdir) as process:

        def up_or_gone() -> bool:
            return port_file.exists() or not process.running()

        wait_for(up_or_gone, START_TIMEOUT, f"{name} up")
        if not port_file.exists():
            raise BenchError(f"{name} exited:\n{process.log_tail()}")
        view = client(process, int(port_file.read_text()))
        try:
            yield view
        finally:
            view.close()
