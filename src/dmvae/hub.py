"""Share runs on the Hugging Face Hub (the `dmvae[hub]` extra): `push_run` uploads a finished
run directory with a generated model card, `pull_run` copies a shared run into a local folder
(to evaluate it, which writes into the run's folder). Loading needs neither:
`load_run("hf://user/name")` downloads the run itself (`dmvae.remote`).

A run directory is self-contained (config.json and one safetensors checkpoint), so a shared run
is those files, the model card and the evaluation's results (`remote.RUN_FILES`): data only,
never code, and a downloaded config that names code to import is refused."""

from __future__ import annotations

import filecmp
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dmvae import remote
from dmvae.checkpoints import read_metadata
from dmvae.config import LOCATION, RunConfig
from dmvae.errors import CheckpointError, ConfigError
from dmvae.experiments import get_experiment
from dmvae.files import atomic_path
from dmvae.markdown import table
from dmvae.models.registry import model_title
from dmvae.training import CHECKPOINT, rundir

PAPER = (
    "Imant Daunhawer, Thomas M. Sutter, Ričards Marcinkevičs and Julia E. Vogt, *Self-supervised "
    "Disentanglement of Modality-Specific and Shared Factors Improves Multimodal Generative "
    "Models*, GCPR 2020"
)
# The train settings a model card lists (the others say where and how the run was computed).
TRAIN_KEYS = (
    "epochs",
    "max_steps",
    "batch_size",
    "lr",
    "anneal_epochs",
    "likelihood_scale",
    "seed",
)


def push_run(
    run_dir: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload dmvae run",
) -> str:
    """Upload a trained run to the Hub repository `repo_id` ("user/name", created if needed)
    with a generated model card, and return the reference that loads exactly this upload
    ("hf://user/name@commit"). The run is held (`RUN/.lock`) while its files are copied, so a
    run whose training still runs is refused; the repository's earlier run files are replaced.
    `token`: default, the login of `hf auth login` or $HF_TOKEN."""
    run = Path(run_dir)
    remote.parse_ref(remote.SCHEME + repo_id)  # a malformed name fails before anything runs
    check_run(run)
    hub = remote.huggingface_hub()
    with tempfile.TemporaryDirectory(prefix="dmvae-push-") as staging:
        with rundir.locked(run, "push"):
            card = model_card(run, repo_id)
            for name in remote.RUN_FILES:
                if (run / name).is_file():
                    (Path(staging) / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(run / name, Path(staging) / name)
        (Path(staging) / "README.md").write_text(card)
        api = hub.HfApi(token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                commit_message=commit_message,
                allow_patterns=list(remote.RUN_FILES),
                delete_patterns=list(remote.RUN_FILES),  # no stale results of an earlier push
            )
        except remote.failures() as err:
            raise remote.hub_error(err, f"pushing {run} to {repo_id}") from err
    return f"{remote.SCHEME}{repo_id}@{commit.oid}"


def check_run(run: Path) -> None:
    """Refuse a folder that is not a complete, readable run before anything is uploaded."""
    if not (run / "config.json").is_file():
        raise CheckpointError(f"{run} is not a run directory (no config.json); train it first")
    if not (run / CHECKPOINT).is_file():
        raise CheckpointError(f"{run} has no checkpoint yet; push it once training has written one")
    read_metadata(run / CHECKPOINT)  # a corrupt checkpoint is refused here, not by its users


def model_card(run: Path, repo_id: str) -> str:
    """README.md of a shared run (`check_run`): Hub metadata (library, tags), the model, the
    experiment and its modalities, the settings that define it, how to load it, its metrics.md
    and the paper."""
    try:
        saved = json.loads((run / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{run}/config.json is not valid JSON ({err}); repair it") from err
    config = RunConfig.from_dict(saved)
    full = config.to_dict()
    step = read_metadata(run / CHECKPOINT)["info"]["step"]
    modalities = get_experiment(config.experiment).modalities(config.data)
    title = model_title(config.model)
    ref = f"{remote.SCHEME}{repo_id}"
    tags = ["dmvae", "multimodal-vae", "vae", config.model]
    tags = list(dict.fromkeys(tags + ([config.experiment] if ":" not in config.experiment else [])))
    lines = ["---", "library_name: dmvae", "tags:", *(f"- {t}" for t in tags), "---", ""]
    lines += [f"# {title} on {config.experiment}", ""]
    lines += [
        f"A multimodal VAE trained with dmvae: {title} on "
        f"the `{config.experiment}` experiment, modalities {', '.join(modalities)}, checkpoint "
        f"at training step {step}.",
        "",
    ]
    if remote.code_names(saved):
        lines += [
            f"The run names code of its author's ({', '.join(remote.code_names(saved))}), which "
            "dmvae never imports from a download: name the experiment and classifiers you "
            "trust when you load it (`experiment=` / `--experiment`).",
            "",
        ]
    lines += ["## Settings", ""]
    rows = [[f"model.{k}", _cell(v)] for k, v in full["model"].items() if k != "name"]
    rows += [[f"data.{k}", _cell(v)] for k, v in full["data"].items() if k not in LOCATION]
    rows += [[f"train.{k}", _cell(full["train"][k])] for k in TRAIN_KEYS]
    lines += table(["setting", "value"], rows)
    lines += ["", "## Use it", "", "```python", "import dmvae", ""]
    lines += [f'model, config = dmvae.load_run("{ref}")', "```", "", "```bash"]
    lines += [f"dmvae evaluate {ref} --out runs/{repo_id.rsplit('/', 1)[-1]}", "```", ""]
    lines += [
        f"Pin this version with `{ref}@REVISION` (a commit, branch or tag). The run holds "
        "config.json and a safetensors checkpoint: no code is downloaded or run. Evaluating it "
        "reads the data from your own folder: `--data-root DIR` (`data_root=` in Python).",
        "",
        "## Results",
        "",
    ]
    metrics = run / "eval" / "metrics.md"
    if metrics.is_file():
        lines += [f"##{line}" if line.startswith("#") else line for line in _lines(metrics)]
    else:
        lines += ["Not evaluated before it was shared: `dmvae evaluate` above scores it."]
    if config.model == "dmvae":
        lines += ["", "## Reference", "", PAPER]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return f"`{json.dumps(value)}`"


def _lines(path: Path) -> list[str]:
    return path.read_text().rstrip("\n").splitlines()


def pull_run(
    ref: str,
    out: str | Path,
    experiment: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Path:
    """Copy the run `ref` ("hf://user/name[@revision]") into the folder `out` and return `out`:
    evaluation writes into the run's folder, which in the Hugging Face cache is not yours. A
    config that names code is refused unless `experiment` (and `data["classifiers"]`) give your
    own, which the copy's config.json then names. A folder that already holds this very run is
    kept as it is (with its own evaluations); one that holds another run is refused."""
    snapshot = remote.download_run(ref)
    try:
        saved = json.loads((snapshot / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{ref}'s config.json is not valid JSON ({err}); ask its author to push it again"
        ) from err
    remote.refuse_code(saved, ref, experiment, data)
    if experiment:
        saved["experiment"] = experiment
    if data and "classifiers" in data:
        saved["data"] = {**(saved.get("data") or {}), "classifiers": data["classifiers"]}
    out = Path(out)
    if (out / "config.json").exists():  # written last: a folder without it is redone
        if _same_run(out, snapshot, saved):
            return out
        raise ConfigError(
            f"{out} already holds another run than {ref}; choose another folder, or remove it"
        )
    for name in remote.RUN_FILES:
        if (snapshot / name).is_file() and name != "config.json":
            with atomic_path(out / name) as tmp:
                shutil.copyfile(snapshot / name, tmp)
    with atomic_path(out / "config.json") as tmp:  # last: a folder with it is complete
        tmp.write_text(json.dumps(saved, indent=2))
    return out


def _same_run(out: Path, snapshot: Path, saved: Mapping[str, Any]) -> bool:
    """Whether `out` holds what a pull would write: its config, and its checkpoint byte for byte."""
    try:
        mine = json.loads((out / "config.json").read_text())
        return mine == saved and filecmp.cmp(out / CHECKPOINT, snapshot / CHECKPOINT, shallow=False)
    except (OSError, json.JSONDecodeError):
        return False
