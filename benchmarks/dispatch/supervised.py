"""``dispatcher --processes N`` for dispatchers whose command line lacks the flag: the same
supervisor (``dispatcher.supervisor``) over ``N`` plain dispatcher processes, so that the
benchmark measures several processes either way. Run as ``python -m
benchmarks.dispatch.supervised N BASE_METRICS_PORT -- <dispatcher options>``."""

from __future__ import annotations

import logging
import subprocess
import sys
from functools import cache

import click

from benchmarks.processes import BIN
from dispatcher.supervisor import run_supervised

__all__ = ["cli_has_processes", "supervised_argv"]


@cache
def cli_has_processes() -> bool:
    """Whether ``dispatcher`` takes ``--processes`` itself."""
    result = subprocess.run(
        [str(BIN / "dispatcher"), "--help"], capture_output=True, text=True, check=False
    )
    return "--processes" in result.stdout


def supervised_argv(options: list[str], processes: int, metrics_port: int) -> list[str]:
    """The command of ``processes`` dispatchers with ``options``, child ``i`` serving metrics
    on ``metrics_port + i``: the dispatcher's own ``--processes`` if it has one."""
    if cli_has_processes():
        return [
            *(str(BIN / "dispatcher"), *options),
            *("--processes", str(processes), "--metrics-port", str(metrics_port)),
        ]
    return [sys.executable, "-m", __name__, str(processes), str(metrics_port), "--", *options]


@click.command()
@click.argument("processes", type=click.IntRange(min=1))
@click.argument("metrics_port", type=int)
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
def main(processes: int, metrics_port: int, options: tuple[str, ...]) -> None:
    """Supervise PROCESSES dispatchers run with OPTIONS."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    child = [str(BIN / "dispatcher"), *options]
    sys.exit(run_supervised(child, processes, metrics_port=metrics_port))


if __name__ == "__main__":
    main()
