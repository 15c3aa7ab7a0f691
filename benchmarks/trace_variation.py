"""How far the recorded loss traces (tests/data/loss_trace_v0.json) move on this machine and torch
build: runs each recorded config (12 steps, CPU) and prints, per case and step, the largest
deviation over the logged keys, in the measure tests/test_loss_trace.py bounds: |now - recorded|
over the key's scale, the largest |value| it takes in the recording or 1 if that is smaller
(the traces cross zero, and the TC estimates stay near it). Used to set the test's tolerance
(docs/performance.md, "Loss traces").

    python benchmarks/trace_variation.py
    OMP_NUM_THREADS=1 python benchmarks/trace_variation.py
    # the kernels of a CPU without AVX-512 (ATen, oneDNN and MKL each dispatch on their own):
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python benchmarks/trace_variation.py
    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2 \
        python benchmarks/trace_variation.py
    python benchmarks/trace_variation.py --json dev.json  # every deviation, for a later look
    python benchmarks/trace_variation.py train.lr=0.00101  # what a real change (lr + 1 %) does
    python benchmarks/trace_variation.py --case dmvae-m3 model.gamma=101

Without an importable torchvision (a torch build that the installed torchvision does not fit)
it reads the MNIST files itself, so that any torch build can be measured.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from dmvae.config import RunConfig
from dmvae.data import datasets, sources
from dmvae.settings import parse_assignments
from dmvae.training import train

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO / "tests" / "data" / "loss_trace_v0.json"


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _load_mnist_without_torchvision(root, train: bool, download: bool = False):
    """The MNIST files as `sources.load_mnist` returns them, read with numpy."""
    raw = Path(root) / "MNIST" / "raw"
    images, labels = (raw / name for name in sources.MNIST_FILES[train])
    x = torch.from_numpy(_read_idx(images).copy()).unsqueeze(1).contiguous()
    return x, torch.from_numpy(_read_idx(labels).astype(np.int64))


def machine() -> str:
    """The build and the CPU features torch uses, for the first line."""
    model = ""
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    env = " ".join(
        f"{k}={os.environ[k]}"
        for k in (
            "ATEN_CPU_CAPABILITY",
            "ONEDNN_MAX_CPU_ISA",
            "MKL_ENABLE_INSTRUCTIONS",
            "OMP_NUM_THREADS",
        )
        if k in os.environ
    )
    return (
        f"torch {torch.__version__}, {model or 'CPU'}, capability "
        f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads"
        + (f" [{env}]" if env else "")
    )


def scale(trace: list[dict[str, float]], key: str) -> float:
    """What a deviation of `key` is measured against: its largest |value| in `trace`, at least 1."""
    return max(1.0, *(abs(row[key]) for row in trace))


def deviations(
    data_root: Path, changes: dict | None = None, cases: list[str] | None = None
) -> dict[str, list[dict[str, tuple[float, float]]]]:
    """Per case, per step: {key: (scaled, absolute) deviation from the recording}, with the
    recorded configs changed by `changes` (to see what a real change does)."""
    recorded = json.loads(RECORDED.read_text())
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = f"{tmp}/cache"  # pairings computed afresh, as in the test
        for case in sorted(cases or recorded):
            config = RunConfig.from_dict(recorded[case]["config"]).override(
                {"train.out": f"{tmp}/{case}", "data.root": str(data_root)}
            )
            if changes:
                config = config.override(changes)
            train(config)
            trace = [json.loads(line) for line in Path(tmp, case, "log.jsonl").open()]
            steps = []
            for now, then in zip(trace, recorded[case]["trace"], strict=True):
                row = {}
                for key, value in then.items():
                    if key in ("step", "epoch"):
                        continue
                    diff = abs(now[key] - value)
                    row[key] = (diff / scale(recorded[case]["trace"], key), diff)
                steps.append(row)
            out[case] = steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="data root (default: $DMVAE_DATA, else the tests' folder)")
    parser.add_argument("--json", help="write every deviation to this file")
    parser.add_argument("--case", action="append", help="only this case (repeatable)")
    parser.add_argument(
        "changes", nargs="*", metavar="KEY=VALUE", help="change the recorded configs (train.lr=...)"
    )
    args = parser.parse_args()
    try:
        import torchvision  # noqa: F401
    except Exception:  # a torchvision built for another torch fails with various errors
        datasets.load_mnist = sources.load_mnist = _load_mnist_without_torchvision
    root = Path(args.data or os.environ.get("DMVAE_DATA") or REPO.parent / "shared" / "data")
    result = deviations(root, parse_assignments(args.changes), args.case)
    print(machine())
    print("largest |now - recorded| / scale of the key, per step 1..12")
    for case, steps in result.items():
        print(f"{case:9s}", end="")
        for row in steps:
            print(f" {max(rel for rel, _ in row.values()):7.1e}", end="")
        worst = max(
            (rel, key, i + 1) for i, row in enumerate(steps) for key, (rel, _) in row.items()
        )
        print(f"   worst {worst[0]:.1e} at step {worst[2]} ({worst[1]})")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "deviations": result}))


if __name__ == "__main__":
    main()
