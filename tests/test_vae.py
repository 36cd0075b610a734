"""The vae family: its KL term, sampling from the step's generator, warm-up, its metrics."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import aekit
from aekit import AekitError, ModelConfig
from aekit.models import create_model
from aekit.models.vae import kl_divergence as our_kl
from aekit.models.vae import slerp
from aekit.training.objectives import nll_per_image
from aekit.training.runs import read_metrics
from aekit.training.step import Objective, step, warmup_fraction


def vae(body: str = "conv", latent: int = 16) -> aekit.Autoencoder:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="vae", body=body, in_channels=3, image_size=16, base_channels=8,
                      latent_dim=latent)  # fmt: skip
    return create_model(cfg)


def test_kl_is_the_gaussian_kl_to_the_standard_normal() -> None:
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    want = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(our_kl(mean, logvar), want)
    assert our_kl(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0


@pytest.mark.parametrize("body", ["conv", "resnet"])
def test_forward_samples_with_eps_and_takes_the_mean_without(body: str) -> None:
    model = vae(body).eval()
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    mean, logvar = model.posterior(x)
    assert torch.equal(model(x).code, mean) and torch.equal(model.encode(x), mean)
    assert torch.equal(model(x, torch.zeros_like(mean)).recon, model(x).recon)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1))
    want = model.decode(mean + (0.5 * logvar).exp() * eps)
    torch.testing.assert_close(model(x, eps).recon, want)
    kl = model(x).terms["kl"]
    torch.testing.assert_close(kl, our_kl(mean, logvar).mean() / (3 * 16 * 16))


def test_the_training_step_draws_from_its_generator_and_weights_kl_by_beta() -> None:
    model = vae()
    batch = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)

    def run(beta: float, seed: int, warm: float = 1.0, training: bool = True) -> torch.Tensor:
        obj = Objective("mse", beta=beta)
        gen = torch.Generator().manual_seed(seed)
        return step(model, batch, obj, gen, training=training, warm=warm).loss

    assert torch.equal(run(1.0, 0), run(1.0, 0)) and not torch.equal(run(1.0, 0), run(1.0, 1))
    assert torch.equal(run(1.0, 0, training=False), run(1.0, 1, training=False))  # the mean
    with torch.no_grad():
        # any input but a blank one (zero biases map it to the prior's mean: a KL of 0); the
        # term's weight is what we test
        out = model(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert out.terms["kl"] > 0
    gap = run(2.0, 0) - run(0.0, 0)
    torch.testing.assert_close(gap, 2 * (run(1.0, 0) - run(0.0, 0)))
    torch.testing.assert_close(run(2.0, 0, warm=0.25) - run(0.0, 0), gap / 4)


def test_warmup_rises_linearly_over_its_epochs() -> None:
    assert warmup_fraction(1, 0, 4, 0) == 1.0
    assert [warmup_fraction(1, i, 4, 2) for i in range(4)] == [1 / 8, 2 / 8, 3 / 8, 4 / 8]
    assert warmup_fraction(2, 3, 4, 2) == 1.0 and warmup_fraction(5, 0, 4, 2) == 1.0


def test_nll_is_the_gaussian_and_bernoulli_log_likelihood() -> None:
    g = torch.Generator().manual_seed(0)
    out, target = torch.rand(3, 1, 4, 4, generator=g), torch.rand(3, 1, 4, 4, generator=g)
    gauss = -Normal(out, math.sqrt(0.5)).log_prob(target).sum(dim=(1, 2, 3))
    torch.testing.assert_close(nll_per_image(out, target, "mse", (0.0, 1.0)), gauss)
    bern = -(target * out.log() + (1 - target) * (1 - out).log()).sum(dim=(1, 2, 3))
    torch.testing.assert_close(nll_per_image(out * 2 - 1, target * 2 - 1, "bce", (-1.0, 1.0)),
                               bern)  # fmt: skip


def test_slerp_keeps_the_ends_and_the_norm() -> None:
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    torch.testing.assert_close(path.norm(dim=1), torch.full((5,), 3.0))
    torch.testing.assert_close(path[2], torch.tensor([3.0, 3.0]) / math.sqrt(2))
    torch.testing.assert_close(slerp(a, a, torch.tensor([0.5])), a[None])  # parallel: linear


def test_a_vae_run_reports_kl_and_the_negative_elbo(tmp_path) -> None:
    run = aekit.train(tmp_path / "v", "shapes", arch="vae", epochs=2, limit=128, image_size=16,
                      base_channels=8, latent_dim=8, kl_warmup=1, beta=0.5,
                      progress=False)  # fmt: skip
    rows = read_metrics(run)
    assert all(r["kl"] > 0 and r["nelbo"] > r["kl"] for r in rows)
    ev = aekit.evaluate(run, limit=64)
    pixels = 3 * 16 * 16  # the negative ELBO is at least the Gaussian decoder's constant
    assert ev["nelbo"] > 0.5 * pixels * math.log(math.pi) and ev["kl"] > 0
    cfg = aekit.load(run).config
    assert (cfg.arch, cfg.body, cfg.latent_dim) == ("vae", "resnet", 8)
    a = aekit.embed(aekit.load(run), aekit.load_dataset("shapes", "test", image_size=16).subset(
        slice(0, 20)))  # fmt: skip
    b = aekit.embed(aekit.load(run), aekit.load_dataset("shapes", "test", image_size=16).subset(
        slice(0, 20)))  # fmt: skip
    assert (a.vectors == b.vectors).all()  # the posterior mean, not a draw


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"arch": "conv", "beta": 2.0}, "drop them for --arch conv"),
        ({"arch": "resnet", "kl_warmup": 3}, "drop them for --arch resnet"),
        ({"arch": "conv", "body": "resnet"}, "--body is the body of a vae"),
        ({"arch": "vae", "body": "keras"}, "cannot carry a vae: choose one of conv, resnet"),
        ({"arch": "vae", "body": "vae"}, "cannot carry a vae"),
        ({"arch": "vae", "beta": -1.0}, "--beta must be a number >= 0"),
        ({"arch": "vae", "beta": float("nan")}, "--beta must be a number >= 0"),
        ({"arch": "vae", "kl_warmup": -1}, "--kl-warmup must be between"),
        ({"arch": "vae", "sparsity": "topk:4"}, "drop topk:K"),
        ({"arch": "vae", "latent_dim": 40_000}, "at most 32,768"),
        ({"arch": "vae", "kl_warmup": 1.5}, "--kl-warmup must be whole epochs"),
        ({"arch": "vae", "beta": True}, "--beta must be a number"),
        ({"arch": "vae", "beta": "2"}, "--beta must be a number"),
        ({"arch": "vae", "sparsity": "l1:0.01"}, "drop --sparsity"),
        ({"arch": "vae", "sparsity": "kl:0.05:0.001"}, "drop --sparsity"),
        ({"arch": "vae", "body": "conv", "depth": 2}, "--body conv has no residual blocks"),
        ({"arch": "conv", "depth": 2}, "--arch conv has no residual blocks"),
        ({"arch": "keras", "depth": 3}, "--arch keras has no residual blocks"),
    ],
)
def test_vae_options_are_checked_in_the_api(opts: dict, message: str) -> None:
    with pytest.raises(AekitError, match=message):
        aekit.make_config("shapes", **opts)


def test_vae_options_in_the_cli(cli, tmp_path) -> None:
    code, _, err = cli("train", "--data", "shapes", "--arch", "conv", "--beta", "2",
                       "--out", tmp_path / "r")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "drop them for --arch conv" in err
    code, _, err = cli("train", "--data", "shapes", "--arch", "vae", "--body", "keras",
                       "--out", tmp_path / "r")  # fmt: skip
    assert code == 2 and "invalid choice: 'keras'" in err
    assert not (tmp_path / "r").exists()
