"""Corruptions, losses and sparsity penalties as pure functions."""

import math

import pytest
import torch

from aekit import AekitError
from aekit.training.objectives import (
    Noise,
    Sparsity,
    active_mask,
    corrupt,
    parse_noise,
    parse_sparsity,
    reconstruction_loss,
    sparsity_penalty,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_has_the_asked_std_and_is_unclipped() -> None:
    x = torch.zeros(64, 3, 32, 32)
    y = corrupt(x, Noise("gaussian", 25.5), (-1.0, 1.0), gen())
    assert abs(y.std().item() - 0.2) < 0.005
    assert abs(y.mean().item()) < 0.005
    x1 = torch.ones(8, 1, 28, 28)
    assert corrupt(x1, Noise("gaussian", 25.5), (-1.0, 1.0), gen()).max() > 1.0


def test_noise_is_reproducible_from_the_generator() -> None:
    x = torch.rand(4, 3, 8, 8)
    for kind in ("gaussian", "saltpepper", "mask"):
        a = corrupt(x, Noise(kind, 0.3), (0.0, 1.0), gen(1))
        b = corrupt(x, Noise(kind, 0.3), (0.0, 1.0), gen(1))
        c = corrupt(x, Noise(kind, 0.3), (0.0, 1.0), gen(2))
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_mask_zeroes_the_fraction_of_pixels_across_channels() -> None:
    x = torch.full((32, 3, 32, 32), 0.5)
    y = corrupt(x, Noise("mask", 0.3), (-1.0, 1.0), gen())
    hit = (y == -1.0).all(dim=1)
    assert abs(hit.float().mean().item() - 0.3) < 0.01
    assert torch.equal(y[~hit.unsqueeze(1).expand_as(y)], x[~hit.unsqueeze(1).expand_as(x)])


def test_salt_and_pepper_splits_evenly() -> None:
    x = torch.full((32, 1, 32, 32), 0.5)
    y = corrupt(x, Noise("saltpepper", 0.2), (0.0, 1.0), gen())
    salt, pepper = (y == 1.0).float().mean().item(), (y == 0.0).float().mean().item()
    assert abs(salt - 0.1) < 0.01 and abs(pepper - 0.1) < 0.01
    assert ((y == 0.5) | (y == 0.0) | (y == 1.0)).all()


def test_losses() -> None:
    out, target = torch.full((2, 1, 4, 4), 0.5), torch.zeros(2, 1, 4, 4)
    assert reconstruction_loss(out, target, "mse", (0.0, 1.0)).item() == pytest.approx(0.25)
    assert reconstruction_loss(out, target, "bce", (0.0, 1.0)).item() == pytest.approx(math.log(2))
    # bce on [-1, 1] data compares the pixels mapped to [0, 1]: 0 -> 0.5, -1 -> 0
    got = reconstruction_loss(torch.zeros(1, 1, 2, 2), -torch.ones(1, 1, 2, 2), "bce", (-1.0, 1.0))
    assert got.item() == pytest.approx(math.log(2))


def test_l1_and_kl_penalties() -> None:
    z = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    assert sparsity_penalty(z, Sparsity("l1", weight=0.5)).item() == pytest.approx(0.5 * 3.0)
    # sigmoid(0) = 0.5 everywhere: KL(0.5 || 0.5) = 0
    assert sparsity_penalty(torch.zeros(4, 3), Sparsity("kl", weight=1.0, rho=0.5)).item() == 0
    rho, rho_hat = 0.05, 0.5
    want = 3 * (rho * math.log(rho / rho_hat) + (1 - rho) * math.log((1 - rho) / (1 - rho_hat)))
    got = sparsity_penalty(torch.zeros(4, 3), Sparsity("kl", weight=1.0, rho=rho)).item()
    assert got == pytest.approx(want, rel=1e-5)
    assert sparsity_penalty(z, Sparsity("topk", k=1)).item() == 0


def test_active_mask() -> None:
    z = torch.tensor([[0.0, 0.5, -0.2, 0.001]])
    assert active_mask(z, Sparsity("l1", weight=1)).tolist() == [[False, True, True, False]]
    assert active_mask(torch.tensor([[-10.0, 0.0]]), Sparsity("kl", 1, 0.05)).tolist() == [
        [False, True]
    ]


def test_parse_specs() -> None:
    assert parse_noise("gaussian:0.2") == Noise("gaussian", 0.2)
    assert parse_noise(None) is None
    assert parse_sparsity("kl:0.05:0.001") == Sparsity("kl", weight=0.001, rho=0.05)
    assert parse_sparsity("topk:16") == Sparsity("topk", k=16)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gauss:0.2", "unknown --noise"),
        ("gaussian", "expected gaussian:NUMBER"),
        ("mask:1.5", "fraction"),
        ("gaussian:-1", "sigma must be between 0 and 1000"),
    ],
)
def test_bad_noise(spec: str, message: str) -> None:
    with pytest.raises(AekitError, match=message):
        parse_noise(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("l2:1", "unknown --sparsity"),
        ("kl:0.05", "kl:RHO:WEIGHT"),
        ("kl:2:1", "RHO"),
        ("topk:2.5", "whole number"),
        ("l1:x", "l1:WEIGHT"),
        ("l1:-1", "weight"),
    ],
)
def test_bad_sparsity(spec: str, message: str) -> None:
    with pytest.raises(AekitError, match=message):
        parse_sparsity(spec)


@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 1.0)])
def test_gaussian_sigma_is_in_pixel_units_for_every_family(value_range) -> None:
    lo, hi = value_range
    x = torch.full((64, 3, 32, 32), (lo + hi) / 2)
    y = corrupt(x, Noise("gaussian", 25.5), value_range, gen())
    pixels = (y - x) * 255 / (hi - lo)  # the noise back on the 0-255 scale
    assert abs(pixels.std().item() - 25.5) < 0.5
