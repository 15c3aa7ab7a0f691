"""The paper's whole evaluation of one run directory: coherence, latent classification,
ex-post GMM, FIDs and sample grids, written to RUN_DIR/eval/."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from dmvae.data.pairing import _writable
from dmvae.data.sources import resolve_data_root, user_cache_dir
from dmvae.evaluation import coherence as coh
from dmvae.evaluation.classifiers import load_classifier
from dmvae.evaluation.density import GMMSampler, fit_gmm
from dmvae.evaluation.fid import (
    ClassifierFeatures,
    InceptionFeatures,
    class_conditional_fid,
    fid,
    real_statistics,
)
from dmvae.evaluation.latent import latent_accuracy, style_accuracy
from dmvae.evaluation.report import metrics_markdown, save_conditional_grid, save_unconditional_grid

METRICS = ("coherence", "latent", "gmm", "joint", "fid", "grids")


def default_style(model) -> str:
    """DMVAE draws style from its prior; the baselines sample their posterior (paper, Fig. 2)."""
    return "prior" if model.has_style else "posterior"


def _stats_dir(root: Path) -> Path:
    for d in (root / "dmvae_stats", user_cache_dir() / "stats"):
        if _writable(d):
            return d
    raise OSError("no writable folder for feature statistics")


def _maps(modalities: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    """Cross maps for two modalities, leave-one-out maps for more (the paper's FIDs)."""
    if len(modalities) == 2:
        return [((a,), b) for a in modalities for b in modalities if a != b]
    return [(tuple(m for m in modalities if m != t), t) for t in modalities]


def evaluate_run(
    run_dir: str | Path,
    *,
    metrics: list[str] | None = None,
    num_samples: int = 10000,
    fid_features: str = "inception",
    device: torch.device | str = "cpu",
    batch_size: int = 1000,
    data_root: str | None = None,
    max_test: int | None = None,
    num_real: int | None = None,
    style: str | None = None,
    with_style: bool = False,
    all_subsets: bool | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Evaluate a trained run; returns the metrics and writes eval/metrics.{json,md} and grids.

    Coherence covers every subset -> target map for M > 2 unless `all_subsets=False` (single
    inputs and leave-one-out only). The ex-post GMM is fitted for "gmm" and "joint"; "fid" alone
    reuses a fitted GMM when there is one and otherwise skips the GMM-sampled FIDs.
    """
    from dmvae.experiments import build_data, classifier_kinds
    from dmvae.training import load_run

    run_dir = Path(run_dir)
    wanted = list(metrics or METRICS)
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}: choose from {list(METRICS)}")
    model, config = load_run(run_dir, device)
    if data_root:
        config["data"]["root"] = data_root
    device = next(model.parameters()).device
    root = resolve_data_root(config["data"].get("root"))
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    tick = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tick
        timings[name] = round(time.perf_counter() - tick, 2)
        tick = time.perf_counter()

    test = build_data(config, "test", device)
    test = test.random_subset(max_test, seed)
    train = build_data(config, "train", device)
    kinds = classifier_kinds(config)
    loaded = {
        k: load_classifier(k, root, device, train_if_missing=True) for k in set(kinds.values())
    }
    classifiers = {m: loaded[k] for m, k in kinds.items()}
    lap("load")
    gen = torch.Generator(device=device).manual_seed(seed)
    style = style or default_style(model)
    result: dict = {
        "run": str(run_dir),
        "model": config["model"]["name"],
        "experiment": config["experiment"],
        "modalities": list(model.modalities),
        "style": style,
        "num_samples": num_samples,
        "seed": seed,
    }

    if "coherence" in wanted:
        per_map = coh.conditional_coherence(
            model,
            test,
            classifiers,
            all_subsets=len(model.modalities) > 2 if all_subsets is None else all_subsets,
            batch_size=batch_size,
            style=style,
            generator=gen,
            progress=progress,
        )
        result["coherence"] = {**per_map, **coh.summarise(per_map, model.modalities)}
        lap("coherence")
    if "latent" in wanted:
        result["latent"] = latent_accuracy(model, train, test, seed=seed, with_style=with_style)
        if model.has_style:
            result["latent_style"] = style_accuracy(model, train, test, seed=seed)
        lap("latent")
    gmm = None
    gmm_path = out_dir / "gmm.npz"
    if "gmm" in wanted or ("joint" in wanted and not gmm_path.exists()):
        gmm = fit_gmm(model, train, seed=seed)
        gmm.save(gmm_path)
        lap("gmm")
    elif gmm_path.exists() and any(m in wanted for m in ("joint", "fid", "grids")):
        gmm = GMMSampler.load(gmm_path).to(device)
    if "joint" in wanted:
        result["joint_coherence"] = {
            "prior": coh.joint_coherence(model, classifiers, num_samples, None, generator=gen),
            "gmm": coh.joint_coherence(model, classifiers, num_samples, gmm, generator=gen),
        }
        lap("joint")
    if "fid" in wanted and fid_features != "none":
        result["fid"] = _fids(
            model,
            test,
            classifiers,
            kinds,
            gmm,
            fid_features,
            num_samples,
            num_real,
            root,
            device,
            style,
            gen,
        )
        lap("fid")
    if "grids" in wanted:
        names = model.modalities
        for source, target in [(names[0], names[1]), (names[1], names[0])]:
            save_conditional_grid(
                model,
                test,
                source,
                target,
                out_dir / f"conditional_{source}_to_{target}.png",
                style=style,
                generator=gen,
            )
        save_unconditional_grid(model, out_dir / "unconditional_prior.png", generator=gen)
        if gmm is not None:
            save_unconditional_grid(
                model, out_dir / "unconditional_gmm.png", sampler=gmm, generator=gen
            )
        lap("grids")
    result["seconds"] = timings
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    (out_dir / "metrics.md").write_text(metrics_markdown(result, config["experiment"]))
    return result


@torch.inference_mode()
def _fids(
    model, test, classifiers, kinds, gmm, features, n, num_real, root, device, style, gen
) -> dict:
    """Unconditional (prior and GMM), conditional and class-specific conditional distances."""
    if features == "inception":
        extractors = {m: InceptionFeatures(device) for m in set(kinds.values())}
        extractors = {m: extractors[kinds[m]] for m in model.modalities}
    else:
        extractors = {m: ClassifierFeatures(classifiers[m]) for m in model.modalities}
    stats_dir = _stats_dir(root)

    def real(m: str, digit: int | None = None):
        bank, labels = test.images[m], test.bank_labels[m]
        images = bank if digit is None else bank[labels == digit]
        limit = (
            None if num_real is None else (num_real if digit is None else max(num_real // 10, 2))
        )
        images = images[:limit]
        key = f"{kinds[m]}-test-{'all' if digit is None else digit}-n{len(images)}"
        return real_statistics(stats_dir, key, extractors[m], images.float() / 255)

    out: dict = {"features": features}
    samplers = [("prior", None)] + ([("gmm", gmm)] if gmm is not None else [])
    for name, sampler in samplers:
        chunks = [model.generate(min(1000, n - i), sampler, gen) for i in range(0, n, 1000)]
        for m in model.modalities:
            fake = torch.cat([c[m] for c in chunks])
            out[f"unconditional_{name}/{m}"] = fid(extractors[m], real(m), fake)
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    loo = []
    for subset, target in _maps(model.modalities):
        rows = order[:n]
        fake = torch.cat(
            [
                model.conditional_generate(
                    test.batch(rows[i : i + 1000], gen).inputs,
                    [target],
                    subset,
                    style=style,
                    generator=gen,
                )[target]
                for i in range(0, len(rows), 1000)
            ]
        )
        name = coh.mapping_name(subset, target)
        out[f"conditional/{name}"] = fid(extractors[target], real(target), fake)
        per_class_fake = {}
        for digit in range(10):
            rows_c = order[test.labels[order.to(test.labels.device)].cpu() == digit][
                : max(n // 10, 2)
            ]
            batch = test.batch(rows_c, gen)
            per_class_fake[digit] = model.conditional_generate(
                batch.inputs, [target], subset, style=style, generator=gen
            )[target]
        real_c = {d: real(target, d) for d in range(10)}
        mean, _ = class_conditional_fid(extractors[target], real_c, per_class_fake)
        out[f"class_conditional/{name}"] = mean
        loo.append(mean)
    out["class_conditional_leave_one_out_mean"] = sum(loo) / len(loo)
    return out
