"""Inference from files and from Python on tiny trained runs: `dmvae generate`, `sample` and
`encode` against their Python twins `impute`, `sample` and `represent` (same seed, same
outputs), the input formats (tensors, PNGs, folders), and each bad input's one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import bars, write_bars_folder
from PIL import Image
from torchvision.utils import save_image

from dmvae.cli import main
from dmvae.errors import ConfigError, DataError
from dmvae.inference import run_signature, saved_gmm
from dmvae.training import load_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A DMVAE and an MVAE run of 4 steps on a folder of bars, and 5 test inputs as files."""
    root = tmp_path_factory.mktemp("inference")
    write_bars_folder(root / "data", names=("img", "vec"), labels=False)
    out = {}
    sizes = {"dmvae": ["model.content_dim=6", "model.style_dim=2"], "mvae": ["model.latent_dim=6"]}
    for model, settings in sizes.items():
        args = ["train", "--experiment", "folder", "--model", model, "--out", str(root / model)]
        args += ["--set", f"data.path={root / 'data'}", "--batch-size", "64", "--no-progress"]
        for setting in settings:
            args += ["--set", setting]
        assert main([*args, "--device", "cpu"]) == 0
        out[model] = root / model
    inputs = bars(5, 2, ("img", "vec"))[0]
    np.save(root / "img.npy", inputs["img"].numpy())
    np.save(root / "vec.npy", inputs["vec"].numpy())
    np.save(root / "small.npy", inputs["img"][:, :, :4, :4].numpy())
    (root / "pngs").mkdir()
    for i, image in enumerate(inputs["img"]):
        save_image(image.float() / 255, str(root / "pngs" / f"{i}.png"))
    return root, out, inputs


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """An inference command on the CPU (where the Python twins run here), its exit status,
    stdout and stderr."""
    code = main([*map(str, args), "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cpu_generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_generate_from_a_png_folder_matches_impute(runs, tmp_path, capsys):
    """DMVAE: images read from PNGs (lossless) give what the Python twin gives on the tensors;
    a non-image target gets a tensor file and no PNGs, the grid shows the inputs."""
    root, run, inputs = runs
    code, out, err = run_cli(
        capsys, "generate", run["dmvae"], "--given", f"img={root / 'pngs'}", "--to", "vec",
        "--per-input", "3", "--out", tmp_path / "g",
    )  # fmt: skip
    assert code == 0, err
    model, _ = load_run(run["dmvae"])
    expected = model.impute({"img": inputs["img"]}, "vec", per_input=3, generator=cpu_generator())
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "g" / "vec.npy")), expected["vec"])
    assert expected["vec"].shape == (15, 4)
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["grid.png", "vec.npy"]
    assert Image.open(tmp_path / "g" / "grid.png").size == (1 * 10 + 2, 5 * 10 + 2)


def test_generate_images_with_a_sampled_latent_matches_impute(runs, tmp_path, capsys):
    """MVAE from a .npy tensor: one PNG per sample, the grid's rows hold each input's samples,
    and a sampled latent differs between the samples of one input, the mean does not."""
    root, run, inputs = runs
    code, _, err = run_cli(
        capsys, "generate", run["mvae"], "--given", f"vec={root / 'vec.npy'}", "--to", "img",
        "--per-input", "2", "--latent", "sample", "--seed", "3", "--out", tmp_path / "g",
    )  # fmt: skip
    assert code == 0, err
    model, _ = load_run(run["mvae"])
    sampled = model.impute({"vec": inputs["vec"]}, ["img"], 2, "sample", None, cpu_generator(3))
    written = torch.from_numpy(np.load(tmp_path / "g" / "img.npy"))
    assert torch.equal(written, sampled["img"]) and written.shape == (10, 1, 8, 8)
    pngs = sorted(p.name for p in (tmp_path / "g" / "img").iterdir())
    assert pngs[:3] == ["00000_00.png", "00000_01.png", "00001_00.png"] and len(pngs) == 10
    png = torch.from_numpy(np.array(Image.open(tmp_path / "g" / "img" / "00001_01.png")))
    assert png.shape == (8, 8, 3)  # save_image writes RGB
    assert torch.allclose(png[..., 0].float() / 255, written[3, 0], atol=1 / 255 + 1e-6)
    assert not torch.equal(sampled["img"][0], sampled["img"][1])
    mean = model.impute({"vec": inputs["vec"]}, "img", per_input=2, latent="mean")["img"]
    assert torch.equal(mean[0], mean[1])


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # 100 components, 4 bars
def test_sample_from_the_prior_and_the_saved_gmm_match_the_python_twin(runs, tmp_path, capsys):
    root, run, _ = runs
    code, _, err = run_cli(capsys, "sample", run["dmvae"], "--num", "4", "--from", "gmm",
                           "--out", tmp_path / "none")  # fmt: skip
    assert code == 1 and not (tmp_path / "none").exists()
    assert err.strip().count("\n") == 0 and "run `dmvae evaluate" in err and "--metrics gmm" in err
    model, _ = load_run(run["dmvae"])
    with pytest.raises(DataError, match="no ex-post GMM"):
        saved_gmm(run["dmvae"])
    assert main(["evaluate", str(run["dmvae"]), "--metrics", "gmm", "--device", "cpu"]) == 0
    capsys.readouterr()
    for source, content in (("prior", None), ("gmm", saved_gmm(run["dmvae"]))):
        out = tmp_path / source
        code, _, err = run_cli(
            capsys, "sample", run["dmvae"], "--num", "4", "--from", source, "--out", out
        )
        assert code == 0, err
        expected = model.sample(4, content, cpu_generator())
        for m in ("img", "vec"):
            assert torch.equal(torch.from_numpy(np.load(out / f"{m}.npy")), expected[m])
        assert len(list((out / "img").iterdir())) == 4 and (out / "grid.png").exists()
        assert not (out / "vec").exists()
    again = ["sample", run["dmvae"], "--num", "4", "--out", tmp_path / "prior"]
    assert run_cli(capsys, *again)[0] == 1 and run_cli(capsys, *again, "--overwrite")[0] == 0
    metrics = run["dmvae"] / "eval" / "metrics.json"
    record = json.loads(metrics.read_text())
    record["provenance"]["gmm"]["step"] = 999  # as if the run had trained on since
    metrics.write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"fitted at step 999, the checkpoint is at step \d+: run"):
        saved_gmm(run["dmvae"])


def test_encode_writes_the_representation_the_python_twin_gives(runs, tmp_path, capsys):
    root, run, inputs = runs
    given = ["--given", f"img={root / 'img.npy'}", f"vec={root / 'vec.npy'}"]
    model, _ = load_run(run["dmvae"])
    expected = model.represent(inputs, with_style=True)
    assert expected["shared"].shape == (5, 6)
    assert expected["style/img"].shape == expected["style/vec"].shape == (5, model.style_dim)
    assert torch.equal(expected["shared"], model.embed(
        {m: x.float() / (255 if x.dtype == torch.uint8 else 1) for m, x in inputs.items()}
    ))  # fmt: skip
    for name, style in (("e.npy", []), ("e.npz", ["--with-style"]), ("e.pt", ["--with-style"])):
        code, _, err = run_cli(capsys, "encode", run["dmvae"], *given, *style,
                               "--out", tmp_path / name)  # fmt: skip
        assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "e.npy"), expected["shared"].numpy())
    with np.load(tmp_path / "e.npz") as f:
        assert {k: torch.from_numpy(f[k]) for k in f}.keys() == expected.keys()
        assert all(np.array_equal(f[k], v.numpy()) for k, v in expected.items())
    saved = torch.load(tmp_path / "e.pt", weights_only=True)
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], v) for k, v in expected.items())
    code, _, err = run_cli(capsys, "encode", run["mvae"], "--given", f"vec={root / 'vec.npy'}",
                           "--out", tmp_path / "mvae.npy")  # fmt: skip
    assert code == 0, err
    assert np.load(tmp_path / "mvae.npy").shape == (5, 6)


def test_images_of_another_size_or_colour_are_resized_on_request(runs, tmp_path, capsys):
    root, run, inputs = runs
    (tmp_path / "big").mkdir()
    rgb = inputs["img"][:2].float().div(255).repeat(1, 3, 1, 1)
    for i, image in enumerate(torch.nn.functional.interpolate(rgb, size=(16, 16))):
        save_image(image, str(tmp_path / "big" / f"{i}.png"))
    args = ["generate", run["dmvae"], "--given", f"img={tmp_path / 'big'}", "--to", "vec"]
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "refused")
    assert code == 1 and err.count("\n") == 1
    assert "is 16x16 pixels, the model was trained on 8x8: resize it, or pass --resize" in err
    code, out, err = run_cli(capsys, *args, "--resize", "--out", tmp_path / "resized")
    assert code == 0, err
    assert np.load(tmp_path / "resized" / "vec.npy").shape == (2, 4)


BAD_GENERATE = {
    "unknown given": (["--given", "txt=x.npy", "--to", "vec"], "unknown given modalities"),
    "unknown target": (["--given", "vec=VEC", "--to", "audio"], "unknown target modalities"),
    "target given": (["--given", "vec=VEC", "--to", "vec"], "both given and targets"),
    "not MODALITY=PATH": (["--given", "VEC", "--to", "img"], "is not MODALITY=PATH"),
    "wrong shape": (["--given", "img=SMALL", "--to", "vec"], "got shape [5, 1, 4, 4]"),
    "wrong dtype": (["--given", "vec=IMG", "--to", "img"], "got torch.uint8: pass floating"),
    "empty folder": (["--given", "img=EMPTY", "--to", "vec"], "holds no .png/.jpg/.jpeg"),
    "image for a vector": (["--given", "vec=PNG", "--to", "img"], "is not an image modality"),
    "latent DMVAE lacks": (
        ["--given", "vec=VEC", "--to", "img", "--latent", "sample"],
        "DMVAE cannot impute with latent='sample'",
    ),  # fmt: skip
    "no K": (["--given", "vec=VEC", "--to", "img", "--per-input", "0"], "at least 1"),
}


@pytest.mark.parametrize("case", BAD_GENERATE)
def test_bad_generate_inputs_get_one_line(case, runs, tmp_path, capsys):
    root, run, _ = runs
    (tmp_path / "empty").mkdir()
    places = {"VEC": root / "vec.npy", "IMG": root / "img.npy", "EMPTY": tmp_path / "empty"}
    places.update(PNG=root / "pngs" / "0.png", SMALL=root / "small.npy")
    args, message = BAD_GENERATE[case]
    for key, path in places.items():
        args = [a.replace(key, str(path)) if "=" in a or a == key else a for a in args]
    code, _, err = run_cli(capsys, "generate", run["dmvae"], *args, "--out", tmp_path / "o")
    assert code in (1, 2) and err.count("\n") == 1 and err.startswith("dmvae: error: ")
    assert message in err
    assert not (tmp_path / "o").exists()


def test_bad_options_for_the_model_and_bad_outputs_get_one_line(runs, tmp_path, capsys):
    root, run, inputs = runs
    vec = ["--given", f"vec={root / 'vec.npy'}"]
    cases = [
        (["generate", run["mvae"], *vec, "--to", "img", "--style", "mean", "--out", tmp_path / "o"],
         "MVAE has no modality-specific style to set: drop style (--style)"),
        (["encode", run["mvae"], *vec, "--with-style", "--out", tmp_path / "e.npz"],
         "MVAE has no modality-specific style: drop with_style (--with-style)"),
        (["encode", run["dmvae"], *vec, "--with-style", "--out", tmp_path / "e.npy"],
         "a .npy file holds one array; name a .npz or .pt file"),
        (["encode", run["dmvae"], *vec, "--out", tmp_path / "e.csv"],
         "unknown output format .csv"),
        (["sample", run["dmvae"], "--num", "0", "--out", tmp_path / "o"], "at least 1, got 0"),
        (["sample", run["dmvae"], "--num", "2", "--out", root / "vec.npy"], "is a file"),
        (["sample", run["dmvae"], "--num", "2", "--out", root], "is not empty"),
    ]  # fmt: skip
    for args, message in cases:
        code, _, err = run_cli(capsys, *args)
        assert code in (1, 2) and err.count("\n") == 1 and message in err, (args, err)


def test_the_python_twins_refuse_bad_input_with_the_same_messages(runs):
    _, run, inputs = runs
    dmvae, _ = load_run(run["dmvae"])
    with pytest.raises(ConfigError, match="both given and targets"):
        dmvae.impute(inputs, "vec")
    with pytest.raises(ConfigError, match="a target's posterior needs the target itself"):
        dmvae.impute({"img": inputs["img"]}, "vec", style="posterior")
    with pytest.raises(DataError, match=r"takes uint8 \[N, 1, 8, 8\] as in training, got torch.f"):
        dmvae.impute({"img": inputs["img"].float()}, "vec")
    with pytest.raises(DataError, match="different numbers of rows"):
        dmvae.represent({"img": inputs["img"], "vec": inputs["vec"][:2]})
    with pytest.raises(ConfigError, match="unknown given modalities"):
        dmvae.represent({"audio": inputs["vec"]})
    # grayscale [N, H, W] and a single sample are taken as rows of the training shape
    one = dmvae.represent({"img": inputs["img"][:, 0]})["shared"]
    assert torch.allclose(one[:1], dmvae.represent({"img": inputs["img"][0]})["shared"])
    style_mean = dmvae.impute({"img": inputs["img"]}, "vec", per_input=2, style="mean")["vec"]
    assert torch.equal(style_mean[0], style_mean[1])  # no randomness left in DMVAE's imputation


def test_a_run_without_a_recorded_signature_reads_it_off_its_data(runs):
    """Runs trained before checkpoints recorded the data signature take it from the test split."""
    _, run, _ = runs
    model, config = load_run(run["mvae"])
    recorded = model.data_signature
    assert {m: (s.shape, s.dtype) for m, s in recorded.items()} == {
        "img": ((1, 8, 8), "uint8"),
        "vec": ((4,), "float32"),
    }
    model.data_signature = None
    assert run_signature(model, config) == recorded and model.data_signature == recorded
