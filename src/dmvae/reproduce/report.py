"""DIR/report.md: a header naming the commands that built the grid, the experiment's tables
(and figure), and one row per complete cell."""

from __future__ import annotations

from pathlib import Path

from dmvae.errors import DataError
from dmvae.markdown import table
from dmvae.models.registry import model_title
from dmvae.reproduce.cells import collect
from dmvae.reproduce.layouts import layout_of
from dmvae.reproduce.summary import Results, report_order


def _header(out: Path, experiment: str, results: Results, command: str | None) -> str:
    """Title, cell count, budgets, and every command that worked on this grid, once."""
    budgets = sorted({r.get("budget", "?") for r in results.values()})
    history = out / "commands.txt"
    commands = [command] if command else []
    if not commands and history.exists():
        commands = list(dict.fromkeys(history.read_text().splitlines()))
    return "\n".join(
        [
            f"# Reproduction: {experiment}",
            "",
            f"{len(results)} complete cells; budget: {', '.join(budgets) or 'none'}.",
            *([f"Command: `{commands[0]}`"] if len(commands) == 1 else []),
            *(
                ["Commands (in order):", *[f"- `{c}`" for c in commands]]
                if len(commands) > 1
                else []
            ),
        ]
    )


def cells_table(results: Results) -> list[str]:
    """Per cell: its coherence summary and how long training and evaluation took."""
    order = {m: k for k, m in enumerate(report_order(c.model for c in results))}
    rows = []
    for cell in sorted(results, key=lambda c: (c.modalities, order[c.model], c.seed)):
        r = results[cell]
        loo = r.get("coherence", {}).get("leave_one_out_mean")
        rows.append(
            [
                model_title(cell.model),
                str(cell.modalities),
                str(cell.seed),
                "–" if loo is None else f"{100 * loo:.1f}",
                str(r.get("train_seconds", "–")),
                f"{sum(r.get('seconds', {}).values()):.0f}",
            ]
        )
    header = ["model", "M", "seed", "leave-one-out coherence (%)", "train (s)", "evaluation (s)"]
    return ["### Cells", "", *table(header, rows)]


def write_report(out: Path, experiment: str, command: str | None = None) -> Path:
    """Rewrite DIR/report.md (and the experiment's figure) from the complete cells, so that the
    report always shows every cell finished so far."""
    if not Path(out).is_dir():
        raise DataError(f"no grid in {out}: run `dmvae reproduce` without --report-only first")
    results = collect(out, experiment)
    layout = layout_of(experiment)
    text = layout.write(results, _header(out, experiment, results, command))
    if layout.figure and layout.figure.draw(results, out / layout.figure.file):
        text += f"\n![{layout.figure.title}]({layout.figure.file})\n"
    text += "\n" + "\n".join(cells_table(results)) + "\n"
    path = out / "report.md"
    path.write_text(text)
    return path
