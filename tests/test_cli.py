"""The ``aekit`` command as a user meets it: outputs, files, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aekit

TINY = ["--base-channels", "8", "--latent-dim", "32", "--limit", "256", "--epochs", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dn"
    aekit.train(out, data="shapes", epochs=3, limit=2000, batch_size=32, base_channels=16,
                latent_dim=32, noise="gaussian:25.5", progress=False)  # fmt: skip
    return out


@pytest.fixture
def pngs(tmp_path: Path) -> list[Path]:
    """Two test images as files: one at the model's 32x32 RGB, one 48x40 grayscale."""
    ds = aekit.load_dataset("shapes", "test")
    a = tmp_path / "a.png"
    Image.fromarray(ds.images[0].permute(1, 2, 0).numpy()).save(a)
    b = tmp_path / "b.png"
    Image.fromarray(ds.images[1].float().mean(0).byte().numpy()).resize((48, 40)).save(b)
    return [a, b]


def test_train_cli_prints_where_things_are(cli, tmp_path: Path) -> None:
    code, out, err = cli("train", "--data", "shapes", "--out", tmp_path / "r", *TINY)
    assert code == 0, err
    assert "held-out PSNR" in out and "model.safetensors" in out
    assert (tmp_path / "r" / "model.safetensors").is_file()


def test_eval_json(cli, run_dir: Path) -> None:
    code, out, err = cli("eval", run_dir, "--json", "--limit", "200")
    assert code == 0, err
    got = json.loads(out)
    assert {"mse", "psnr", "ssim", "count"} <= set(got)
    assert got["count"] == 200
    assert got["psnr"] == pytest.approx(-10 * np.log10(got["mse"]), rel=1e-6)
    assert 0 < got["ssim"] <= 1


def test_reconstruct_writes_grid_and_says_what_it_converted(cli, run_dir, pngs, tmp_path) -> None:
    out_png = tmp_path / "grid.png"
    code, out, err = cli("reconstruct", run_dir, *pngs, "--out", out_png)
    assert code == 0, err
    assert Image.open(out_png).size[0] > 64
    assert "b.png" in err and "48" in err  # resized from 48x40
    assert out.count("PSNR") == 2


def test_denoise_improves_psnr(cli, run_dir, pngs, tmp_path) -> None:
    code, out, err = cli(
        "denoise", run_dir, pngs[0], "--out", tmp_path / "clean", "--add-noise", "gaussian:102"
    )
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert files == ["a_denoised.png", "a_noisy.png"]
    assert Image.open(tmp_path / "clean" / "a_denoised.png").size == (32, 32)
    noisy, denoised = (
        float(v) for v in out.split("mean PSNR: noisy ")[1].replace(" dB", "").split(", denoised ")
    )
    assert denoised > noisy


def test_data_describe_and_preview(cli, tmp_path: Path) -> None:
    code, out, _ = cli("data", "describe", "shapes", "--split", "test", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["source"] == "shapes" and info["split"] == "test"
    assert info["shape"] == [3, 32, 32] and info["count"] == 1000 and len(info["classes"]) >= 6
    code, out, err = cli("data", "preview", "shapes", "--out", tmp_path / "g.png", "--count", "16")
    assert code == 0, err
    assert Image.open(tmp_path / "g.png").size[0] > 200


@pytest.mark.parametrize(("args", "message"), [
    (["eval", "{missing}"], "does not exist"),
    (["eval", "{empty}"], "config.json is missing"),
    (["train", "--data", "shapes", "--out", "{run}", "--epochs", "1"], "already holds a run"),
    (["train", "--data", "shapes", "--out", "{new}", "--noise", "gauss:1"], "unknown --noise"),
    (["train", "--data", "shapes", "--out", "{new}", "--arch", "keras"], "28x28"),
    (["train", "--data", "nope", "--out", "{new}"], "nope"),
    (["train", "--data", "shapes", "--out", "{new}", "--epochs", "0"], "positive"),
    (["train", "--data", "shapes", "--out", "{new}", "--device", "cuda"], "cuda"),
    (["train", "--out", "{run}", "--resume", "--lr", "0.5"], "only --epochs, --time-limit and"),
    (["train", "--out", "{new}", "--resume"], "does not exist"),
    (["reconstruct", "{run}", "{missing}", "--out", "{new}.png"], "missing"),
    (["reconstruct", "{run}", "{text}", "--out", "{new}.png"], "text.png"),
    (["denoise", "{run}", "{text}", "--out", "{new}", "--add-noise", "blur:1"], "unknown --add-"),
    (["data", "describe", "shapes", "--split", "nope"], "nope"),
    (["eval", "{run}", "--epochs", "3"], "unrecognized arguments"),
])  # fmt: skip
def test_bad_input_is_one_line_and_nonzero(cli, run_dir, tmp_path, args, message) -> None:
    import torch

    if torch.cuda.is_available() and "cuda" in args:
        pytest.skip("this machine has CUDA")
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.png").write_text("not an image")
    paths = {
        "missing": tmp_path / "missing",
        "empty": tmp_path / "empty",
        "run": run_dir,
        "new": tmp_path / "new",
        "text": tmp_path / "text.png",
    }
    code, _, err = cli(*(a.format(**paths) for a in args))
    assert code != 0
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.png").exists()


def test_corrupt_weights_are_refused(cli, run_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "model.safetensors").write_bytes(b"garbage")
    code, _, err = cli("eval", broken, "--json")
    assert code == 2 and "corrupt" in err and len(err.strip().splitlines()) == 1
    (broken / "model.safetensors").unlink()
    code, _, err = cli("eval", broken, "--json")
    assert code == 2 and "--resume" in err  # its checkpoint can rewrite them
    (broken / "checkpoint.pt").unlink()
    code, _, err = cli("eval", broken, "--json")
    assert code == 2 and "no trained weights" in err


def test_missing_data_offline_says_where_to_put_it(cli, tmp_path, monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    code, _, err = cli("train", "--data", "mnist", "--data-dir", tmp_path / "d", "--out",
                       tmp_path / "r")  # fmt: skip
    assert code == 2
    want = tmp_path / "d" / "mnist" / "train-images-idx3-ubyte.gz"
    assert "https://" in err and str(want) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() and not want.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--data", "shapes", "--out", "{file}"], "is a file, not a folder"),
    (["train", "--data", "shapes", "--out", "{file}/sub"], "is a file, not a folder"),
    (["reconstruct", "{run}", "{img}", "--out", "{dir}"], "ending in .png"),
    (["reconstruct", "{run}", "{img}", "--out", "{dir}/grid.jpg"], "ending in .png"),
    (["reconstruct", "{run}", "{img}", "--out", "{file}/grid.png"], "is a file, not a folder"),
    (["data", "preview", "shapes", "--out", "{dir}"], "ending in .png"),
    (["denoise", "{run}", "{img}", "--out", "{file}"], "is a file, not a folder"),
    (["demo", "--out", "{file}"], "is a file, not a folder"),
    (["eval", "{file}"], "is a file, not a run folder"),
    (["train", "--out", "{run}", "--resume"], "already finished 3 epochs"),
    (["train", "--data", "shapes", "--out", "{dir}/n", "--noise", "gaussian:nan"], "--noise"),
    (["data", "describe", "npz:{dir}"], "is a folder: 'npz:' takes an .npz file"),
    (["data", "describe", "folder:{file}"], "is a file: 'folder:' takes a folder"),
])  # fmt: skip
def test_bad_output_paths_are_one_line(cli, run_dir, pngs, tmp_path, args, message) -> None:
    (tmp_path / "afile").write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    paths = {"file": tmp_path / "afile", "dir": tmp_path, "run": run_dir, "img": pngs[0]}
    code, _, err = cli(*(a.format(**paths) for a in args))
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_switches_and_paths_in_the_saved_config(cli, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "imgs"
    ds = aekit.load_dataset("shapes", "test")
    for i in range(40):
        (folder / ds.classes[int(ds.labels[i])]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(
            folder / ds.classes[int(ds.labels[i])] / f"{i}.png"
        )
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("train", "--data", "folder:imgs", "--out", "r", "--no-amp", *TINY)
    assert code == 0, err
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["train"]["amp"] is False
    assert cfg["data"]["source"] == f"folder:{folder}"
    assert oct((tmp_path / "r" / "model.safetensors").stat().st_mode & 0o777) == "0o644"
    monkeypatch.chdir("/")
    code, out, err = cli("eval", tmp_path / "r", "--json")  # no test split: the carved hold-out
    assert code == 0, err
    got = json.loads(out)
    assert got["split"] == "train" and got["count"] == 4  # 10% of 40 images


def test_resume_accepts_the_same_relative_data_path(cli, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "imgs"
    ds = aekit.load_dataset("shapes", "test")
    folder.mkdir()
    for i in range(30):
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", "folder:imgs", "--out", "r", "--base-channels", "8"]
    code, _, err = cli(*args, "--epochs", "1")
    assert code == 0, err
    code, _, err = cli(*args, "--epochs", "2", "--resume")  # the same flags, one more epoch
    assert code == 0, err
    assert [r["epoch"] for r in aekit.training.runs.read_metrics(tmp_path / "r")] == [1, 2]


def test_python_dash_m_aekit_exits_with_the_commands_code(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "aekit", "eval", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_every_command_group_registers_its_own_parsers() -> None:
    from aekit import cli as commands

    names = set(commands.build_parser()._subparsers._group_actions[0].choices)
    assert names == {"train", "eval", "reconstruct", "denoise", "score", "generate",
                     "interpolate", "export", "data", "embed", "search", "map", "units",
                     "index", "search-eval", "serve", "demo"}  # fmt: skip
    for group in commands.GROUPS:  # each module registers what it runs
        assert callable(group.add_parsers)


def test_images_may_come_after_the_options(cli, run_dir, pngs, tmp_path) -> None:
    from aekit.cli import build_parser

    ns = build_parser().parse_args(["score", "RUN", "--data", "X", "a.png", "--limit", "3", "b"])
    assert (ns.run, ns.source, ns.images, ns.limit) == ("RUN", "X", ["a.png", "b"], 3)
    code, out, err = cli("reconstruct", run_dir, "--out", tmp_path / "g.png", *pngs)
    assert code == 0 and out.count("PSNR") == 2, err
    code, _, err = cli("denoise", run_dir, "--out", tmp_path / "o", pngs[0], "--seed", "1")
    assert code == 0 and (tmp_path / "o" / "a_denoised.png").is_file(), err


@pytest.mark.parametrize(("args", "prog"), [
    (["eval", "RUN", "--bogus"], "aekit eval"),
    (["score", "RUN", "a.png", "--bogus", "1"], "aekit score"),
    (["data", "describe", "shapes", "--bogus"], "aekit data describe"),
    (["--bogus", "eval", "RUN"], "aekit"),  # before any command: the top level
])  # fmt: skip
def test_an_unknown_flag_is_refused_by_the_command_it_was_given_to(cli, args, prog) -> None:
    code, _, err = cli(*args)
    assert code == 2 and err.startswith(f"{prog}: error: "), err
    assert "--bogus" in err and f"(see {prog} --help)" in err and err.count("\n") == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--arch", "vae", "--beta", "-inf"], "--beta must be a number >= 0, got -inf"),
    (["--arch", "vae", "--beta", "-1e-3"], "--beta must be a number >= 0, got -0.001"),
    (["--arch", "vae", "--beta", "-nan"], "--beta must be a number >= 0, got nan"),
    (["--lr", "-inf"], "--lr"),
    (["--seed", "-1e3"], "argument --seed: invalid int value: '-1e3'"),
])  # fmt: skip
def test_a_negative_number_reaches_its_flags_check(cli, tmp_path, args, message) -> None:
    code, _, err = cli("train", "--data", "shapes", "--out", tmp_path / "r", *args)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert "expected one argument" not in err and not (tmp_path / "r").exists()


def test_the_resume_refusal_names_flags_that_exist(cli, run_dir) -> None:
    import re

    from aekit.cli import build_parser

    code, _, err = cli("train", "--out", run_dir, "--resume", "--lr", "0.5")
    assert code == 2 and "--no-compile, --no-amp" in err, err
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    named = re.findall(r"--[a-z][a-z-]*", err.split("only ", 1)[1])
    assert len(named) >= 6 and set(named) <= set(train._option_string_actions), named
