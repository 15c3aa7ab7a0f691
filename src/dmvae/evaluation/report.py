"""Markdown tables in the layout of the paper's Tables 1-3 and Figure 3 (and of MoPoE's PolyMNIST
results), and PNG sample grids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import save_image

from dmvae.data.batch import MultimodalData
from dmvae.markdown import table
from dmvae.models.base import ContentSampler, MultimodalVAE, Style
from dmvae.models.registry import model_title


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _probe(metrics: dict, entry: str, key: str) -> str:
    """A probe accuracy in %, marked * when the probe stopped before converging."""
    value = metrics.get(entry, {}).get(key)
    return _pct(value) + ("*" if key in _unconverged(metrics).get(entry, ()) else "")


def _unconverged(metrics: dict) -> dict[str, list[str]]:
    return metrics.get("provenance", {}).get("latent", {}).get("unconverged", {})


def _latent_line(metrics: dict) -> list[str]:
    lat = metrics.get("latent", {})
    if not lat:
        return []
    shown = ", ".join(f"{k} {_probe(metrics, 'latent', k)}" for k in lat)
    return ["", f"Latent accuracy (%): {shown}"]


def _one_row_table(columns: dict[str, str]) -> list[str]:
    """A table of one row: each column's header beside its value, so that they cannot drift."""
    return table(list(columns), [list(columns.values())])


def _fid_name(fid: dict) -> str:
    return "FID" if fid.get("features") == "inception" else "classifier FD"


def mnist_svhn_table(metrics: dict) -> list[str]:
    """The paper's Tables 1-3 for one run (x1 = MNIST, x2 = SVHN)."""
    coh, fid = metrics.get("coherence", {}), metrics.get("fid", {})
    joint = metrics.get("joint_coherence", {})
    return [
        "Latent accuracy and coherence (in %; x1 = MNIST, x2 = SVHN), as the paper's Table 1:",
        "",
        *_one_row_table(
            {
                "latent x1": _probe(metrics, "latent", "mnist"),
                "latent x2": _probe(metrics, "latent", "svhn"),
                "aggregated": _probe(metrics, "latent", "all"),
                "joint (prior)": _pct(joint.get("prior")),
                "joint (GMM)": _pct(joint.get("gmm")),
                "x1->x2": _pct(coh.get("mnist->svhn")),
                "x2->x1": _pct(coh.get("svhn->mnist")),
            }
        ),
        "",
        f"{_fid_name(fid)}s (lower is better), as the paper's Tables 2 and 3:",
        "",
        *_one_row_table(
            {
                name: _num(fid.get(key))
                for name, key in (
                    ("uncond. x1 (prior)", "unconditional_prior/mnist"),
                    ("uncond. x2 (prior)", "unconditional_prior/svhn"),
                    ("uncond. x1 (GMM)", "unconditional_gmm/mnist"),
                    ("uncond. x2 (GMM)", "unconditional_gmm/svhn"),
                    ("cond. x1->x2", "conditional/mnist->svhn"),
                    ("cond. x2->x1", "conditional/svhn->mnist"),
                    ("class-cond. x1->x2", "class_conditional/mnist->svhn"),
                    ("class-cond. x2->x1", "class_conditional/svhn->mnist"),
                )
            }
        ),
    ]


def paired_mnist_table(metrics: dict) -> list[str]:
    """The metrics of the paper's Figure 3 for one run."""
    return ["Paired MNIST, the metrics of the paper's Figure 3:", "", *summary_table(metrics)]


def coherence_by_inputs(coherence: dict[str, float]) -> dict[int, float]:
    """Mean conditional coherence over the maps from k given modalities, per k (the MoPoE
    paper's PolyMNIST plot); only the k whose maps were scored."""
    by_k: dict[int, list[float]] = {}
    for name, value in coherence.items():
        if "->" in name:
            by_k.setdefault(name.split("->")[0].count("+") + 1, []).append(value)
    return {k: sum(v) / len(v) for k, v in sorted(by_k.items())}


def polymnist_table(metrics: dict) -> list[str]:
    """PolyMNIST for one run: coherence from k given modalities, leave-one-out coherence,
    latent probes and the class-specific distance."""
    coh, fid = metrics.get("coherence", {}), metrics.get("fid", {})
    by_k = coherence_by_inputs(coh)
    columns = {
        "M": str(len(metrics.get("modalities", []))),
        "leave-one-out coherence (%)": _pct(coh.get("leave_one_out_mean")),
        **{f"coherence from {k} (%)": _pct(v) for k, v in by_k.items()},
        f"class-specific conditional {_fid_name(fid)}": _num(
            fid.get("class_conditional_leave_one_out_mean")
        ),
    }
    lines = ["PolyMNIST, coherence by number of given modalities:", "", *_one_row_table(columns)]
    return lines + _latent_line(metrics)


def summary_table(metrics: dict) -> list[str]:
    """Coherence, class-specific distance and latent accuracy of any run."""
    coh, fid = metrics.get("coherence", {}), metrics.get("fid", {})
    joint = metrics.get("joint_coherence", {})
    lines = _one_row_table(
        {
            "M": str(len(metrics.get("modalities", []))),
            "leave-one-out coherence (%)": _pct(coh.get("leave_one_out_mean")),
            f"class-specific conditional {_fid_name(fid)}": _num(
                fid.get("class_conditional_leave_one_out_mean")
            ),
            "cross coherence (%)": _pct(coh.get("cross_mean")),
            "joint coherence prior / GMM (%)": (
                f"{_pct(joint.get('prior'))} / {_pct(joint.get('gmm'))}"
            ),
        }
    )
    return lines + _latent_line(metrics)


RUN_TABLES: dict[str, Callable[[dict], list[str]]] = {
    "paired-mnist": paired_mnist_table,
    "mnist-svhn": mnist_svhn_table,
    "polymnist": polymnist_table,
}
"""The body of each run's eval/metrics.md per experiment name (the paper's table for one run);
experiments not named here get `summary_table`."""


def register_run_table(experiment: str, table: Callable[[dict], list[str]]) -> None:
    """Lay out the metrics.md of the runs of your own experiment `experiment` with `table`
    (metrics.json -> markdown lines)."""
    RUN_TABLES[experiment] = table


def run_table_of(experiment: str) -> Callable[[dict], list[str]]:
    """The body of metrics.md for a run of `experiment`."""
    return RUN_TABLES.get(experiment, summary_table)


def metrics_markdown(metrics: dict, body: Callable[[dict], list[str]] = summary_table) -> str:
    """metrics.md of one run: which results are stale, `body` (the paper's layout for its
    experiments), every conditional coherence, the metrics that were skipped and why (missing
    show as n/a), and where each metric's numbers come from."""
    lines = [f"# {model_title(metrics.get('model', '?'))} on {metrics.get('experiment', '?')}", ""]
    lines += stale_note(metrics)
    lines += while_training_note(metrics)
    lines += body(metrics)
    lines += unconverged_note(metrics)
    maps = {k: v for k, v in metrics.get("coherence", {}).items() if "->" in k}
    if maps:
        lines += ["", "Every conditional coherence (%):", ""]
        lines += table(["map", "coherence"], [[k, _pct(v)] for k, v in maps.items()])
    lines += loglik_lines(metrics.get("loglik", {}))
    skipped = metrics.get("skipped", {})
    if skipped:
        lines += ["", "Skipped: " + "; ".join(f"{k} ({why})" for k, why in skipped.items())]
    lines += classifier_table(metrics)
    lines += provenance_table(metrics)
    return "\n".join(lines) + "\n"


def loglik_lines(loglik: dict) -> list[str]:
    """The test log-likelihoods of metric "loglik": the joint, then each modality given the
    others (K and the test tuples are in the provenance)."""
    if not loglik:
        return []
    rows = [["log p(all)", f"{loglik['joint']:.1f}"]]
    rows += [
        [f"log p({k.split('->')[1]} | {k.split('->')[0]})", f"{v:.1f}"]
        for k, v in loglik.get("conditional", {}).items()
    ]
    head = f"Test log-likelihoods (nats per tuple, mean over {loglik.get('tuples', '?')} tuples):"
    return ["", head, "", *table(["estimate", "value"], rows)]


def classifier_table(metrics: dict) -> list[str]:
    """Which classifier scored each modality's coherence and classifier-feature distances: its
    kind, where it came from, its accuracy when trained and on these test samples, and a
    digest of its weights. Metrics scored by other classifiers than the latest are listed
    separately (an evaluation of some metrics keeps the others' entries)."""
    by_metric = {
        name: p["classifiers"]
        for name, p in metrics.get("provenance", {}).items()
        if p.get("classifiers")
    }
    if not by_metric:
        return []
    groups: list[tuple[list[str], dict]] = []
    for name, info in by_metric.items():
        for names, seen in groups:
            if all(seen.get(m, info[m]) == info[m] for m in info):
                names.append(name)
                seen.update(info)
                break
        else:
            groups.append(([name], dict(info)))
    lines = []
    for names, info in groups:
        rows = [
            [
                m,
                str(c.get("kind", "?")),
                str(c.get("source", "?")),
                _pct(c.get("test_accuracy")),
                _pct(c.get("accuracy_here")),
                str(c.get("weights", "?")),
            ]
            for m, c in info.items()
        ]
        header = ["modality", "classifier", "from", "trained acc. (%)", "acc. now (%)", "weights"]
        lines += ["", f"Classifiers that scored {', '.join(names)}:", "", *table(header, rows)]
    return lines


def _step(step: int | None) -> str:
    return "unknown" if step is None else str(step)


def stale_note(metrics: dict) -> list[str]:
    """A warning naming the metrics computed at another checkpoint than the run's now."""
    stale = {k: p for k, p in metrics.get("provenance", {}).items() if p.get("stale")}
    if not stale:
        return []
    steps = ", ".join(f"{name} at step {_step(p.get('step'))}" for name, p in stale.items())
    return [
        f"**Stale:** the results of {', '.join(stale)} come from another checkpoint than the "
        f"run's now (step {_step(metrics.get('step'))}): {steps}. Re-run them with "
        f"`dmvae evaluate RUN --metrics {' '.join(stale)}`.",
        "",
    ]


def unconverged_note(metrics: dict) -> list[str]:
    """What the * beside a probe accuracy means."""
    unconverged = _unconverged(metrics)
    if not unconverged:
        return []
    which = "; ".join(f"{entry} {', '.join(keys)}" for entry, keys in unconverged.items())
    return [
        "",
        f"\\* Not converged: these linear probes stopped at their iteration limit before "
        f"converging ({which}); their accuracies may be low.",
    ]


def while_training_note(metrics: dict) -> list[str]:
    """A warning naming the metrics computed while the run's training was still running."""
    running = {k: p for k, p in metrics.get("provenance", {}).items() if p.get("while_training")}
    if not running:
        return []
    steps = ", ".join(f"{name} at step {_step(p.get('step'))}" for name, p in running.items())
    return [
        f"**Taken while training ran** (`--allow-running`): {steps}; the run was still "
        f"training. Evaluate it again once its training has finished.",
        "",
    ]


def _marks(p: dict) -> str:
    labels = {"stale": "stale", "while_training": "while training", "unconverged": "not converged"}
    marks = [label for key, label in labels.items() if p.get(key)]
    return f" ({', '.join(marks)})" if marks else ""


def provenance_table(metrics: dict) -> list[str]:
    """Per metric: checkpoint step, seed, date and the settings its numbers depend on."""
    provenance = metrics.get("provenance", {})
    if not provenance:
        return []
    rows = [
        [
            name + _marks(p),
            _step(p.get("step")),
            str(p.get("seed", "?")),
            str(p.get("date", "?")),
            ", ".join(f"{k}={v}" for k, v in p.get("settings", {}).items()) or "–",
        ]
        for name, p in provenance.items()
    ]
    header = ["metric", "checkpoint step", "seed", "date (UTC)", "settings"]
    return ["", "Provenance of each metric:", "", *table(header, rows)]


def to_rgb(images: Tensor, size: int) -> Tensor:
    """Images in [0, 1] as RGB of side `size` on the CPU, so modalities tile in one grid."""
    x = images.float().clamp(0, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="nearest")
    return x.cpu()


@torch.inference_mode()
def save_conditional_grid(
    model: MultimodalVAE,
    data: MultimodalData,
    source: str,
    target: str,
    path: Path,
    *,
    n_inputs: int = 10,
    n_styles: int = 8,
    style: Style = "prior",
    generator: torch.Generator | None = None,
) -> Path:
    """The paper's Figure 2: first row the inputs (one per label where possible; shown when
    they are images), then one row of the image modality `target` per style sample; with
    `style="prior"` DMVAE shares one style along each row."""
    rows = _one_per_label(data.labels, n_inputs)
    batch = data.batch(rows, generator)
    kwargs = {}
    if style == "prior" and model.has_style:
        kwargs["styles"] = {target: model.style_prior_sample(n_styles, generator)}
    out = model.conditional_generate(
        batch.inputs,
        [target],
        [source],
        n_per_input=n_styles,
        style=style,
        generator=generator,
        **kwargs,
    )[target]
    n = len(rows)
    samples = out.view(n, n_styles, *out.shape[1:]).transpose(0, 1).reshape(-1, *out.shape[1:])
    if data.is_image(source):  # the inputs above their samples
        size = max(batch.targets[source].shape[-1], out.shape[-1])
        grid = torch.cat([to_rgb(batch.targets[source], size), to_rgb(samples, size)])
    else:
        grid = to_rgb(samples, out.shape[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, str(path), nrow=n, padding=2, pad_value=1.0)
    return path


@torch.inference_mode()
def save_unconditional_grid(
    model: MultimodalVAE,
    path: Path,
    n: int = 10,
    sampler: ContentSampler | None = None,
    generator: torch.Generator | None = None,
    images: Sequence[str] | None = None,
) -> Path:
    """One column per joint sample, one row per image modality (`images`; default all)."""
    samples = model.generate(n, sampler, generator)
    names = model.modalities if images is None else images
    size = max(samples[m].shape[-1] for m in names)
    grid = torch.cat([to_rgb(samples[m], size) for m in names])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, str(path), nrow=n, padding=2, pad_value=1.0)
    return path


def _one_per_label(labels: Tensor, n: int) -> Tensor:
    """The first row of each label in label order, filled up with the next rows to `n`."""
    firsts = [(labels == label).nonzero().flatten()[0] for label in labels.unique()]
    rows = torch.stack(firsts[:n])
    if len(rows) < n:
        rest = torch.ones(len(labels), dtype=torch.bool, device=labels.device)
        rest[rows] = False
        rows = torch.cat([rows, rest.nonzero().flatten()[: n - len(rows)]])
    return rows
