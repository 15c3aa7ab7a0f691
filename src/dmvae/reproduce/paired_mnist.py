"""The paired-MNIST report: Figure 3's series over M, their tables, and the paper's findings
checked against our medians."""

from __future__ import annotations

import statistics

from dmvae.markdown import table
from dmvae.models.registry import model_title
from dmvae.reproduce.summary import MODELS_ORDER, Results, fid_name, fmt, report_order

Series = dict[str, dict[int, dict[str, list[float]]]]
"""model -> M -> series key -> values over seeds."""

SERIES = ("coherence", "cross", "fid", "probe_all", "probe_one", "style", "joint_ll", "loo_ll")


def paired_mnist_series(results: Results) -> Series:
    """model -> M -> metric -> values over seeds: leave-one-out coherence, coherence from a
    single modality (mean over those maps), class-specific distance ("coherence", "cross",
    "fid") and linear probes of the shared latent given all modalities
    ("probe_all"), given one (mean over modalities, "probe_one"), of one modality's style
    ("style", DMVAE), and the test log-likelihoods log p(X) and log p(x_m | the others), mean
    over m ("joint_ll", "loo_ll")."""
    series: Series = {}
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
            "joint_ll": metrics.get("loglik", {}).get("joint"),
            "loo_ll": metrics.get("loglik", {}).get("leave_one_out_mean"),
        }
        for key, value in values.items():
            if value is not None:
                entry[key].append(value)
    return series


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


def paired_mnist_claims(series: Series) -> list[str]:
    """The paper's Figure 3 findings, checked against our medians."""
    lines = []
    for model in MODELS_ORDER:
        if model not in series or len(series[model]) < 2:
            continue
        med = {k: statistics.median(v["coherence"]) for k, v in series[model].items()}
        expected = "stays flat" if model == "mmvae" else "rises"
        trend = _trend(med)
        lines.append(
            f"- {model_title(model)} leave-one-out coherence {trend} (paper: {expected} with M)."
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
            best.append(f"M={k}: {model_title(min(fids, key=fids.get))}")
    if best:
        lines.append(
            "- Lowest class-specific conditional distance (paper: DMVAE at every M): "
            + ", ".join(best)
            + "."
        )
    return lines


def _series_table(
    series: Series, ms: list[int], columns: list[tuple[str, str, str]], scale: float = 1.0
) -> list[str]:
    """A markdown table, one row per M, one column per (model, series key, label)."""
    rows = [
        [str(k), *(fmt(series[m].get(k, {}).get(key, []), scale) for m, key, _ in columns)]
        for k in ms
    ]
    return table(["M", *(label for _, _, label in columns)], rows)


def _probe_columns(series: Series, models: list[str]) -> list[tuple[str, str, str]]:
    """The linear-probe columns that hold a value for some M."""
    return [
        (m, key, f"{model_title(m)} {label}")
        for m in models
        for key, label in (("probe_all", "all"), ("probe_one", "one"), ("style", "style"))
        if any(series[m][k][key] for k in series[m])
    ]


def _loglik_section(series: Series, ms: list[int], models: list[str]) -> list[str]:
    """Test log-likelihoods (not in the DMVAE paper; the MMVAE and MoPoE papers' measure)."""
    with_ll = [m for m in models if any(series[m][k]["joint_ll"] for k in series[m])]
    if not with_ll:
        return []
    lines = ["", "### Test log-likelihoods (nats per tuple), median over seeds", ""]
    lines += [
        "Importance-sampled with K samples per tuple on the provenance's test tuples "
        '(docs/protocol.md, "Test log-likelihoods"); each model under its own decoder '
        "likelihood (the Laplace scales differ: compare within a scale).",
        "",
    ]
    columns = [
        (m, key, f"{model_title(m)} {label}")
        for m in with_ll
        for key, label in (("joint_ll", "log p(X)"), ("loo_ll", "log p(x_m | rest)"))
    ]
    return lines + _series_table(series, ms, columns)


def paired_mnist_report(results: Results, header: str) -> str:
    """The report's body: the series of Figure 3 as tables, probes, and the paper's findings."""
    series = paired_mnist_series(results)
    models = report_order(series)
    ms = sorted({k for per in series.values() for k in per})

    def per_model(key: str, scale: float = 1.0) -> list[str]:
        return _series_table(series, ms, [(m, key, model_title(m)) for m in models], scale)

    lines = [header, "", "### Leave-one-out coherence (%), median ± std over seeds", ""]
    lines += per_model("coherence", 100)
    lines += ["", "### Coherence from a single modality (%, mean over the one-input maps)", ""]
    lines += ["The gap to the table above is what aggregating M - 1 inputs adds.", ""]
    lines += per_model("cross", 100)
    lines += ["", f"### Class-specific conditional {fid_name(results)}, leave-one-out mean", ""]
    lines += per_model("fid")
    columns = _probe_columns(series, models)
    if columns:
        lines += ["", "### Linear probes of the digit (%, whole test set), median over seeds", ""]
        lines += [
            "all: the shared latent (DMVAE: content) given all modalities; one: given one "
            "modality, mean over modalities; style: one modality's style (DMVAE), mean over "
            "modalities. Chance is about 10 %.",
            "",
        ]
        lines += _series_table(series, ms, columns, 100)
    lines += _loglik_section(series, ms, models)
    lines += ["", "### The paper's findings (Figure 3) against ours", ""]
    lines += paired_mnist_claims(series) or ["- Too few complete cells to compare."]
    return "\n".join(lines) + "\n"
