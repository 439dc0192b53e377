"""Which processes a process started, read from ``/proc``, so a test can check none outlive it.

A process is named by its pid *and* its start time, so a pid the kernel reuses for someone else
after the original exited is not mistaken for a survivor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessId", "descendants", "matching", "survivors", "wait_until_gone"]


@dataclass(frozen=True, slots=True)
class ProcessId:
    pid: int
    start_ticks: int
    """Start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    cmdline: str


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start ticks) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 is "(comm)" and comm may hold spaces and parentheses: split after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _identify(pid: int) -> ProcessId | None:
    stat = _stat(pid)
    if stat is None or stat[0] == "Z":
        return None
    return ProcessId(pid, stat[2], _cmdline(pid))


def descendants(root: int, *, include_root: bool = True) -> list[ProcessId]:
    """``root`` and every live process below it, however deep (zombies left out)."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        stat = _stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    found: list[ProcessId] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        if pid != root or include_root:
            process = _identify(pid)
            if process is not None:
                found.append(process)
        pending.extend(children.get(pid, []))
    return found


def matching(*needles: str) -> list[ProcessId]:
    """Live processes whose command line holds every one of ``needles`` (a scoped pgrep -f)."""
    found = []
    for pid in _all_pids():
        cmdline = _cmdline(pid)
        if cmdline and all(needle in cmdline for needle in needles):
            process = _identify(pid)
            if process is not None:
                found.append(process)
    return found


def survivors(processes: list[ProcessId]) -> list[ProcessId]:
    """Those of ``processes`` still alive (same pid, same start time, not a zombie)."""
    alive = []
    for process in processes:
        stat = _stat(process.pid)
        if stat is not None and stat[0] != "Z" and stat[2] == process.start_ticks:
            alive.append(process)
    return alive


def wait_until_gone(processes: list[ProcessId], timeout: float) -> list[ProcessId]:
    """Wait up to ``timeout`` seconds for ``processes`` to exit; return those still alive."""
    deadline = time.monotonic() + timeout
    while (alive := survivors(processes)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive
