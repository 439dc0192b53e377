"""Reading the markdown results files the benchmarks write."""

from __future__ import annotations

__all__ = ["table_rows"]


def table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the first table under ``## <heading>`` (``""``: before any heading),
    as cells."""
    section = markdown.split(f"## {heading}", 1)[1] if heading else markdown
    section = section.split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
