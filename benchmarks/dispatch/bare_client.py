"""The ceiling the dispatcher is compared with: a bare aiohttp client POSTing to the same sink
at the same concurrency, with none of the dispatcher's work around each request. It runs in a
process of its own: ``python -m benchmarks.dispatch.bare_client``."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import click

from benchmarks.dispatch.events import sample_body
from benchmarks.loopback import run_loop

__all__ = ["argv", "blast"]

JSON_HEADERS = {"Content-Type": "application/json"}


async def blast(url: str, *, concurrency: int, requests: int, seconds: float) -> int:
    """POST to ``url`` from ``concurrency`` loops until ``requests`` were sent or ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    body = sample_body()
    left = requests
    answered = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:

        async def post_in_turn() -> None:
            nonlocal left, answered
            while left > 0 and loop.time() < deadline:
                left -= 1
                async with session.post(url, data=body, headers=JSON_HEADERS) as response:
                    await response.read()
                answered += 1

        await asyncio.gather(*(post_in_turn() for _ in range(concurrency)))
    return answered


def argv(url: str, *, concurrency: int, requests: int, seconds: float) -> list[str]:
    """The command line of a bare client process."""
    return [
        *(sys.executable, "-m", __name__, "--url", url, "--concurrency", str(concurrency)),
        *("--requests", str(requests), "--seconds", str(seconds)),
    ]


@click.command()
@click.option("--url", required=True)
@click.option("--concurrency", type=click.IntRange(min=1), required=True)
@click.option("--requests", type=click.IntRange(min=1), required=True)
@click.option("--seconds", type=click.FloatRange(min=0.1), required=True)
def main(url: str, concurrency: int, requests: int, seconds: float) -> None:
    """POST to the sink like a bare aiohttp client (the benchmark starts it)."""
    answered = run_loop(blast(url, concurrency=concurrency, requests=requests, seconds=seconds))
    click.echo(f"answered={answered}", err=True)


if __name__ == "__main__":
    main()
