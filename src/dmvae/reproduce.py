"""Reproduce the paper: a resumable grid of runs (models x modalities x seeds), each trained and
evaluated in its own run directory, and a report that puts our numbers beside the paper's.

Layout of `--out DIR`: `DIR/M{m}/{model}/seed{s}/` is an ordinary run directory (config.json,
checkpoint, logs, eval/); `DIR/report.md` and `DIR/figure3.png` (paired MNIST) are rewritten
from whatever cells are complete, so a grid can be extended later with more seeds.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmvae.errors import ConfigError

BUDGETS = ("quick", "paper")

# Reduced schedules for a 2-core CPU (docs/results.md says how they were chosen). Everything not
# named here keeps the paper's value (experiments.PRESETS).
QUICK: dict[tuple[str, str], dict[str, Any]] = {
    ("paired-mnist", "dmvae"): {
        "epochs": 12,
        "batch_size": 256,
        "anneal_epochs": 2,
        "model_config.disc_width": 125,
    },
    ("paired-mnist", "mvae"): {"epochs": 12, "batch_size": 256, "anneal_epochs": 2},
    ("paired-mnist", "mmvae"): {"epochs": 5, "model_config.K": 1},
    ("mnist-svhn", "dmvae"): {"epochs": 3, "anneal_epochs": 1, "model_config.disc_width": 125},
    ("mnist-svhn", "mvae"): {"epochs": 3, "anneal_epochs": 1},
    ("mnist-svhn", "mmvae"): {"epochs": 1, "model_config.K": 1},
}

MODELS_ORDER = ("dmvae", "mvae", "mmvae")

# MNIST-SVHN, medians over 5 runs (paper Tables 1-3; x1 = MNIST, x2 = SVHN). Percentages for
# accuracies and coherences, FIDs on Inception features.
PAPER_MNIST_SVHN: dict[str, dict[str, float | None]] = {
    "mvae": {
        "latent/mnist": 79.8,
        "latent/svhn": 65.1,
        "latent/all": 80.2,
        "joint/prior": 38.0,
        "joint/gmm": 68.5,
        "cross/mnist->svhn": 31.8,
        "cross/svhn->mnist": 57.1,
        "fid/unconditional_prior/mnist": 21.2,
        "fid/unconditional_prior/svhn": 68.2,
        "fid/unconditional_gmm/mnist": 13.4,
        "fid/unconditional_gmm/svhn": 73.7,
        "fid/conditional/mnist->svhn": 65.0,
        "fid/conditional/svhn->mnist": 19.3,
        "fid/class_conditional/mnist->svhn": 83.8,
        "fid/class_conditional/svhn->mnist": 53.6,
    },
    "mmvae": {
        "latent/mnist": 91.3,
        "latent/svhn": 68.0,
        "latent/all": None,
        "joint/prior": 42.1,
        "joint/gmm": 80.3,
        "cross/mnist->svhn": 86.4,
        "cross/svhn->mnist": 69.1,
        "fid/unconditional_prior/mnist": 36.6,
        "fid/unconditional_prior/svhn": 98.9,
        "fid/unconditional_gmm/mnist": 28.7,
        "fid/unconditional_gmm/svhn": 119.7,
        "fid/conditional/mnist->svhn": 97.0,
        "fid/conditional/svhn->mnist": 28.6,
        "fid/class_conditional/mnist->svhn": 125.3,
        "fid/class_conditional/svhn->mnist": 52.6,
    },
    "dmvae": {
        "latent/mnist": 95.0,
        "latent/svhn": 79.9,
        "latent/all": 92.9,
        "joint/prior": None,
        "joint/gmm": 85.9,
        "cross/mnist->svhn": 91.6,
        "cross/svhn->mnist": 76.4,
        "fid/unconditional_prior/mnist": None,
        "fid/unconditional_prior/svhn": None,
        "fid/unconditional_gmm/mnist": 15.7,
        "fid/unconditional_gmm/svhn": 57.3,
        "fid/conditional/mnist->svhn": 67.6,
        "fid/conditional/svhn->mnist": 18.7,
        "fid/class_conditional/mnist->svhn": 91.9,
        "fid/class_conditional/svhn->mnist": 23.3,
    },
}


@dataclass(frozen=True)
class Cell:
    experiment: str
    model: str
    modalities: int
    seed: int

    def run_dir(self, out: Path) -> Path:
        return out / f"M{self.modalities}" / self.model / f"seed{self.seed}"


def grid(
    experiment: str, models: Sequence[str], modalities: Sequence[int], seeds: Sequence[int]
) -> list[Cell]:
    """Cells in the order they are run: all models for one seed before the next seed, so an
    interrupted grid has complete seeds first."""
    if experiment == "mnist-svhn":
        modalities = [2]
    return [Cell(experiment, m, k, s) for s in seeds for k in modalities for m in models]


def cell_config(cell: Cell, budget: str, out: Path, overrides: dict[str, Any] | None = None) -> Any:
    """The TrainConfig of a cell: the paper's preset, the budget's reductions, then overrides."""
    from dmvae.training import TrainConfig

    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}: choose one of {list(BUDGETS)}")
    settings = dict(QUICK[(cell.experiment, cell.model)]) if budget == "quick" else {}
    settings.update(overrides or {})
    config = TrainConfig.from_preset(cell.experiment, cell.model, **settings)
    config.data.modalities = cell.modalities
    config.seed = cell.seed
    config.out = str(cell.run_dir(out))
    return config


def evaluation_settings(experiment: str, budget: str) -> dict[str, Any]:
    """What each cell is scored on: Figure 3 for paired MNIST, Tables 1-3 for MNIST-SVHN."""
    if experiment == "paired-mnist":
        metrics = ["coherence", "latent", "fid", "grids"]
    else:
        metrics = ["coherence", "latent", "gmm", "joint", "fid", "grids"]
    return {
        "metrics": metrics,
        "fid_features": "classifier" if budget == "quick" else "inception",
        "all_subsets": False,
    }


def run_cell(
    cell: Cell,
    budget: str,
    out: Path,
    *,
    overrides: dict[str, Any] | None = None,
    device: str = "auto",
    evaluation: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict:
    """Train (or resume) and evaluate one cell unless its metrics already exist."""
    from dmvae.devices import resolve_device
    from dmvae.evaluation.suite import evaluate_run
    from dmvae.training import CHECKPOINT, same_run, train

    config = cell_config(cell, budget, out, overrides)
    config.device, config.progress = device, progress
    run_dir = cell.run_dir(out)
    if not same_run(run_dir, config.to_run_config()):
        raise ConfigError(
            f"{run_dir} holds a run with other settings (another budget or --set?); use a new "
            "--out or the settings it was started with"
        )
    metrics_path = run_dir / "eval" / "metrics.json"
    if metrics_path.exists():
        return json.loads(metrics_path.read_text())
    start = time.perf_counter()
    train(config, resume=(run_dir / CHECKPOINT).exists())
    train_seconds = time.perf_counter() - start
    settings = {**evaluation_settings(cell.experiment, budget), **(evaluation or {})}
    metrics = evaluate_run(
        run_dir, device=resolve_device(device), progress=progress, seed=cell.seed, **settings
    )
    metrics["train_seconds"] = round(train_seconds, 1)
    metrics["budget"] = budget
    metrics_path.write_text(json.dumps(metrics, indent=2))
    return metrics


def collect(out: Path, experiment: str) -> dict[Cell, dict]:
    """Metrics of every complete cell under `out`."""
    results = {}
    for path in sorted(out.glob("M*/*/seed*/eval/metrics.json")):
        seed_dir = path.parent.parent
        cell = Cell(
            experiment,
            seed_dir.parent.name,
            int(seed_dir.parent.parent.name[1:]),
            int(seed_dir.name[4:]),
        )
        results[cell] = json.loads(path.read_text())
    return results


def _median_spread(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(values: list[float], scale: float = 1.0) -> str:
    if not values:
        return "–"
    med, sd = _median_spread([v * scale for v in values])
    return f"{med:.1f}" if len(values) == 1 else f"{med:.1f} ± {sd:.1f} (n={len(values)})"


def _get(metrics: dict, key: str) -> float | None:
    """A metric by its report key ("latent/mnist", "cross/mnist->svhn", "fid/conditional/...")."""
    group, _, name = key.partition("/")
    if group == "cross":
        return metrics.get("coherence", {}).get(name)
    if group == "joint":
        return metrics.get("joint_coherence", {}).get(name)
    return metrics.get(group, {}).get(name)


def paired_mnist_series(
    results: dict[Cell, dict],
) -> dict[str, dict[int, dict[str, list[float]]]]:
    """model -> M -> metric -> values over seeds: leave-one-out coherence, coherence from a
    single modality (mean over those maps), class-specific distance ("coherence", "cross",
    "fid") and linear probes of the shared latent given all modalities
    ("probe_all"), given one (mean over modalities, "probe_one"), and of one modality's style
    ("style", DMVAE)."""
    series: dict[str, dict[int, dict[str, list[float]]]] = {}
    for cell, metrics in sorted(results.items(), key=lambda kv: kv[0].seed):
        entry = series.setdefault(cell.model, {}).setdefault(
            cell.modalities, {k: [] for k in SERIES}
        )
        entry["coherence"].append(metrics["coherence"]["leave_one_out_mean"])
        values = {
            "cross": metrics["coherence"].get("cross_mean"),
            "fid": metrics.get("fid", {}).get("class_conditional_leave_one_out_mean"),
            "probe_all": metrics.get("latent", {}).get("all"),
            "probe_one": _mean_over_modalities(metrics.get("latent", {})),
            "style": _mean_over_modalities(metrics.get("latent_style", {})),
        }
        for key, value in values.items():
            if value is not None:
                entry[key].append(value)
    return series


SERIES = ("coherence", "cross", "fid", "probe_all", "probe_one", "style")


def _mean_over_modalities(per_modality: dict[str, float]) -> float | None:
    values = [v for k, v in per_modality.items() if k != "all"]
    return statistics.mean(values) if values else None


def _trend(points: dict[int, float]) -> str:
    ms = sorted(points)
    first, last = points[ms[0]], points[ms[-1]]
    rises = all(points[a] <= points[b] + 0.01 for a, b in zip(ms, ms[1:], strict=False))
    change = last - first
    if change > 0.02 and rises:
        verdict = "rises"
    elif change > 0.02:
        verdict = "rises overall, not monotonically"
    elif change < -0.02:
        verdict = "falls"
    else:
        verdict = "stays flat"
    return f"{100 * first:.1f} → {100 * last:.1f} from M={ms[0]} to M={ms[-1]}: {verdict}"


def paired_mnist_claims(series: dict[str, dict[int, dict[str, list[float]]]]) -> list[str]:
    """The paper's Figure 3 findings, checked against our medians."""
    lines = []
    for model in ("dmvae", "mvae", "mmvae"):
        if model not in series or len(series[model]) < 2:
            continue
        med = {k: statistics.median(v["coherence"]) for k, v in series[model].items()}
        expected = "stays flat" if model == "mmvae" else "rises"
        lines.append(
            f"- {model.upper()} leave-one-out coherence {_trend(med)} (paper: {expected} with M)."
        )
    ms = sorted({k for per in series.values() for k, v in per.items() if v["fid"]})
    best = []
    for k in ms:
        fids = {
            model: statistics.median(per[k]["fid"])
            for model, per in series.items()
            if k in per and per[k]["fid"]
        }
        if fids:
            best.append(f"M={k}: {min(fids, key=fids.get).upper()}")
    if best:
        lines.append(
            "- Lowest class-specific conditional distance (paper: DMVAE at every M): "
            + ", ".join(best)
            + "."
        )
    return lines


def plot_figure3(series: dict[str, dict[int, dict[str, list[float]]]], path: Path) -> None:
    """The paper's Figure 3: medians with standard-deviation error bars over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    styles = {"dmvae": ("o", "C0"), "mvae": ("s", "C1"), "mmvae": ("^", "C2")}
    for model, per_m in sorted(series.items()):
        marker, color = styles.get(model, ("x", None))
        for ax, key, scale in ((axes[0], "coherence", 100.0), (axes[1], "fid", 1.0)):
            ms = [k for k in sorted(per_m) if per_m[k][key]]
            if not ms:
                continue
            stats = [_median_spread([v * scale for v in per_m[k][key]]) for k in ms]
            ax.errorbar(
                ms,
                [s[0] for s in stats],
                yerr=[s[1] for s in stats],
                marker=marker,
                color=color,
                capsize=3,
                label=model.upper(),
            )
    axes[0].set(xlabel="number of modalities M", ylabel="leave-one-out coherence (%)")
    axes[1].set(xlabel="number of modalities M", ylabel="class-specific conditional distance")
    for ax in axes:
        ax.set_xticks(sorted({k for per in series.values() for k in per}))
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fid_name(results: dict[Cell, dict]) -> str:
    features = {m.get("fid", {}).get("features") for m in results.values()} - {None}
    if features == {"inception"}:
        return "FID (Inception)"
    if features == {"classifier"}:
        return "classifier-feature FD (not comparable with the paper's FID values)"
    return "FID / classifier FD (mixed features)"


def _series_table(
    series: dict[str, dict[int, dict[str, list[float]]]],
    ms: list[int],
    columns: list[tuple[str, str, str]],
    scale: float = 1.0,
) -> list[str]:
    """A markdown table, one row per M, one column per (model, series key, label)."""
    lines = ["| M | " + " | ".join(label for _, _, label in columns) + " |"]
    lines += ["|---|" + "---|" * len(columns)]
    for k in ms:
        row = [_fmt(series[m].get(k, {}).get(key, []), scale) for m, key, _ in columns]
        lines.append(f"| {k} | " + " | ".join(row) + " |")
    return lines


def paired_mnist_report(results: dict[Cell, dict], out: Path, header: str) -> str:
    series = paired_mnist_series(results)
    plot = out / "figure3.png"
    if series:
        plot_figure3(series, plot)
    models = [m for m in ("dmvae", "mvae", "mmvae") if m in series]
    ms = sorted({k for per in series.values() for k in per})

    def table(key: str, scale: float = 1.0) -> list[str]:
        return _series_table(series, ms, [(m, key, m.upper()) for m in models], scale)

    lines = [header, "", "## Leave-one-out coherence (%), median ± std over seeds", ""]
    lines += table("coherence", 100)
    lines += ["", "## Coherence from a single modality (%, mean over the one-input maps)", ""]
    lines += ["The gap to the table above is what aggregating M - 1 inputs adds.", ""]
    lines += table("cross", 100)
    lines += ["", f"## Class-specific conditional {_fid_name(results)}, leave-one-out mean", ""]
    lines += table("fid")
    columns = [
        (m, key, f"{m.upper()} {label}")
        for m in models
        for key, label in (("probe_all", "all"), ("probe_one", "one"), ("style", "style"))
        if any(series[m][k][key] for k in series[m])
    ]
    if columns:
        lines += ["", "## Linear probes of the digit (%, whole test set), median over seeds", ""]
        lines += [
            "all: the shared latent (DMVAE: content) given all modalities; one: given one "
            "modality, mean over modalities; style: one modality's style (DMVAE), mean over "
            "modalities. Chance is about 10 %.",
            "",
        ]
        lines += _series_table(series, ms, columns, 100)
    lines += ["", "## The paper's findings (Figure 3) against ours", ""]
    lines += paired_mnist_claims(series) or ["- Too few complete cells to compare."]
    if series:
        lines += ["", f"![Figure 3]({plot.name})"]
    return "\n".join(lines) + "\n"


MNIST_SVHN_TABLES = {
    "Table 1: latent accuracy and coherence (%)": [
        ("latent/mnist", "latent acc. x1", 100),
        ("latent/svhn", "latent acc. x2", 100),
        ("latent/all", "latent acc. aggregated", 100),
        ("joint/prior", "joint coherence (prior)", 100),
        ("joint/gmm", "joint coherence (GMM)", 100),
        ("cross/mnist->svhn", "coherence x1→x2", 100),
        ("cross/svhn->mnist", "coherence x2→x1", 100),
    ],
    "Table 2: FIDs (lower is better)": [
        ("fid/unconditional_prior/mnist", "unconditional x1 (prior)", 1),
        ("fid/unconditional_prior/svhn", "unconditional x2 (prior)", 1),
        ("fid/conditional/mnist->svhn", "conditional x1→x2", 1),
        ("fid/conditional/svhn->mnist", "conditional x2→x1", 1),
        ("fid/class_conditional/mnist->svhn", "class-specific x1→x2", 1),
        ("fid/class_conditional/svhn->mnist", "class-specific x2→x1", 1),
    ],
    "Table 3: ex-post GMM sampling (FIDs, lower is better)": [
        ("fid/unconditional_gmm/mnist", "unconditional x1 (GMM)", 1),
        ("fid/unconditional_gmm/svhn", "unconditional x2 (GMM)", 1),
    ],
}


def mnist_svhn_report(results: dict[Cell, dict], header: str) -> str:
    models = [m for m in ("mvae", "mmvae", "dmvae") if any(c.model == m for c in results)]
    lines = [header, "", f"FIDs below are {_fid_name(results)}.", ""]
    for title, rows in MNIST_SVHN_TABLES.items():
        lines += [
            f"## {title}",
            "",
            "| metric | "
            + " | ".join(f"{m.upper()} ours | {m.upper()} paper" for m in models)
            + " |",
            "|---|" + "---|---|" * len(models),
        ]
        for key, label, scale in rows:
            cells = []
            for m in models:
                values = [
                    v for c, r in results.items() if c.model == m if (v := _get(r, key)) is not None
                ]
                paper = PAPER_MNIST_SVHN[m].get(key)
                cells += [_fmt(values, scale), "n/a" if paper is None else f"{paper:.1f}"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def cells_table(results: dict[Cell, dict]) -> list[str]:
    """Per cell: its coherence summary and how long training and evaluation took."""
    lines = [
        "## Cells",
        "",
        "| model | M | seed | leave-one-out coherence (%) | train (s) | evaluation (s) |",
        "|---|---|---|---|---|---|",
    ]
    order = {m: k for k, m in enumerate(MODELS_ORDER)}
    for cell in sorted(results, key=lambda c: (c.modalities, order.get(c.model, 9), c.seed)):
        r = results[cell]
        loo = r.get("coherence", {}).get("leave_one_out_mean")
        lines.append(
            f"| {cell.model.upper()} | {cell.modalities} | {cell.seed} | "
            f"{'–' if loo is None else f'{100 * loo:.1f}'} | {r.get('train_seconds', '–')} | "
            f"{sum(r.get('seconds', {}).values()):.0f} |"
        )
    return lines


def write_report(out: Path, experiment: str, command: str | None = None) -> Path:
    """Rewrite DIR/report.md (and the Figure 3 plot) from the complete cells."""
    results = collect(out, experiment)
    budgets = sorted({r.get("budget", "?") for r in results.values()})
    history = out / "commands.txt"
    commands = [command] if command else []
    if not commands and history.exists():  # every command that worked on this grid, once
        commands = list(dict.fromkeys(history.read_text().splitlines()))
    header = "\n".join(
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
    if experiment == "paired-mnist":
        text = paired_mnist_report(results, out, header)
    else:
        text = mnist_svhn_report(results, header)
    text += "\n" + "\n".join(cells_table(results)) + "\n"
    path = out / "report.md"
    path.write_text(text)
    return path


def reproduce(
    experiment: str,
    out: str | Path,
    *,
    models: Iterable[str] = ("dmvae", "mvae", "mmvae"),
    modalities: Iterable[int] = (2, 3, 4, 5),
    seeds: Iterable[int] = (0,),
    budget: str = "quick",
    overrides: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    device: str = "auto",
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Run every incomplete cell of the grid, then write the report; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = grid(experiment, list(models), list(modalities), list(seeds))
    if command:
        with open(out / "commands.txt", "a") as f:
            f.write(command + "\n")
    for n, cell in enumerate(cells, 1):
        print(
            f"[{n}/{len(cells)}] {cell.model} M={cell.modalities} seed={cell.seed} "
            f"-> {cell.run_dir(out)}",
            flush=True,
        )
        run_cell(
            cell,
            budget,
            out,
            overrides=overrides,
            device=device,
            evaluation=evaluation,
            progress=progress,
        )
        write_report(out, experiment, command)
    return write_report(out, experiment, command)
