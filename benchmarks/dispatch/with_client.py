"""The dispatcher with its http destinations on a chosen HTTP client, for the transport
comparison (issue 14): ``python -m benchmarks.dispatch.with_client --client pyreqwest
--attempt-timeout 5 -- <dispatcher options>``. With ``aiohttp`` it is the dispatcher as
shipped, started the same way, so that both clients' runs differ in the client alone.

No manifest key or environment variable of the dispatcher chooses the client: pyreqwest is a
benchmark dependency, and this process puts it in place of the ``http`` type before the
dispatcher's command line runs. ``--attempt-timeout`` must be the manifests' ``timeout``:
pyreqwest's requests need it to end themselves (see ``dispatcher.destinations.http_reqwest``).
"""

from __future__ import annotations

import sys

import click

from benchmarks.dispatch.bare_client import AIOHTTP, CLIENTS, PYREQWEST
from dispatcher.cli import cli as dispatcher_cli
from dispatcher.destinations import TYPES

__all__ = ["argv"]


def argv(options: list[str], *, client: str, http2: bool, attempt_timeout: float) -> list[str]:
    """The command line of a dispatcher run with ``options`` on ``client``."""
    return [
        *(sys.executable, "-m", __name__, "--client", client),
        *(["--http2"] if http2 else []),
        *("--attempt-timeout", f"{attempt_timeout:g}", "--", *options),
    ]


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--client", type=click.Choice(CLIENTS), required=True)
@click.option("--http2", is_flag=True, help="HTTP/2 (pyreqwest only; h2c on http urls).")
@click.option("--attempt-timeout", type=click.FloatRange(min=0, min_open=True), required=True)
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
def main(client: str, http2: bool, attempt_timeout: float, options: tuple[str, ...]) -> None:
    """Run the dispatcher with OPTIONS, its http destinations on CLIENT."""
    if client == AIOHTTP and http2:
        raise click.UsageError("aiohttp has no HTTP/2 client; use --client pyreqwest")
    if client == PYREQWEST:
        # A benchmark dependency: imported only when asked for.
        from dispatcher.destinations.http_reqwest import reqwest_type  # noqa: PLC0415

        TYPES["http"] = reqwest_type(http2=http2, attempt_timeout=attempt_timeout)
    dispatcher_cli(args=list(options), prog_name="dispatcher")


if __name__ == "__main__":
    main()
