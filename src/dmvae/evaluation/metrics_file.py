"""eval/metrics.json, merged metric by metric: each registered metric owns its entries
(`Metric.entries`) and has a provenance record (checkpoint step, seed, device, date, the
metrics run before it, the settings its numbers depend on); results of another checkpoint are
kept but marked stale. Written atomically with metrics.md beside it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dmvae.errors import DmvaeError
from dmvae.evaluation.context import EvalContext
from dmvae.evaluation.registry import METRICS, RESERVED, scoring_classifiers, wanted_metrics
from dmvae.evaluation.report import metrics_markdown
from dmvae.evaluation.settings import EvalSettings
from dmvae.files import atomic_path


def read_metrics(path: Path) -> dict:
    """An existing metrics.json (empty when there is none); a clear error if it is unreadable,
    rather than overwriting the results it holds."""
    if not path.exists():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DmvaeError(
            f"{path} cannot be read ({err}); evaluation merges its results into it: repair it, "
            "or move it away to start afresh"
        ) from err
    if not isinstance(metrics, dict):
        raise DmvaeError(f"{path} holds no JSON object; repair it, or move it away")
    return metrics


def kept_provenance(old: dict, ctx: EvalContext) -> dict[str, dict]:
    """The provenance of the old results, each marked stale when its checkpoint step is not the
    run's; a stale saved GMM is deleted. Files written before provenance was recorded get
    `step: None` for the metrics whose entries they hold."""
    if "provenance" in old:
        records = {name: dict(record) for name, record in old["provenance"].items()}
    else:
        records = {
            name: {"step": None}
            for name, metric in METRICS.items()
            if any(k in old for k in metric.entries)
        }
    if not ctx.gmm_path.exists() or records.get("gmm", {}).get("step") != ctx.step:
        ctx.gmm_path.unlink(missing_ok=True)  # fitted on another checkpoint's embeddings
        records.pop("gmm", None)
    for record in records.values():
        if record.get("step") == ctx.step:
            record.pop("stale", None)
        else:
            record["stale"] = True
    return records


RESOLVED = ("style", "all_subsets")
"""Settings whose None means a default that depends on the run (`provenance` records the value
it resolved to)."""


def outdated(old: dict, settings: EvalSettings) -> list[str]:
    """The metrics `settings` asks for that an evaluation has to (re)compute, given the
    metrics.json `old`: those without results, with stale ones, or with results of another
    seed or of other values of the settings they depend on (a resolved setting left None
    matches whatever it resolved to)."""
    records = old.get("provenance", {})
    pending = []
    for name in wanted_metrics(settings):
        record = records.get(name)
        if record is None or record.get("stale") or record.get("seed") != settings.seed:
            pending.append(name)
            continue
        recorded = record.get("settings", {})
        for field in METRICS[name].settings:
            value = getattr(settings, field)
            if not (value is None and field in RESOLVED) and recorded.get(field) != value:
                pending.append(name)
                break
    return pending


def provenance(ctx: EvalContext, name: str, before: Sequence[str]) -> dict:
    """Where the numbers metric `name` just computed come from."""
    s, metric = ctx.settings, METRICS[name]
    effective = {
        "style": ctx.style,
        "all_subsets": len(ctx.model.modalities) > 2 if s.all_subsets is None else s.all_subsets,
    }
    record = {
        "step": ctx.step,
        "seed": s.seed,
        "device": str(ctx.device),
        "date": datetime.now(timezone.utc).isoformat(),
        "after": list(before),
        "settings": {k: effective.get(k, getattr(s, k)) for k in metric.settings},
        **({"while_training": True} if ctx.while_training else {}),
        **ctx.notes.get(name, {}),
    }
    used = scoring_classifiers(ctx, metric)
    if used:
        info = ctx.classifier_info
        record["classifiers"] = {m: info[m] for m in used if m in info}
    return record


def merge(
    old: dict,
    ctx: EvalContext,
    entries: dict,
    ran: Sequence[str],
    skipped: dict[str, str],
    provenance: dict[str, dict],
) -> dict:
    """metrics.json after this evaluation: its header, each metric's entries (new where it ran,
    else the old ones), skip reasons, seconds and provenance per metric, then any other keys
    of the old file."""
    replaced = {key for name in ran for key in METRICS[name].entries}
    kept = {k: v for k, v in old.items() if k not in replaced}
    result = _header(ctx)
    for metric in METRICS.values():
        for key in metric.entries:
            if key in entries or key in kept:
                result[key] = entries[key] if key in entries else kept[key]
    old_skipped = {k: v for k, v in old.get("skipped", {}).items() if k not in ran}
    if old_skipped or skipped:
        result["skipped"] = {**old_skipped, **skipped}
    seconds = {**old.get("seconds", {}), **ctx.timings}
    result["seconds"] = {k: seconds[k] for k in ("load", *METRICS) if k in seconds}
    result["provenance"] = {k: provenance[k] for k in METRICS if k in provenance}
    owned = {key for metric in METRICS.values() for key in metric.entries}
    result.update((k, v) for k, v in kept.items() if k not in RESERVED and k not in owned)
    return result


def write_metrics(ctx: EvalContext, result: dict[str, Any]) -> None:
    """eval/metrics.json and metrics.md (the experiment's table for one run), atomically."""
    with atomic_path(ctx.out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    with atomic_path(ctx.out_dir / "metrics.md") as tmp:
        tmp.write_text(metrics_markdown(result, ctx.run_table))


def _header(ctx: EvalContext) -> dict:
    """What the latest evaluation was: each metric's own settings are in its provenance."""
    return {
        "run": str(ctx.run_dir),
        "model": ctx.config.model,
        "experiment": ctx.config.experiment,
        "modalities": list(ctx.model.modalities),
        "style": ctx.style,
        "num_samples": ctx.settings.num_samples,
        "seed": ctx.settings.seed,
        "step": ctx.step,
    }
