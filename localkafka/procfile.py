"""Running Procfile processes in the foreground with honcho, closing three gaps in how it stops.

honcho starts each process in a session of its own and, on SIGINT or SIGTERM, sends SIGTERM to
every process group, then SIGKILL to whatever is left 5 s after the first one exited; it
returns once all have. Its processes are outside the terminal's process group, so only honcho
can stop them, and it fails to in three cases, each of which left every process running:

- a signal in the first instant, before every process has reported its pid (they travel
  through a queue): honcho 2.0 looks the pids up inside its signal handler and raised
  KeyError there. Here the stop waits until every process has started.
- SIGHUP (the terminal closing), which honcho does not handle and dies of: here it is SIGTERM.
- its "SIGINT received" line to a reader that is gone (a closed terminal, EIO; or
  ``just up | tee log``, whose tee the same Ctrl-C stops, EPIPE) raised inside its handler:
  here its output turns into /dev/null once nothing reads it.

If honcho itself is SIGKILLed its processes survive; ``just down`` stops the broker by its pid
file, the others need ``kill``.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Printer

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["SignalSafeManager", "run_procfile"]


def run_procfile(procfile: Path, processes: Sequence[str]) -> int:
    """Run ``processes`` of ``procfile`` (from its folder) until they stop; honcho's exit code.

    Their output is multiplexed onto stdout, each line prefixed by time and process name.
    """
    commands: dict[str, str] = parse_procfile(procfile.read_text()).processes
    # The Procfile's commands (python, ingest, dispatcher) come from this interpreter's venv,
    # also when `just` was started without it on PATH.
    venv_bin = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([venv_bin, os.environ.get("PATH", "")])
    sys.stdout = _OutputOutlivingItsReader.text(sys.stdout)
    sys.stderr = _OutputOutlivingItsReader.text(sys.stderr)
    signal.signal(signal.SIGHUP, _hangup_as_terminate)
    manager = SignalSafeManager(Printer(sys.stdout))
    for name in processes:
        manager.add_process(name, commands[name], cwd=str(procfile.parent))
    manager.loop()
    code: int = manager.returncode
    return code


class SignalSafeManager(Manager):  # type: ignore[misc]  # honcho has no type information
    """honcho's process manager (its documented programmatic API), stopping safely even when
    told to before every process has reported its pid."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stop_requested = False

    def terminate(self) -> None:
        if not self._all_started():
            self._stop_requested = True  # carried out once all have started
            return
        super().terminate()

    def _all_started(self) -> bool:
        # honcho's loop asks this on every turn, right after recording a started process.
        started: bool = super()._all_started()
        if started and self._stop_requested:
            self._stop_requested = False
            super().terminate()
        return started


def _hangup_as_terminate(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGTERM)


class _OutputOutlivingItsReader(io.RawIOBase):
    """A file descriptor that swallows what is written once whatever reads it is gone."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._reader_gone = False

    @classmethod
    def text(cls, stream: TextIO) -> io.TextIOWrapper:
        """A text stream like ``stream`` (flushed first) writing through this."""
        stream.flush()
        return io.TextIOWrapper(
            io.BufferedWriter(cls(stream.fileno())),
            encoding=stream.encoding,
            errors="replace",
            line_buffering=True,
        )

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return not self._reader_gone and os.isatty(self._fd)

    def write(self, data: ReadableBuffer) -> int:
        size = len(memoryview(data))
        if not self._reader_gone:
            try:
                return os.write(self._fd, data)
            except OSError:
                self._reader_gone = True
        return size
