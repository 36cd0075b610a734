"""DRAEM's synthetic anomalies (aekit.data.synthetic): Perlin noise, its masks, recoloured
textures and their pasting, each checked for what it promises."""

from __future__ import annotations

import pytest
import torch

from aekit.data.synthetic import paste_anomalies, perlin, perlin_masks, recolour


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("h", "w", "cells"), [(32, 48, (4, 6)), (30, 20, (1, 2)), (64, 64, (8, 1))]
)
def test_perlin_noise_is_zero_on_its_lattice_and_smooth_between(h, w, cells) -> None:
    noise = perlin(h, w, cells, gen())
    assert noise.shape == (h, w) and noise.abs().max() <= 1.0 + 1e-5
    step_y, step_x = h // cells[0], w // cells[1]
    corners = (
        noise[::step_y, ::step_x] if h % cells[0] == 0 and w % cells[1] == 0 else noise[:1, :1]
    )
    assert corners.abs().max() < 1e-6  # gradient noise vanishes at every lattice point
    assert noise.std() > 0.05
    # a lattice cell spans several pixels: neighbours differ far less than the range
    assert (noise[1:] - noise[:-1]).abs().max() < 0.6 and (
        noise[:, 1:] - noise[:, :-1]
    ).abs().max() < 0.6


def test_the_same_generator_gives_the_same_anomalies() -> None:
    a = perlin_masks(4, 40, 56, gen(3))
    assert torch.equal(a, perlin_masks(4, 40, 56, gen(3)))
    assert not torch.equal(a, perlin_masks(4, 40, 56, gen(4)))


def test_masks_are_binary_regions_of_varied_size() -> None:
    masks = perlin_masks(64, 48, 64, gen(1))
    assert masks.shape == (64, 1, 48, 64) and set(masks.unique().tolist()) <= {0.0, 1.0}
    cover = masks.mean(dim=(1, 2, 3))
    assert (cover > 0).float().mean() > 0.5  # most images get a region
    assert 0.02 < cover.mean() < 0.4 and cover.max() > cover.min() + 0.1
    assert perlin_masks(8, 48, 64, gen(1), threshold=2.0).sum() == 0  # above the noise's range


def test_recoloured_textures_stay_in_range_and_change() -> None:
    images = torch.rand(16, 3, 8, 8, generator=gen(2))
    images[:, 0] *= 0.1  # channels told apart by their means
    out = recolour(images, gen(5))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert (out - images).abs().mean() > 0.1
    firsts = out.mean(dim=(2, 3)).argmin(dim=1)  # where the dark channel went (or inverted)
    assert len(set(firsts.tolist())) > 1  # channels are shuffled
    gray = recolour(torch.rand(4, 1, 8, 8, generator=gen(2)), gen(5))
    assert gray.shape == (4, 1, 8, 8)


def test_pasting_changes_only_the_masked_pixels() -> None:
    images = torch.rand(32, 3, 16, 16, generator=gen(6))
    textures = torch.rand(32, 3, 16, 16, generator=gen(7))
    masks = perlin_masks(32, 16, 16, gen(8))
    out, used = paste_anomalies(images, textures, masks, gen(9))
    outside = (used == 0).expand_as(images)
    assert torch.equal(out[outside], images[outside])
    assert ((used == 0) | (used == masks)).all()  # a used mask is the mask, or empty
    cleaned = (used.sum(dim=(1, 2, 3)) == 0) & (masks.sum(dim=(1, 2, 3)) > 0)
    assert 4 < int(cleaned.sum()) < 28  # about half left normal
    lo, hi = torch.minimum(images, textures), torch.maximum(images, textures)
    inside = (used == 1).expand_as(images)
    assert ((out >= lo - 1e-6) & (out <= hi + 1e-6))[inside].all()  # a blend of the two
    full, _ = paste_anomalies(images, textures, torch.ones_like(masks), gen(9), max_keep=0.0,
                              clean_fraction=0.0)  # fmt: skip
    assert torch.allclose(full, textures)
