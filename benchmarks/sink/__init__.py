"""The compiled sink (``main.go`` and ``h2c.go`` here, Go's standard library only): building
it, once per version of its source, into a cache directory, so that no binary is committed and
a run after the first starts at once.

The dispatch benchmark needs a destination whose CPU per request is far below the
dispatcher's, or the sink and not the dispatcher would bound what is measured; an aiohttp sink
costs about what an aiohttp client does. Without ``go`` on the PATH, ``compiled_sink`` says
why and returns ``None``, and the benchmark falls back to the aiohttp sink.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import click

__all__ = ["SOURCE", "cache_dir", "compiled_sink"]

SOURCE = Path(__file__).resolve().parent
BUILD_TIMEOUT = 300.0
"""Seconds a first build may take (it compiles net/http on a cold Go build cache)."""


def cache_dir() -> Path:
    """Where built sinks are kept: ``$XDG_CACHE_HOME/event-delivery/bench-sink`` (default
    ``~/.cache``), beside the broker's cached jars."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "event-delivery" / "bench-sink"


def compiled_sink() -> Path | None:
    """The sink's executable, built now unless this version of its source was built before;
    ``None`` (with a message on stderr) if there is no ``go`` or the build failed."""
    go = shutil.which("go")
    if go is None:
        click.echo(
            "go is not on the PATH: using the aiohttp sink instead of the compiled one; its CPU"
            " per request is near the dispatcher's, so on a small machine it may bound the"
            " rates measured (install Go 1.22+ for the compiled sink)",
            err=True,
        )
        return None
    digest = hashlib.sha256()
    for path in sorted([SOURCE / "go.mod", *SOURCE.glob("*.go")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(_go_version(go).encode())
    binary = cache_dir() / digest.hexdigest()[:16] / "bench-sink"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f"bench-sink.{os.getpid()}.partial")
    click.echo(f"building the Go sink into {binary.parent} ...", err=True)
    # GOTOOLCHAIN=local: never download another toolchain; go.mod needs no modules.
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    result = subprocess.run(
        [go, "build", "-o", str(partial), "."],
        cwd=SOURCE,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        click.echo(
            f"building the Go sink failed, using the aiohttp sink instead:\n{result.stderr}",
            err=True,
        )
        partial.unlink(missing_ok=True)
        return None
    partial.rename(binary)  # another benchmark building at once finds it whole or not at all
    return binary


def _go_version(go: str) -> str:
    result = subprocess.run([go, "version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()
