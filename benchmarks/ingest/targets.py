"""The servers the ingest benchmark loads, each a uvicorn process of its own (uvloop,
httptools): the HTTP ceiling, ingest, ingest with two worker processes (``--workers 2``, issue
14), and ingest again with every trace sampled and exported (issue 7). All but the two-worker
one run one worker."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchmarks.ingest.ceilings import CEILING_SETTINGS_ENV
from benchmarks.measure import free_port
from benchmarks.processes import Child, started
from benchmarks.tracing import tracing_env
from ingest import IngestSettings

__all__ = ["HTTP_CEILING", "INGEST", "INGEST_TRACED", "INGEST_WORKERS", "Target", "start_targets"]

HTTP_CEILING = "http ceiling"
INGEST = "ingest"
INGEST_WORKERS = "ingest, 2 workers"
INGEST_TRACED = "ingest, tracing on"
WORKERS = 2


@dataclass(frozen=True, slots=True)
class Target:
    """A running server under test."""

    name: str
    port: int
    process: Child

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"


def start_targets(
    stack: ExitStack,
    settings: IngestSettings,
    workdir: Path,
    *,
    span_endpoint: str | None,
    workers: bool = True,
) -> list[Target]:
    """Start each server in turn, ready when it answers; ``stack`` stops them. Without a
    ``span_endpoint``, ingest is not started a second time with tracing on; without
    ``workers``, not with two workers."""
    port = free_port()
    argv = [
        *(sys.executable, "-m", "uvicorn", "benchmarks.ingest.ceilings:ceiling_app", "--factory"),
        *("--port", str(port), "--no-access-log", "--log-level", "warning"),
    ]
    env = {CEILING_SETTINGS_ENV: json.dumps(settings.to_dict())}
    targets = [
        _ready(stack, HTTP_CEILING, argv, port=port, ready="/healthz", workdir=workdir, env=env)
    ]
    services: list[tuple[str, dict[str, str], int]] = [(INGEST, {}, 1)]
    if workers:
        services.append((INGEST_WORKERS, {}, WORKERS))
    if span_endpoint is not None:
        services.append((INGEST_TRACED, tracing_env(span_endpoint), 1))
    for name, env, count in services:
        port = free_port()
        argv = _ingest_argv(settings, port, count)
        targets.append(
            _ready(stack, name, argv, port=port, ready="/readyz", workdir=workdir, env=env)
        )
    return targets


def _ingest_argv(settings: IngestSettings, port: int, workers: int) -> list[str]:
    return [
        *(sys.executable, "-m", "ingest", "--port", str(port), "--log-level", "WARNING"),
        *("--bootstrap-servers", settings.bootstrap_servers, "--topic", settings.topic),
        *("--workers", str(workers)),
    ]


def _ready(
    stack: ExitStack,
    name: str,
    argv: list[str],
    *,
    port: int,
    ready: str,
    workdir: Path,
    env: dict[str, str],
) -> Target:
    slug = name.replace(" ", "-").replace(",", "")
    # Watched with its children: with --workers, uvicorn's workers are processes of their own.
    process = stack.enter_context(started(slug, argv, workdir, env, tree=True))
    process.wait_until_answers(f"http://127.0.0.1:{port}{ready}")
    return Target(name, port, process)
