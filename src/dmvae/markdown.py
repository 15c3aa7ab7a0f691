"""Markdown tables, written one way for every report (run metrics.md, reproduction report.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a table: `| a | b |`, then `|---|---|`, then one line per row, so that all
    reports share one layout and a change to it happens in one place."""
    return [_row(header), "|" + "---|" * len(header), *(_row(row) for row in rows)]


def _row(cells: Sequence[str]) -> str:
    """One line; a "|" inside a cell is escaped, so that it does not split the cell."""
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
