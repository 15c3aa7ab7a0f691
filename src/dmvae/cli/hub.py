"""`dmvae hub push RUN_DIR user/name` and `dmvae hub pull hf://user/name --out DIR`: share runs
on the Hugging Face Hub (needs dmvae[hub])."""

from __future__ import annotations

import argparse

from dmvae.cli.options import signature_default


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dmvae.hub import push_run

    p = sub.add_parser(
        "hub",
        help="share runs on the Hugging Face Hub (push, pull)",
        description=(
            "Share a trained run on the Hugging Face Hub: config.json, the safetensors "
            "checkpoint, eval/ results and a generated model card; no code. Log in first with "
            "`hf auth login` (or set HF_TOKEN). Every command that takes a run (evaluate, "
            "load_run in Python) also takes hf://user/name[@revision]."
        ),
    )
    commands = p.add_subparsers(
        dest="hub_command", metavar="COMMAND", required=True, help="what to do (required):"
    )
    push = commands.add_parser(
        "push",
        help="upload a trained run with a model card",
        description="Upload a trained run to a Hub model repository, created if needed; the "
        "repository's earlier run files are replaced. A run whose training still runs is refused.",
    )
    push.add_argument("run_dir", metavar="RUN_DIR", help="the run directory `dmvae train` wrote")
    push.add_argument("repo_id", metavar="USER/NAME", help="the Hub repository to upload to")
    push.add_argument(
        "--private",
        action="store_true",
        help="create the repository private (default: public; an existing one keeps its setting)",
    )
    push.add_argument(
        "--message",
        default=signature_default(push_run, "commit_message"),
        help="the commit message (default: %(default)r)",
    )
    push.set_defaults(func=run_push)
    pull = commands.add_parser(
        "pull",
        help="copy a shared run into a local folder",
        description="Copy a shared run into a local folder, where `dmvae evaluate DIR` scores it. "
        "A run whose config names code to import is refused unless --experiment names yours.",
    )
    pull.add_argument("ref", metavar="hf://USER/NAME[@REVISION]", help="the shared run")
    pull.add_argument(
        "--out", required=True, metavar="DIR", help="the folder to copy it into (required)"
    )
    pull.add_argument(
        "--experiment",
        metavar="NAME",
        help="the experiment object you trust for a run trained on its author's own, as "
        "'package.module:attribute' or 'file.py:attribute' (default: the name in config.json)",
    )
    pull.set_defaults(func=run_pull)


def run_push(args: argparse.Namespace) -> int:
    from dmvae.hub import push_run

    ref = push_run(args.run_dir, args.repo_id, private=args.private, commit_message=args.message)
    name = ref.partition("@")[0]
    print(f"pushed {args.run_dir} to {name}: load it with dmvae.load_run({name!r}) or")
    print(f"`dmvae evaluate {name} --out DIR`; this very upload is {ref}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from dmvae.hub import pull_run

    out = pull_run(args.ref, args.out, experiment=args.experiment)
    print(f"{args.ref} is in {out}; evaluate it with `dmvae evaluate {out}`")
    return 0
