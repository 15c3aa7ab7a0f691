"""The MNIST-SVHN report: our numbers beside the paper's in the layout of its Tables 1-3."""

from __future__ import annotations

from dmvae.markdown import table
from dmvae.models.registry import model_title
from dmvae.reproduce.paper import PAPER_MNIST_SVHN
from dmvae.reproduce.summary import Results, fid_name, fmt, report_order

# Our names of the modalities and maps, and the paper's (x1 = MNIST, x2 = SVHN).
_PAPER_NAMES = {"mnist": "x1", "svhn": "x2", "mnist->svhn": "x1→x2", "svhn->mnist": "x2→x1"}
_SINGLE = ("mnist", "svhn")
_MAPS = ("mnist->svhn", "svhn->mnist")


def _rows(key: str, label: str, names: tuple[str, ...]) -> list[tuple[str, str]]:
    """One (metric key, label) row per modality or map: `{}` is filled with our name in the key,
    with the paper's in the label."""
    return [(key.format(name), label.format(_PAPER_NAMES[name])) for name in names]


# title -> (scale, rows): percentages for Table 1, distances and log-likelihoods as they are.
MNIST_SVHN_TABLES: dict[str, tuple[float, list[tuple[str, str]]]] = {
    "Table 1: latent accuracy and coherence (%)": (
        100,
        [
            *_rows("latent/{}", "latent acc. {}", _SINGLE),
            ("latent/all", "latent acc. aggregated"),
            ("joint/prior", "joint coherence (prior)"),
            ("joint/gmm", "joint coherence (GMM)"),
            *_rows("cross/{}", "coherence {}", _MAPS),
        ],
    ),
    "Table 2: FIDs (lower is better)": (
        1,
        [
            *_rows("fid/unconditional_prior/{}", "unconditional {} (prior)", _SINGLE),
            *_rows("fid/conditional/{}", "conditional {}", _MAPS),
            *_rows("fid/class_conditional/{}", "class-specific {}", _MAPS),
        ],
    ),
    "Table 3: ex-post GMM sampling (FIDs, lower is better)": (
        1,
        _rows("fid/unconditional_gmm/{}", "unconditional {} (GMM)", _SINGLE),
    ),
    "Test log-likelihoods (nats per pair; the MMVAE paper's measure, not in the DMVAE paper)": (
        1,
        [
            ("loglik/joint", "log p(x1, x2)"),
            ("loglik/svhn->mnist", "log p(x1 | x2)"),
            ("loglik/mnist->svhn", "log p(x2 | x1)"),
        ],
    ),
}

# The paper's column order.
_MODELS = ("mvae", "mmvae", "dmvae")


def _get(metrics: dict, key: str) -> float | None:
    """A metric by its report key ("latent/mnist", "cross/mnist->svhn", "fid/conditional/...")."""
    group, _, name = key.partition("/")
    if group == "cross":
        return metrics.get("coherence", {}).get(name)
    if group == "joint":
        return metrics.get("joint_coherence", {}).get(name)
    if group == "loglik" and name != "joint":
        return metrics.get("loglik", {}).get("conditional", {}).get(name)
    return metrics.get(group, {}).get(name)


def _entries(results: Results, model: str, key: str, scale: float) -> list[str]:
    """Our median over seeds and the paper's number, for one model and metric."""
    values = [v for c, r in results.items() if c.model == model if (v := _get(r, key)) is not None]
    paper = PAPER_MNIST_SVHN.get(model, {}).get(key)
    return [fmt(values, scale), "n/a" if paper is None else f"{paper:.1f}"]


def mnist_svhn_report(results: Results, header: str) -> str:
    """The report's body: Tables 1-3, ours beside the paper's, for the models with cells."""
    present = {c.model for c in results}
    models = [m for m in _MODELS if m in present] + report_order(present - set(_MODELS))
    columns = [f"{model_title(m)} {source}" for m in models for source in ("ours", "paper")]
    lines = [header, "", f"FIDs below are {fid_name(results)}.", ""]
    for title, (scale, rows) in MNIST_SVHN_TABLES.items():
        body = [
            [label, *(e for m in models for e in _entries(results, m, key, scale))]
            for key, label in rows
        ]
        lines += [f"### {title}", "", *table(["metric", *columns], body), ""]
    return "\n".join(lines)
