"""Runs named by a Hugging Face Hub reference, "hf://user/name[@revision]": the files a shared
run consists of, their download into the Hugging Face cache, and the rule that a downloaded run
never names code for dmvae to import.

This module sits below `training` (whose `load_run` calls `local_run`), so it imports neither
training nor evaluation; `dmvae.hub` (pushing and pulling) sits above them. `huggingface_hub`
is imported only when a reference is used, since it is an optional extra (`dmvae[hub]`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dmvae.errors import CheckpointError, ConfigError, DmvaeError

SCHEME = "hf://"
# Everything a shared run consists of, and all that is ever downloaded: data (JSON, markdown,
# safetensors, npz without pickles), never code. The names are the run directory's
# (training.state.CHECKPOINT, evaluation's eval/ files); the hub round-trip test checks them.
RUN_FILES = (
    "config.json",
    "checkpoint.safetensors",
    "README.md",
    "eval/metrics.json",
    "eval/metrics.md",
    "eval/gmm.npz",
)
REQUIRED = ("config.json", "checkpoint.safetensors")
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")


class HubError(DmvaeError):
    """The Hugging Face Hub could not serve a request (no such repository, no network, no
    permission)."""


def is_hub_ref(run: str | Path) -> bool:
    """Whether `run` names a run on the Hugging Face Hub rather than a local folder."""
    return isinstance(run, str) and run.startswith(SCHEME)


def parse_ref(ref: str) -> tuple[str, str | None]:
    """ "hf://user/name@revision" -> ("user/name", "revision"); revision None: the newest."""
    repo_id, _, revision = ref.removeprefix(SCHEME).partition("@")
    if not _REPO_ID.match(repo_id) or (revision == "" and "@" in ref):
        raise ConfigError(
            f"{ref!r} is not a Hub run reference: write hf://user/name or hf://user/name@revision"
        )
    return repo_id, revision or None


def huggingface_hub() -> Any:
    """The `huggingface_hub` module, or a one-line error naming the extra that installs it."""
    try:
        import huggingface_hub as hub
    except ImportError as err:
        raise HubError(
            f"runs on the Hugging Face Hub need the optional package huggingface_hub ({err}): "
            'pip install "dmvae[hub]"'
        ) from err
    return hub


def hub_error(err: Exception, what: str) -> HubError:
    """One line for a failed Hub request: what failed, why, and what to do about it."""
    from huggingface_hub import utils as errors  # where every version exports them

    if isinstance(err, errors.RevisionNotFoundError):
        return HubError(f"{what}: no such revision; name a branch, tag or commit of the repository")
    if isinstance(err, errors.RepositoryNotFoundError):
        return HubError(
            f"{what}: no such repository, or it is private: check the name, or log in with "
            "`hf auth login` (or set HF_TOKEN) to reach a private one"
        )
    if isinstance(err, errors.LocalEntryNotFoundError):
        return HubError(
            f"{what}: the Hub cannot be reached and the run is not in the local cache; connect "
            "to the internet once (HF_HUB_OFFLINE=1 then reads the cached copy)"
        )
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    return HubError(f"{what} failed ({message}); check the name, your login and the network")


def failures() -> tuple[type[Exception], ...]:
    """What a failed Hub request raises: the Hub's errors (OSError, ValueError) and, where
    huggingface_hub uses httpx, its network errors."""
    try:
        import httpx
    except ImportError:
        return (OSError, ValueError)
    return (OSError, ValueError, httpx.HTTPError)


def download_run(ref: str) -> Path:
    """The folder in the Hugging Face cache that holds the run `ref` names, downloading the
    run's files (`RUN_FILES`, nothing else) when they are not cached yet."""
    repo_id, revision = parse_ref(ref)
    hub = huggingface_hub()
    from dmvae import __version__

    try:
        folder = hub.snapshot_download(
            repo_id,
            revision=revision,
            allow_patterns=list(RUN_FILES),
            library_name="dmvae",
            library_version=__version__,
        )
    except failures() as err:
        raise hub_error(err, f"downloading {ref}") from err
    folder = Path(folder)
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{ref} holds no dmvae run (it lacks {', '.join(missing)}); share one with "
            "`dmvae hub push RUN_DIR user/name`"
        )
    return folder


def local_run(run: str | Path) -> Path:
    """The local folder of a run: a path as it is, a Hub reference downloaded (`download_run`)."""
    return download_run(run) if is_hub_ref(run) else Path(run)


def code_names(saved: Mapping[str, Any]) -> dict[str, str]:
    """The settings of a config.json that name code dmvae would import ("module:attribute" or
    "file.py:attribute"), by key: the experiment, the model and the data's classifiers."""
    model = saved.get("model")
    data = saved.get("data")
    named = {
        "experiment": saved.get("experiment"),
        "model.name": model.get("name") if isinstance(model, Mapping) else None,
    }
    classifiers = data.get("classifiers") if isinstance(data, Mapping) else None
    if isinstance(classifiers, Mapping):
        named.update({f"data.classifiers.{m}": spec for m, spec in classifiers.items()})
    return {k: v for k, v in named.items() if isinstance(v, str) and ":" in v}


def refuse_code(
    saved: Mapping[str, Any],
    ref: str,
    experiment: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a downloaded config.json that names code: loading a shared run must never run
    code chosen by whoever shared it. `experiment` and `data` are the user's own settings
    (`load_run`'s): an experiment, or data classifiers, given there replace the downloaded ones
    and are not checked."""
    trusted = {"experiment": bool(experiment), "data.classifiers": "classifiers" in (data or {})}
    named = [
        f"{key}={value!r}"
        for key, value in code_names(saved).items()
        if not any(trusted[t] and (key == t or key.startswith(f"{t}.")) for t in trusted)
    ]
    if named:
        raise ConfigError(
            f"{ref}'s config.json names code to import ({', '.join(named)}) and dmvae never "
            "runs code from a download: name the code you trust yourself, with load_run(..., "
            "experiment='module:attribute') or --experiment (and --set data.classifiers=...)"
        )
