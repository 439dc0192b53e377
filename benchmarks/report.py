"""What every results file has: the facts of the machine and code measured, markdown tables,
and the writing of the file itself."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import confluent_kafka
import psutil

from benchmarks.processes import REPO

__all__ = ["RESULTS_DIR", "machine_facts", "markdown_table", "write_results"]

RESULTS_DIR = REPO / "benchmarks" / "results"


def machine_facts(*code: str) -> str:
    """One line of what the numbers depend on; ``code`` names the packages under test, whose
    uncommitted changes are noted."""
    try:
        loop = f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        loop = "asyncio"
    facts = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "nproc": f"{os.cpu_count()} ({platform.machine()})",
        "memory": f"{psutil.virtual_memory().total / (1 << 30):.0f} GiB",
        "python": platform.python_version(),
        "confluent-kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "aiohttp": aiohttp.__version__,
        "event loop": loop,
        "code": _code_version(code),
        "load average at start": ", ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    return "; ".join(f"{key} {value}" for key, value in facts.items())


def _code_version(paths: Sequence[str]) -> str:
    """The commit measured, noting uncommitted changes to the code under test."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", *paths) if paths else ""
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, left: Sequence[int] = (0,)
) -> str:
    """A markdown table; columns ``left`` (indices, negative from the end) are left-aligned,
    the others (numbers) right-aligned."""
    lefts = {index % len(header) for index in left}
    align = ["---" if column in lefts else "---:" for column in range(len(header))]
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def write_results(path: Path, text: str) -> None:
    """Write a results file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
