"""Where the dispatcher's CPU goes: one more top-concurrency run with the 0 ms sink, under
pyinstrument, summarised as self time by function and by area (package or module); the
profile's top is saved as ``dispatch-profile.txt``."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.dispatch.harness import Bench, http_destination
from benchmarks.dispatch.plan import DISPATCHER
from benchmarks.dispatch.runs import Run
from benchmarks.exceptions import BenchError
from benchmarks.processes import REPO
from benchmarks.report import markdown_table

__all__ = ["ProfileSummary", "profiled", "section"]

PROFILE_TOP_LINES = 150


@dataclass(frozen=True, slots=True)
class Hotspot:
    """Where profiled time was spent, as a share of all samples."""

    name: str
    share: float


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    """The dispatcher's profile at the top concurrency with the 0 ms sink."""

    run: Run
    """The profiled run (slower than the unprofiled one: sampling costs time)."""
    functions: list[Hotspot]
    """Functions by self time."""
    areas: list[Hotspot]
    """Self time by package or module."""


def profiled(bench: Bench, topic: str) -> ProfileSummary:
    """The top-concurrency 0 ms run again, under pyinstrument; saves the profile's top."""
    concurrency = bench.plan.top_concurrency
    name = f"profile-c{concurrency}-l0"
    manifest = bench.manifest(
        name, topic, [http_destination("sink", bench.sink.url(0), concurrency)]
    )
    session_path = bench.workdir / "dispatch.pyisession"
    argv = [sys.executable, "-m", "pyinstrument", "-r", "pyisession", "-o", str(session_path)]
    argv += bench.dispatcher_argv(manifest)
    bench.sink.reset()
    with bench.started(name, argv) as client:
        run = bench.measure(client, DISPATCHER, 0, concurrency)
    if not session_path.exists():
        raise BenchError(f"pyinstrument wrote no profile:\n{client.log_tail()}")
    return summarise(session_path, run, bench.plan.results_dir)


def summarise(session_path: Path, run: Run, results_dir: Path) -> ProfileSummary:
    """Self time by function and by area within the event loop (start-up and imports left
    out); the profile's top goes to ``dispatch-profile.txt``."""
    from pyinstrument.renderers import ConsoleRenderer  # noqa: PLC0415 - dev-only
    from pyinstrument.session import Session  # noqa: PLC0415

    session = Session.load(str(session_path))
    root = session.root_frame()
    loop = _event_loop_frame(root) if root is not None else None
    functions: defaultdict[str, float] = defaultdict(float)
    areas: defaultdict[str, float] = defaultdict(float)
    if loop is not None:
        for frame, area, seconds in _self_times(loop):
            functions[f"{_name(frame)} ({_short_location(frame)})"] += seconds
            areas[area] += seconds
    total = (loop.time if loop is not None else 0.0) or 1.0
    header = [
        f"pyinstrument: the dispatcher at concurrency {run.concurrency} delivering to the 0 ms"
        f" sink ({run.deliveries:,} deliveries, {run.rate:,.0f}/s under the profiler).",
        "Main thread only (the event loop); librdkafka's threads are native and not sampled.",
        "Shares are of the time inside the event loop (Runner.run); start-up and imports are"
        " left out. 'Runner.run' self time is uvloop's own native work (I/O, scheduling) and idle.",
    ]
    tree = ConsoleRenderer(show_all=False, time="percent_of_total").render(session)
    text = [
        *header,
        "",
        "== Functions by self time ==",
        *(f"{100 * h.share:6.1f}%  {h.name}" for h in _shares(functions, total, top=50)),
        "",
        "== Self time by area (built-ins count for their caller) ==",
        *(f"{100 * h.share:6.1f}%  {h.name}" for h in _shares(areas, total, top=20)),
        "",
        "== Call tree of the whole process (library frames folded) ==",
        *tree.splitlines()[:PROFILE_TOP_LINES],
    ]
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "dispatch-profile.txt").write_text("\n".join(text) + "\n")
    return ProfileSummary(
        run=run,
        functions=_shares(functions, total, top=15),
        areas=_shares(areas, total, top=12),
    )


def section(profile: ProfileSummary) -> str:
    """The report's section on the profile."""
    run = profile.run
    return "\n".join(
        [
            "## Where the dispatcher's CPU goes",
            "",
            f"pyinstrument on the main thread at concurrency {run.concurrency}, 0 ms sink"
            f" ({run.deliveries:,} deliveries at {run.rate:,.0f}/s under the profiler); the top of"
            " the profile is in `dispatch-profile.txt`. Shares are of the time inside the event"
            " loop, by self time (built-ins count for their caller's area).",
            "",
            markdown_table(
                ["area", "share"], [[h.name, f"{100 * h.share:.1f}%"] for h in profile.areas]
            ),
            "",
            markdown_table(
                ["function (self time)", "share"],
                [[f"`{h.name}`", f"{100 * h.share:.1f}%"] for h in profile.functions],
            ),
        ]
    )


def _shares(seconds: dict[str, float], total: float, *, top: int) -> list[Hotspot]:
    ranked = sorted(seconds.items(), key=lambda item: -item[1])[:top]
    return [Hotspot(name, spent / total) for name, spent in ranked]


def _event_loop_frame(root: Any) -> Any:
    """The frame of ``asyncio.Runner.run`` (the loop's whole life), else ``root``."""
    stack = [root]
    while stack:
        frame = stack.pop()
        if _name(frame) == "Runner.run" and str(frame.file_path).endswith("asyncio/runners.py"):
            return frame
        stack.extend(frame.children)
    return root


def _self_times(top: Any) -> Iterator[tuple[Any, str, float]]:
    """(frame, area, self seconds) for every real frame under ``top``. pyinstrument keeps a
    frame's own time in synthetic children (``[self]``, ``[await]``), counted for it here;
    built-in functions count for their caller's area."""
    stack: list[tuple[Any, str]] = [(top, _area(top.file_path) or "?")]
    while stack:
        frame, caller_area = stack.pop()
        area = _area(frame.file_path) or caller_area
        if frame is top and _name(frame) == "Runner.run":
            area = "event loop (uvloop native, and idle)"
        own = sum(child.time for child in frame.children if child.is_synthetic_leaf)
        if not frame.is_synthetic and own > 0:
            yield frame, area, own
        stack.extend((c, area) for c in frame.children if not c.is_synthetic_leaf)


def _name(frame: Any) -> str:
    function = str(frame.function)
    return function if "." in function or not frame.class_name else f"{frame.class_name}.{function}"


def _short_location(frame: Any) -> str:
    path = str(frame.file_path or "?")
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in path:
            return f"{path.split(marker, 1)[1]}:{frame.line_no}"
    if "/lib/python3" in path:  # the standard library: lib/python3.X/<module path>
        return f"{path.split('/lib/python3', 1)[1].split('/', 1)[-1]}:{frame.line_no}"
    return f"{path}:{frame.line_no}"


def _area(file_path: str | None) -> str | None:
    """The package (or stdlib module) a frame's file belongs to; ``None`` for built-ins."""
    if not file_path or file_path.startswith("<"):
        return None
    path = str(file_path)
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith(str(REPO) + "/"):
        parts = Path(path).relative_to(REPO).with_suffix("").parts
        return ".".join(parts[:3] if parts[0] == "dispatcher" else parts[:1])
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/")[1]
        return "stdlib " + module.removesuffix(".py")
    return path
