"""Training that never dies silently: loss spikes undone, collapses reported, and the seed's
model learning from its first steps (the output started at the data's mean, He weights)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import aekit
from aekit.data.config import DataConfig
from aekit.metrics import psnr
from aekit.models import Autoencoder, to_model_scale
from aekit.models.config import ModelConfig
from aekit.training import guard as guard_mod
from aekit.training.guard import Diverged, Guard
from aekit.training.report import epoch_line
from aekit.training.runs import load_checkpoint, read_metrics
from aekit.training.splits import training_split
from aekit.training.step import Spread

# a denoiser at a learning rate 250x its default: its loss explodes within the first steps
EXPLODING = {"data": "shapes", "limit": 300, "arch": "unet", "base_channels": 8,
             "noise": "gaussian:25", "batch_size": 16, "lr": 0.5}  # fmt: skip


def test_a_huge_learning_rate_is_undone_halved_and_said(tmp_path: Path, cli) -> None:
    code, _, err = cli("train", "--out", tmp_path / "r", "--epochs", "2", *_flags(EXPLODING))
    assert code == 0, err
    rows = read_metrics(tmp_path / "r")
    spikes = [s for r in rows for s in r.get("spikes", [])]
    assert spikes, "the explosion went unnoticed"
    # each spike went back to an earlier good step and halved the rate
    scales = [s["lr_scale"] for s in spikes]
    assert scales == [0.5**k for k in range(1, len(spikes) + 1)]
    assert all(s["back_to_step"] < s["step"] for s in spikes)
    assert all(s["loss"] is None or s["loss"] > 0 for s in spikes)  # None: not finite
    assert rows[-1]["lr_scale"] == scales[-1]
    # every kept number is finite, and the denoiser ends better than its noisy input
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert rows[-1]["denoised_psnr"] > rows[-1]["noisy_psnr"]
    # said on stderr: a warning per spike, and in the epoch's line
    first = spikes[0]
    assert f"step {first['step']}: the training loss jumped to" in err
    assert f"the weights of step {first['back_to_step']} are back" in err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 2 and "loss spike at step" in lines[0] + lines[1]
    # a resumed run keeps the lowered rate
    code, _, err = cli("train", "--out", tmp_path / "r", "--resume", "--epochs", "3")
    assert code == 0, err
    assert load_checkpoint(tmp_path / "r")["guard"]["lr_scale"] <= scales[-1]
    assert read_metrics(tmp_path / "r")[-1].get("lr_scale", 1.0) <= scales[-1]


def test_the_guard_puts_back_the_last_good_weights_and_optimizer_state() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    probe = torch.tensor(1.0)  # what the fixed batch's loss is (the test sets it)
    g = Guard(model, opt, torch.device("cpu"), 40, lambda: probe)
    assert g.every == 10  # at least 4 checks an epoch

    def train_step(loss_value: float) -> None:
        loss = (model(torch.ones(2, 4)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        g.clip()
        opt.step()
        g.add(torch.tensor(loss_value), 2)

    for _ in range(10):
        train_step(1.0)
    g.check(1)  # good: kept, and its state snapshotted
    good = {k: v.clone() for k, v in model.state_dict().items()}
    good_opt = opt.state_dict()["state"][0]["exp_avg"].clone()
    for _ in range(10):
        train_step(1.0)
    train_step(50.0)  # one step's loss 50x: the interval's mean 5.5x the good one's
    g.check(1)
    assert all(torch.equal(model.state_dict()[k], good[k]) for k in good)
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], good_opt)
    assert g.lr_scale == 0.5 and g.events[0]["step"] == 21 and g.events[0]["back_to_step"] == 10
    # the losses were fine, but the last update broke the weights: the fixed batch tells
    for _ in range(10):
        train_step(1.0)
    probe = torch.tensor(4.0)
    g.check(1)
    assert g.lr_scale == 0.25 and g.events[1]["probe"] == 4.0
    assert all(torch.equal(model.state_dict()[k], good[k]) for k in good)
    loss, entry = g.take_epoch()
    assert loss == 1.0  # the undone steps do not count
    assert entry["lr_scale"] == 0.25 and len(entry["spikes"]) == 2


def test_a_loss_that_never_stops_spiking_is_a_divergence() -> None:
    model = nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters())
    g = Guard(model, opt, torch.device("cpu"), 4, lambda: torch.tensor(1.0))
    with pytest.raises(Diverged, match="spiked 7 times"):
        for _ in range(100):
            g.add(torch.tensor(float("nan")), 1)
            g.check(1)
    assert g.restores == guard_mod.MAX_RESTORES + 1


def test_small_losses_and_slow_rises_are_not_spikes() -> None:
    model = nn.Linear(2, 1)
    # a plain-autoencoder unet copies its input: 1e-9 to 5e-5 is noise, not damage; a KL
    # weight warming up triples the loss over a few checks
    for losses in ([1e-9, 1e-9, 5e-5, 1e-9], [0.1, 0.15, 0.2, 0.25, 0.3]):
        values = iter([losses[0], *losses])
        g = Guard(model, torch.optim.Adam(model.parameters()), torch.device("cpu"), 400,
                  lambda values=values: torch.tensor(next(values)))  # fmt: skip
        for value in losses:
            g.add(torch.tensor(value), 1)
            g.check(1)
        assert g.restores == 0


def test_the_gradient_is_clipped_only_far_above_its_running_mean() -> None:
    model = nn.Linear(1, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    g = Guard(model, opt, torch.device("cpu"), 100, lambda: torch.tensor(1.0))
    for _ in range(20):  # gradient norm 1
        model.weight.grad = torch.ones_like(model.weight)
        g.clip()
    assert float(model.weight.grad) == 1.0 and int(g.clipped) == 0
    model.weight.grad = torch.full_like(model.weight, 100.0)
    g.clip()
    assert float(model.weight.grad) == pytest.approx(guard_mod.CLIP, rel=1e-5)
    assert int(g.clipped) == 1


def test_a_collapse_is_told_from_a_model_whose_output_follows_its_input() -> None:
    images = torch.rand(16, 3, 8, 8)
    same = torch.rand(1, 3, 8, 8).expand(16, -1, -1, -1)
    for output, collapsed in ((same, True), (images * 0.9, False)):
        spread = Spread()
        spread.add(output[:10], images[:10])
        spread.add(output[10:], images[10:])
        assert spread.collapsed() is collapsed
    spread = Spread()  # images that are all one picture: no collapse to speak of
    spread.add(same, same)
    assert not spread.collapsed()


def test_the_epoch_line_says_what_happened() -> None:
    row = {
        "epoch": 2,
        "train_loss": 0.5,
        "test_psnr": 9.44,
        "images_per_s": 80.0,
        "collapsed": True,
        "spikes": [{"step": 7, "back_to_step": 5, "lr_scale": 0.5}],
    }
    line = epoch_line(row, 3)
    assert line.startswith("epoch 2/3: train loss 0.5, held-out PSNR 9.44 dB, 80 images/s")
    assert "loss spike at step 7 undone (back to step 5, learning rate x0.5)" in line
    assert "COLLAPSED: every held-out image gets the same output" in line
    assert epoch_line({**row, "collapsed": False, "spikes": []}, 0, 30, 12.34).startswith(
        "epoch 2 (12.3 of 30 min): "
    )


def test_the_seed_model_started_as_before_collapses_on_mnist_and_says_so(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    # undo both fixes: torch's default weights and a decoder output left where it starts
    monkeypatch.setattr("aekit.models.conv.he_init", lambda module: module)
    monkeypatch.setattr(Autoencoder, "start_at_mean", lambda self, mean: False)
    code, _, err = cli("train", "--data", "mnist", "--data-dir", mnist_dir, "--train-split", "test",
                       "--epochs", "2", "--limit", "3000", "--out", tmp_path / "r")  # fmt: skip
    assert code == 0, err
    rows = read_metrics(tmp_path / "r")
    assert rows[-1]["collapsed"] is True and rows[-1]["test_psnr"] < 10
    assert "COLLAPSED" in next(line for line in err.splitlines() if line.startswith("epoch 2/2"))


def test_the_default_family_learns_mnist_in_three_epochs(
    mnist_dir: Path, tmp_path: Path, cli
) -> None:
    """The command the issue named: 9.44 dB (an all-black output) before; resnet gave 17.77."""
    code, _, err = cli("train", "--data", "mnist", "--data-dir", mnist_dir, "--train-split", "test",
                       "--epochs", "3", "--limit", "3000", "--out", tmp_path / "r")  # fmt: skip
    assert code == 0, err
    rows = read_metrics(tmp_path / "r")
    assert rows[-1]["test_psnr"] >= 17.0 and not any(r.get("collapsed") for r in rows)
    assert all(b["test_psnr"] > a["test_psnr"] for a, b in itertools.pairwise(rows))


def test_a_small_shapes_run_beats_the_mean_image_by_3_db(tmp_path: Path) -> None:
    """1,200 shapes, 3 epochs of batch 64 (57 steps), latent 32, width 16: before, the seed's
    model needed ~200 steps to learn anything and ended near the mean image."""
    run = aekit.train(tmp_path / "r", data="shapes", limit=1200, epochs=3, batch_size=64,
                      latent_dim=32, base_channels=16, progress=False)  # fmt: skip
    full, rows, held = training_split(DataConfig(source="shapes", limit=1200))
    train = full.images if rows is None else full.images[rows]
    mean = train.float().mean(0) / 255
    mean_psnr = psnr(float(((held.images.float() / 255 - mean) ** 2).mean()))
    assert read_metrics(run)[-1]["test_psnr"] >= mean_psnr + 3.0


@pytest.mark.parametrize("arch", ["conv", "keras", "resnet", "vae"])
def test_an_untrained_model_starts_at_the_datas_mean(arch: str) -> None:
    size = 28 if arch == "keras" else 32
    model = Autoencoder(ModelConfig(arch=arch, in_channels=3, image_size=size)).eval()
    u8 = torch.tensor([40.0, 128.0, 230.0])
    layer = model.start_at_mean(to_model_scale(u8, arch))
    assert layer is not None
    with torch.no_grad():  # without the last layer's weights, its bias alone: the mean
        layer.weight.zero_()
        out = model(torch.rand(2, 3, size, size) * 2 - 1).recon
    lo, hi = model.value_range
    got = (out - lo) / (hi - lo) * 255  # (2, 3, S, S) on the 0-255 scale
    assert torch.allclose(got, u8[None, :, None, None].expand_as(got), atol=1e-3)


def test_a_unet_has_no_output_to_start() -> None:
    model = Autoencoder(ModelConfig(arch="unet", in_channels=3, image_size=32))
    assert model.start_at_mean(torch.zeros(3)) is None


def _flags(options: dict) -> list[str]:
    return [str(v) for k, v in options.items() for v in (f"--{k.replace('_', '-')}", v)]
