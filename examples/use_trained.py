"""Use a trained run from Python: load it, generate one modality from another, draw joint
samples from the ex-post GMM, and encode inputs; the pictures go next to the run.

    python examples/quickstart.py --out runs/quickstart-py      # any paired-MNIST run will do
    python examples/use_trained.py runs/quickstart-py

`dmvae generate`, `dmvae sample` and `dmvae encode` do the same from files (docs/use.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.utils import save_image

from dmvae.inference import saved_gmm
from dmvae.training import load_run


def main(argv: list[str] | None = None) -> dict[str, torch.Tensor]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained paired-MNIST run directory (or hf://user/name)")
    parser.add_argument("--out", help="where the pictures go (default: RUN/examples)")
    args = parser.parse_args(argv)
    out = Path(args.out or Path(args.run) / "examples")
    out.mkdir(parents=True, exist_ok=True)

    model, config = load_run(args.run, "cpu")
    test = config.build_data("test")
    rows = torch.arange(8)
    digits = test.images["m0"][test.index["m0"][rows]]  # uint8 [8, 1, 28, 28], as trained on
    g = torch.Generator().manual_seed(0)

    # m1 generated from m0: 4 samples per input, input-major, each with a new style
    m1 = model.impute({"m0": digits}, "m1", per_input=4, generator=g)["m1"]
    save_image(torch.cat([digits.float() / 255, m1]), out / "m0_to_m1.png", nrow=8)
    # joint samples: content from the ex-post GMM that `dmvae evaluate` fitted, styles from priors
    joint = model.sample(16, saved_gmm(args.run), generator=g)
    save_image(torch.cat([joint["m0"], joint["m1"]]), out / "joint.png", nrow=16)
    # representations: the shared content (the paper's) and each modality's style
    both = model.represent({"m0": digits, "m1": test.images["m1"][test.index["m1"][rows]]}, True)
    for name, value in both.items():
        print(f"{name}: {tuple(value.shape)}")
    print(f"pictures in {out}")
    return {"m1": m1, **{f"joint/{k}": v for k, v in joint.items()}, **both}


if __name__ == "__main__":
    main()
