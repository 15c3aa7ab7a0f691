"""The PolyMNIST report: one row per model, the metrics of the MoPoE paper's PolyMNIST results
(coherence from k given modalities), with leave-one-out coherence, probes and distances."""

from __future__ import annotations

import statistics

from dmvae.evaluation.report import coherence_by_inputs
from dmvae.markdown import table
from dmvae.models.registry import model_title
from dmvae.reproduce.summary import Results, fid_name, fmt, report_order

GIVEN = (1, 2, 3, 4)


def _values(metrics: dict) -> dict[str, float | None]:
    """The report's columns of one cell."""
    coh, lat = metrics.get("coherence", {}), metrics.get("latent", {})
    by_k = coherence_by_inputs(coh)
    one = [v for k, v in lat.items() if k != "all"]
    return {
        "loo": coh.get("leave_one_out_mean"),
        **{f"given{k}": by_k.get(k) for k in GIVEN},
        "probe_all": lat.get("all"),
        "probe_one": statistics.mean(one) if one else None,
        "fd": metrics.get("fid", {}).get("class_conditional_leave_one_out_mean"),
        "joint_ll": metrics.get("loglik", {}).get("joint"),
        "loo_ll": metrics.get("loglik", {}).get("leave_one_out_mean"),
    }


def polymnist_report(results: Results, header: str) -> str:
    """The report's body: one row per model, medians over seeds."""
    per_model: dict[str, dict[str, list[float]]] = {}
    for cell, metrics in results.items():
        entry = per_model.setdefault(cell.model, {})
        for key, value in _values(metrics).items():
            if value is not None:
                entry.setdefault(key, []).append(value)
    models = report_order(per_model)
    columns = [
        ("loo", "leave-one-out coherence (%)", 100),
        *((f"given{k}", f"coherence from {k} (%)", 100) for k in GIVEN),
        ("probe_all", "probe, all given (%)", 100),
        ("probe_one", "probe, one given (%)", 100),
        ("fd", "class-specific FD (LOO mean)", 1),
        ("joint_ll", "log p(X) (nats)", 1),
        ("loo_ll", "log p(x_m | rest) (nats)", 1),
    ]
    rows = [
        [model_title(m), *(fmt(per_model[m].get(key, []), scale) for key, _, scale in columns)]
        for m in models
    ]
    lines = [header, "", f"Distances are {fid_name(results)}.", ""]
    lines += [
        "Coherence from k: mean over every map from k given modalities to each other one (the "
        "MoPoE paper's PolyMNIST plot); probes: linear digit probes of the shared latent given "
        "all modalities, or one (mean over modalities); log-likelihoods: importance-sampled "
        "test log p(X) and log p(x_m | the others), mean over m, each under the model's own "
        'decoder likelihood (docs/protocol.md, "Test log-likelihoods"). Median ± std over '
        "seeds.",
        "",
    ]
    lines += table(["model", *(label for _, label, _ in columns)], rows)
    return "\n".join(lines) + "\n"
