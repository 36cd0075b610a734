"""Every run folder carries a model card, ``RUN/README.md``, in the Hugging Face format."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

import aekit
from aekit.training.card import train_command
from aekit.training.runs import read_metrics

yaml = pytest.importorskip("yaml")
TINY = {"base_channels": 8, "latent_dim": 16, "limit": 128, "device": "cpu", "amp": False}


def _card(run: Path) -> tuple[dict, str]:
    text = (run / "README.md").read_text()
    front, body = re.fullmatch(r"---\n(.*?)\n---\n(.*)", text, flags=re.S).groups()
    return yaml.safe_load(front), body


def test_a_run_has_a_card_rewritten_at_each_epoch(tmp_path: Path, cli) -> None:
    run = aekit.train(tmp_path / "denoiser", "shapes", epochs=1, noise="gaussian:25", **TINY)
    meta, body = _card(run)
    assert meta["library_name"] == "aekit" and meta["pipeline_tag"] == "image-to-image"
    assert {"aekit", "autoencoder", "conv", "denoising"} <= set(meta["tags"])
    assert "datasets" not in meta  # shapes is not on the Hugging Face Hub
    assert json.loads(re.search(r"```json\n(.*?)```", body, re.S).group(1)) == {
        k: v for k, v in json.loads((run / "config.json").read_text()).items() if k != "version"
    }

    code, _, err = cli("train", "--out", run, "--resume", "--epochs", 2)
    assert code == 0, err
    meta, body = _card(run)
    last = read_metrics(run)[-1]
    assert "for 2 epochs" in body and "| held-out numbers after epoch 2 | value |" in body
    assert f"| held-out PSNR (dB) | {last['test_psnr']:,.2f} |" in body
    assert f"| denoised PSNR (dB) | {last['denoised_psnr']:,.2f} |" in body
    picture = re.search(r"!\[[^]]*\]\(([^)]+)\)", body).group(1)
    assert picture == "samples/epoch_002.png" and (run / picture).is_file()


def test_the_cards_command_trains_the_same_config(tmp_path: Path, cli) -> None:
    run = aekit.train(tmp_path / "vae", "shapes", arch="vae", epochs=1, beta=0.5,
                      augment="hflip", **TINY)  # fmt: skip
    meta, body = _card(run)
    assert "variational-autoencoder" in meta["tags"]
    command = re.search(r"```bash\n(aekit train .*?)\n```", body).group(1)
    assert command == train_command(aekit.training.runs.load_config(run), "vae")
    args = shlex.split(command)[2:]
    args[args.index("--out") + 1] = str(tmp_path / "again")
    code, _, err = cli("train", *args)
    assert code == 0, err
    assert (tmp_path / "again" / "config.json").read_text() == (run / "config.json").read_text()


def test_a_copied_run_folder_loads_from_anywhere(tmp_path: Path) -> None:
    run = aekit.train(tmp_path / "run", "shapes", epochs=1, **TINY)
    copy = shutil.copytree(run, tmp_path / "elsewhere" / "shared-model")
    images = aekit.load_dataset("shapes", "test", limit=4).images
    assert torch.equal(aekit.reconstruct(aekit.load(copy), images),
                       aekit.reconstruct(aekit.load(run), images))  # fmt: skip
    assert (copy / "README.md").read_text().startswith("---\nlibrary_name: aekit\n")


def test_hub_datasets_are_named_and_time_limited_runs_say_their_limit() -> None:
    cfg = aekit.make_config("mnist", arch="keras", time_limit=5.0)
    command = train_command(cfg, "runs/m")
    assert command.startswith("aekit train --data mnist --arch keras ")
    assert command.endswith(" --time-limit 5 --out runs/m")  # epochs and schedule follow it
    assert "--epochs" not in command and "--schedule" not in command
    from aekit.training.card import front_matter

    assert '- "ylecun/mnist"' in front_matter(cfg).splitlines()


def test_the_cards_commands_run_when_pasted_for_an_odd_folder_name(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aekit.cli import build_parser

    run = aekit.train(tmp_path / "-my run", "shapes", epochs=1, **TINY)
    _, body = _card(run)
    monkeypatch.chdir(tmp_path)  # beside the folder, where a reader pastes them
    uses = re.findall(r"`(aekit (?:eval|denoise|export) [^`]*)`", body)
    assert len(uses) == 3
    for line in uses:
        ns = build_parser().parse_args(shlex.split(line)[1:])
        given = ns.run if hasattr(ns, "run") else ns.paths[0]  # denoise: [RUN] PHOTO ...
        assert Path(given).resolve() == run.resolve(), line
    code, _, err = cli(*shlex.split(uses[0])[1:])  # aekit eval
    assert code == 0, err
    command = re.search(r"```bash\n(aekit train .*?)\n```", body).group(1)
    (tmp_path / "else").mkdir()
    monkeypatch.chdir(tmp_path / "else")
    code, _, err = cli(*shlex.split(command)[1:])
    assert code == 0, err
    assert (tmp_path / "else" / "-my run" / "config.json").is_file()
