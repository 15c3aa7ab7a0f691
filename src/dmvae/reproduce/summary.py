"""How a report summarises cells: the order of models, median ± std over seeds, the FID's name."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from dmvae.reproduce.cell import Cell

Results = dict[Cell, dict]
"""The metrics.json of every complete cell."""

MODELS_ORDER = ("dmvae", "mvae", "mmvae")
"""The paper's models: a grid's default, and the ones its findings are checked for."""

REPORT_ORDER = (*MODELS_ORDER, "mopoe", "mmvaeplus")


def report_order(models: Iterable[str]) -> list[str]:
    """Models as reports list them: the paper's, then its successors, then any others by name."""
    rank = {m: k for k, m in enumerate(REPORT_ORDER)}
    return sorted(set(models), key=lambda m: (rank.get(m, len(rank)), m))


def median_spread(values: list[float]) -> tuple[float, float]:
    """Median and standard deviation over seeds (0 for a single seed)."""
    return statistics.median(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float], scale: float = 1.0) -> str:
    """One table entry: the median, with the spread and the number of seeds when there are
    several, or a dash when there is no value."""
    if not values:
        return "–"
    med, sd = median_spread([v * scale for v in values])
    return f"{med:.1f}" if len(values) == 1 else f"{med:.1f} ± {sd:.1f} (n={len(values)})"


def fid_name(results: Results) -> str:
    """What the distances are called: only Inception-feature FIDs compare with the paper's."""
    features = {m.get("fid", {}).get("features") for m in results.values()} - {None}
    if features == {"inception"}:
        return "FID (Inception)"
    if features == {"classifier"}:
        return "classifier-feature FD (not comparable with the paper's FID values)"
    return "FID / classifier FD (mixed features)"
