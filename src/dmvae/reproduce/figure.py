"""The paper's Figure 3 from our cells (matplotlib is imported only when a figure is drawn)."""

from __future__ import annotations

from pathlib import Path

from dmvae.models.registry import model_title
from dmvae.reproduce.paired_mnist import Series, paired_mnist_series
from dmvae.reproduce.summary import Results, median_spread, report_order


def plot_figure3(series: Series, path: Path) -> None:
    """The paper's Figure 3: medians with standard-deviation error bars over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    styles = {
        "dmvae": ("o", "C0"),
        "mvae": ("s", "C1"),
        "mmvae": ("^", "C2"),
        "mopoe": ("D", "C3"),
        "mmvaeplus": ("v", "C4"),
    }
    for model in report_order(series):
        per_m = series[model]
        marker, color = styles.get(model, ("x", None))
        for ax, key, scale in ((axes[0], "coherence", 100.0), (axes[1], "fid", 1.0)):
            ms = [k for k in sorted(per_m) if per_m[k][key]]
            if not ms:
                continue
            stats = [median_spread([v * scale for v in per_m[k][key]]) for k in ms]
            ax.errorbar(
                ms,
                [s[0] for s in stats],
                yerr=[s[1] for s in stats],
                marker=marker,
                color=color,
                capsize=3,
                label=model_title(model),
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


def draw_figure3(results: Results, path: Path) -> bool:
    """Plot Figure 3 of the paired-MNIST cells; False (and no file) when there are none."""
    series = paired_mnist_series(results)
    if series:
        plot_figure3(series, path)
    return bool(series)
