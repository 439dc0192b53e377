"""The benchmarks' one error: a part that could not run (a slow result is only reported)."""

from __future__ import annotations

import click

__all__ = ["BenchError"]


class BenchError(click.ClickException):
    """A part of a benchmark could not run: printed as one line, exit status 1."""
