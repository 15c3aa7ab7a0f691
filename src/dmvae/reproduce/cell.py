"""A cell of a reproduction grid: which run it is and where it lives. Its own module because
the grid (cells.py) and the summaries of results (summary.py, keyed by cell) both use it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    experiment: str
    model: str
    modalities: int
    seed: int

    def run_dir(self, out: Path) -> Path:
        """Its run directory under the grid's `out` (the inverse of `collect`)."""
        return out / f"M{self.modalities}" / self.model / f"seed{self.seed}"
