"""The levers of the photo-denoising recipe: the l1 and Charbonnier losses, an exponential moving
average of the weights (``--ema``), and the x8 rotation/reflection ensemble at test time
(``--tta``). The ``nafnet`` family is held to every family's contract in test_model_contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import aekit
from aekit.denoising.fullsize import denoise_image, dihedral, undo_dihedral
from aekit.models import create_model
from aekit.training.objectives import reconstruction_loss
from aekit.training.runs import load_checkpoint, read_metrics

TINY = ["--base-channels", "8", "--latent-dim", "16", "--batch-size", "16", "--limit", "256"]


def test_l1_and_charbonnier_are_the_mean_of_their_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    out, target = torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen)
    d = (out - target).double()
    l1 = reconstruction_loss(out, target, "l1", (-1.0, 1.0))
    assert float(l1) == pytest.approx(float(d.abs().mean()), rel=1e-6)
    ch = reconstruction_loss(out, target, "charbonnier", (-1.0, 1.0))
    eps = 2e-3  # a thousandth of the [-1, 1] range
    assert float(ch) == pytest.approx(float((d.square() + eps**2).sqrt().mean()), rel=1e-6)
    assert float(ch) > float(l1)  # sqrt(d^2 + eps^2) > |d|
    same = reconstruction_loss(out, out, "charbonnier", (-1.0, 1.0))
    assert float(same) == pytest.approx(eps, rel=1e-5)  # smooth at 0: eps, not 0


def test_a_vae_needs_a_likelihood_loss(cli, tmp_path: Path) -> None:
    code, _, err = cli("train", "--data", "shapes", "--arch", "vae", "--loss", "l1",
                       "--out", tmp_path / "r")  # fmt: skip
    assert code != 0 and "a vae's ELBO needs a likelihood" in err and len(err.splitlines()) == 1


def test_training_with_charbonnier_lowers_its_loss(tmp_path: Path) -> None:
    run = aekit.train(tmp_path / "r", data="shapes", epochs=2, loss="charbonnier",
                      base_channels=8, latent_dim=16, limit=256, progress=False)  # fmt: skip
    rows = read_metrics(run)
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert aekit.training.runs.load_config(run).train.loss == "charbonnier"


# ---- --ema --------------------------------------------------------------------------------


def test_ema_is_what_is_saved_and_evaluated(tmp_path: Path) -> None:
    run = aekit.train(tmp_path / "ema", data="shapes", epochs=2, ema=0.9, base_channels=8,
                      latent_dim=16, limit=256, amp=False, progress=False)  # fmt: skip
    ckpt = load_checkpoint(run)
    saved = load_file(run / "model.safetensors")
    averaged = {k.removeprefix("module."): v for k, v in ckpt["ema"].items()
                if k.startswith("module.")}  # fmt: skip
    raw = ckpt["model"]
    assert all(torch.equal(saved[k], averaged[k].contiguous()) for k in saved)
    assert any(not torch.equal(saved[k], raw[k]) for k in saved)  # the average, not the raw
    assert int(ckpt["ema"]["n_averaged"]) == 2 * 256 // 64  # one per step: 4 an epoch
    # the held-out numbers are the saved model's
    again = aekit.evaluate(run, limit=256, amp=False)  # the held-out images training scored
    assert again["mse"] == pytest.approx(read_metrics(run)[-1]["test_mse"], rel=1e-5)


def test_an_ema_run_resumes_as_if_never_stopped(tmp_path: Path) -> None:
    opts = {"data": "shapes", "ema": 0.9, "base_channels": 8, "latent_dim": 16, "limit": 256,
            "amp": False, "progress": False}  # fmt: skip
    whole = aekit.train(tmp_path / "whole", epochs=2, **opts)
    part = aekit.train(tmp_path / "part", epochs=1, **opts)
    aekit.train(part, resume=True, epochs=2, progress=False)
    a, b = load_file(whole / "model.safetensors"), load_file(part / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("decay", ["0", "1", "1.5", "-0.1"])
def test_ema_is_a_decay_between_0_and_1(cli, tmp_path: Path, decay: str) -> None:
    code, _, err = cli("train", "--data", "shapes", "--ema", decay, "--out", tmp_path / "r")
    assert code != 0 and "--ema is a decay between 0 and 1" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


# ---- --tta --------------------------------------------------------------------------------


def test_the_8_turns_are_undone_exactly() -> None:
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    turned = [dihedral(x, k) for k in range(8)]
    assert len({tuple(t.flatten().tolist()) for t in turned}) == 8  # 8 different images
    for k, t in enumerate(turned):
        assert torch.equal(undo_dihedral(t, k), x)


def test_tta_is_the_mean_of_the_turned_back_outputs() -> None:
    torch.manual_seed(0)
    model = create_model(aekit.ModelConfig(arch="unet", in_channels=3, image_size=32,
                                           base_channels=8)).eval()  # fmt: skip
    torch.nn.init.normal_(model.head.weight, std=0.05)  # not the identity it starts as
    noisy = torch.rand(3, 40, 56)
    want = sum(undo_dihedral(denoise_image(model, dihedral(noisy, k), amp=False), k)
               for k in range(8)) / 8  # fmt: skip
    got = denoise_image(model, noisy, amp=False, tta=True)
    assert torch.allclose(got, want, atol=1e-6)  # float32 sums in another order
    assert not torch.allclose(got, denoise_image(model, noisy, amp=False), atol=1e-4)


def test_tta_from_the_command_line(cli, tiny_photo_run, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((64, 48), Image.BICUBIC).save(tmp_path / "p.png")
    code, out, err = cli("denoise", tiny_photo_run, tmp_path / "p.png", "--out", tmp_path / "o",
                         "--add-noise", "gaussian:25", "--tta")  # fmt: skip
    assert code == 0 and "PSNR" in out, err
    code, _, err = cli("eval", tiny_photo_run, "--tta")
    assert code != 0 and "comes with a full-size evaluation" in err
    code, out, err = cli("eval", tiny_photo_run, "--full-size", "--tta", "--json")
    assert code == 0, err


@pytest.fixture(scope="module")
def tiny_photo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for i, (w, h) in enumerate([(72, 48), (48, 72), (64, 64)]):
        small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
        Image.fromarray(small).resize((w, h), Image.BICUBIC).save(root / f"{i}.png")
    return aekit.train(root.parent / "run", data=f"folder:{root}", arch="nafnet",
                       noise="gaussian:25", patch_size=16, epochs=1, base_channels=4,
                       progress=False)  # fmt: skip
