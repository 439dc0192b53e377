"""The ceiling the dispatcher is compared with: a bare HTTP client POSTing to the same sink at
the same concurrency, with none of the dispatcher's work around each request. It runs in a
process of its own: ``python -m benchmarks.dispatch.bare_client``.

The client is aiohttp (what the dispatcher uses) unless ``--client`` says ``pyreqwest`` (the
Rust-backed client the transport comparison measures, issue 14), over HTTP/1.1 unless
``--http2`` (HTTP/2 with prior knowledge, pyreqwest only: aiohttp has no HTTP/2 client).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp
import click

from benchmarks.dispatch.events import sample_body
from benchmarks.loopback import run_loop

__all__ = ["AIOHTTP", "CLIENTS", "PYREQWEST", "argv", "blast"]

JSON_HEADERS = {"Content-Type": "application/json"}
TIMEOUT = 10.0
"""Seconds one request may take before the run fails (never, against the loopback sink)."""
AIOHTTP = "aiohttp"
PYREQWEST = "pyreqwest"
CLIENTS = (AIOHTTP, PYREQWEST)

Post = Callable[[], Awaitable[None]]


async def blast(
    url: str,
    *,
    concurrency: int,
    requests: int,
    seconds: float,
    client: str = AIOHTTP,
    http2: bool = False,
) -> int:
    """POST to ``url`` from ``concurrency`` loops until ``requests`` were sent or ``seconds``."""
    body = sample_body()
    if client == AIOHTTP:
        if http2:
            raise click.UsageError("aiohttp has no HTTP/2 client; use --client pyreqwest")
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT)
        ) as session:

            async def post() -> None:
                async with session.post(url, data=body, headers=JSON_HEADERS) as response:
                    await response.read()

            return await _in_turn(post, concurrency=concurrency, requests=requests, seconds=seconds)
    # Only the transport comparison needs it (a dev/bench dependency).
    from pyreqwest.client import ClientBuilder  # noqa: PLC0415

    builder = ClientBuilder().max_connections(concurrency).timeout(timedelta(seconds=TIMEOUT))
    if http2:
        builder = builder.http2_prior_knowledge()
    async with builder.build() as reqwest:

        async def post() -> None:
            await reqwest.post(url).headers(JSON_HEADERS).body_bytes(body).build().send()

        return await _in_turn(post, concurrency=concurrency, requests=requests, seconds=seconds)


async def _in_turn(post: Post, *, concurrency: int, requests: int, seconds: float) -> int:
    """Run ``post`` from ``concurrency`` loops, ``requests`` times in all or for ``seconds``;
    return how many were answered."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    left = requests
    answered = 0

    async def post_in_turn() -> None:
        nonlocal left, answered
        while left > 0 and loop.time() < deadline:
            left -= 1
            await post()
            answered += 1

    await asyncio.gather(*(post_in_turn() for _ in range(concurrency)))
    return answered


def argv(
    url: str,
    *,
    concurrency: int,
    requests: int,
    seconds: float,
    client: str = AIOHTTP,
    http2: bool = False,
) -> list[str]:
    """The command line of a bare client process."""
    return [
        *(sys.executable, "-m", __name__, "--url", url, "--concurrency", str(concurrency)),
        *("--requests", str(requests), "--seconds", str(seconds), "--client", client),
        *(["--http2"] if http2 else []),
    ]


@click.command()
@click.option("--url", required=True)
@click.option("--concurrency", type=click.IntRange(min=1), required=True)
@click.option("--requests", type=click.IntRange(min=1), required=True)
@click.option("--seconds", type=click.FloatRange(min=0.1), required=True)
@click.option("--client", type=click.Choice(CLIENTS), default=AIOHTTP, show_default=True)
@click.option("--http2", is_flag=True, help="HTTP/2 with prior knowledge (pyreqwest only).")
def main(  # noqa: PLR0917 - click passes every option by position
    url: str, concurrency: int, requests: int, seconds: float, client: str, http2: bool
) -> None:
    """POST to the sink like a bare HTTP client (the benchmark starts it)."""
    answered = run_loop(
        blast(
            url,
            concurrency=concurrency,
            requests=requests,
            seconds=seconds,
            client=client,
            http2=http2,
        )
    )
    click.echo(f"answered={answered}", err=True)


if __name__ == "__main__":
    main()
