"""Batched augmentation: values against per-image references, statistics, determinism."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aekit.data.augment import (
    AUGMENTATIONS,
    augment_batch,
    parse_augment,
    random_hflip,
    random_resized_crop,
    random_vflip,
    resized_crop,
    sample_crop_boxes,
)
from aekit.errors import AekitError

DTYPES = [torch.float32, torch.bfloat16]
# float32: ours and interpolate round differently (sample coordinates normalised to [-1, 1] for
# grid_sample; sums taken in another order), measured <= 2e-6 on these small [0, 1] images (the
# coordinate error grows with the side: 1.5e-5 at 224). bfloat16: both are computed in float32
# and rounded once to bf16, so they may land one bf16 step apart: 2**-8 for values in [0.5, 1).
ATOL = {torch.float32: 1e-5, torch.bfloat16: 2**-8}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def images(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, device: str = "cpu"):
    """Random [0, 1] images with no symmetry, so any flip or crop changes them."""
    return torch.rand(shape, generator=gen(123)).to(device=device, dtype=dtype)


def interpolate_reference(
    x: torch.Tensor, boxes: tuple[torch.Tensor, ...], size: tuple[int, int], antialias: bool
) -> torch.Tensor:
    """What torchvision's RandomResizedCrop does per image, given the boxes."""
    out = []
    for b, (top, left, h, w) in enumerate(zip(*(t.tolist() for t in boxes), strict=True)):
        crop = x[b : b + 1, :, top : top + h, left : left + w].float()
        out.append(
            F.interpolate(crop, size, mode="bilinear", antialias=antialias, align_corners=False)
        )
    return torch.cat(out).to(x.dtype)


def get_params_reference(
    height: int, width: int, scale, ratio, area_u, aspect_u, position_u
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params, fed pre-drawn uniforms for one sample."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for a, r in zip(area_u, aspect_u, strict=True):
        target_area = height * width * (scale[0] + (scale[1] - scale[0]) * a)
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * r)
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(position_u[0] * (height - h + 1))
            left = int(position_u[1] * (width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


# parse_augment


@pytest.mark.parametrize(
    ("spec", "ops"),
    [
        ("crop,hflip,vflip", ("crop", "hflip", "vflip")),
        (" vflip , CROP ", ("crop", "vflip")),
        ("hflip,hflip", ("hflip",)),
        ("none", ()),
        ("", ()),
    ],
)
def test_parse_augment(spec: str, ops: tuple[str, ...]) -> None:
    assert parse_augment(spec) == ops


@pytest.mark.parametrize("spec", ["rotate", "crop,blur", "none,crop"])
def test_parse_augment_rejects_unknown_names(spec: str) -> None:
    with pytest.raises(AekitError) as err:
        parse_augment(spec)
    for name in (*AUGMENTATIONS, "none"):
        assert name in str(err.value)


def test_augment_batch_rejects_unknown_op_and_bad_input() -> None:
    with pytest.raises(AekitError, match="rotate"):
        augment_batch(images((2, 1, 8, 8)), ("rotate",))
    with pytest.raises(AekitError, match="float"):
        augment_batch(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), ("hflip",))
    with pytest.raises(AekitError, match="probability"):
        random_hflip(images((2, 1, 8, 8)), p=1.5)


# shapes, determinism


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ops", [("crop", "hflip", "vflip"), ("crop",), ("hflip", "vflip"), ()])
def test_augment_batch_keeps_shape_dtype_device(ops, dtype: torch.dtype, device: str) -> None:
    x = images((5, 3, 24, 40), dtype, device)
    y = augment_batch(x, ops, gen(0, device))
    assert (y.shape, y.dtype, y.device) == (x.shape, x.dtype, x.device)
    assert torch.isfinite(y.float()).all()
    assert torch.equal(y, x) == (ops == ())


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_generator_state_gives_same_output(dtype: torch.dtype) -> None:
    x = images((16, 3, 32, 32), dtype)
    ops = ("crop", "hflip", "vflip")
    g = gen(7)
    state = g.get_state()
    first = augment_batch(x, ops, g)
    g.set_state(state)  # as when resuming a run from a saved generator state
    assert torch.equal(augment_batch(x, ops, g), first)
    assert torch.equal(augment_batch(x, ops, gen(7)), first)
    assert not torch.equal(augment_batch(x, ops, gen(8)), first)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ops", [("crop", "hflip", "vflip"), ("crop", "vflip"), ("hflip", "crop")])
def test_augment_batch_equals_the_ops_applied_in_turn(ops, dtype: torch.dtype) -> None:
    """Flips are folded into the crop's weights; that must not change the result."""
    x = images((32, 3, 20, 28), dtype)
    expected = random_resized_crop(x, (20, 28), generator=(g := gen(3)))
    if "hflip" in ops:
        expected = random_hflip(expected, generator=g)
    if "vflip" in ops:
        expected = random_vflip(expected, generator=g)
    torch.testing.assert_close(augment_batch(x, ops, gen(3)), expected, atol=1e-6, rtol=0)


# flips


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("flip", "dim"), [(random_hflip, -1), (random_vflip, -2)])
def test_flip_probability_extremes(flip, dim: int, dtype: torch.dtype) -> None:
    x = images((8, 3, 6, 7), dtype)
    assert torch.equal(flip(x, p=0.0, generator=gen()), x)
    assert torch.equal(flip(x, p=1.0, generator=gen()), torch.flip(x, dims=(dim,)))


@pytest.mark.parametrize(("flip", "dim"), [(random_hflip, -1), (random_vflip, -2)])
def test_flips_are_independent_per_sample(flip, dim: int) -> None:
    n = 1000
    x = images((1, 2, 5, 5)).expand(n, -1, -1, -1)
    y = flip(x, generator=gen(1))
    flipped = (y == x.flip(dim)).flatten(1).all(1)
    unchanged = (y == x).flatten(1).all(1)
    assert (flipped ^ unchanged).all()  # every image is either flipped or untouched
    # Binomial(1000, 0.5) has sd 15.8; 5 sd either side of 500.
    assert abs(int(flipped.sum()) - n // 2) <= 80


# crop boxes


@pytest.mark.parametrize(("height", "width"), [(32, 32), (24, 40)])
def test_crop_boxes_follow_torchvision_get_params(height: int, width: int) -> None:
    n, scale, ratio = 2000, (0.08, 1.0), (3 / 4, 4 / 3)
    boxes = torch.stack(sample_crop_boxes(n, height, width, scale, ratio, gen(5)), 1)
    g = gen(5)  # the same draws, in the order sample_crop_boxes makes them
    area_u = torch.rand((n, 10), generator=g)
    aspect_u = torch.rand((n, 10), generator=g)
    position_u = torch.rand((n, 2), generator=g)
    expected = [
        get_params_reference(height, width, scale, ratio, *map(list, draws))
        for draws in zip(area_u.tolist(), aspect_u.tolist(), position_u.tolist(), strict=True)
    ]
    assert boxes.tolist() == [list(box) for box in expected]


@pytest.mark.parametrize(("height", "width"), [(32, 32), (24, 40)])
def test_crop_box_statistics(height: int, width: int) -> None:
    n, (s_lo, s_hi), (r_lo, r_hi) = 20000, (0.08, 1.0), (3 / 4, 4 / 3)
    top, left, h, w = sample_crop_boxes(n, height, width, (s_lo, s_hi), (r_lo, r_hi), gen(9))
    assert all(t.dtype == torch.int64 and t.shape == (n,) for t in (top, left, h, w))
    assert (h >= 1).all() and (w >= 1).all()
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()

    # Sides are rounded, so the unrounded sides lie within 0.5 of h and w. (The fallback boxes
    # for these shapes, the whole image and a centred 24x32, meet the bounds too.)
    hf, wf, area = h.double(), w.double(), height * width
    assert ((hf - 0.5) * (wf - 0.5) <= s_hi * area).all()
    assert ((hf + 0.5) * (wf + 0.5) >= s_lo * area).all()
    assert ((wf - 0.5) / (hf + 0.5) <= r_hi).all()
    assert ((wf + 0.5) / (hf - 0.5) >= r_lo).all()
    fraction = hf * wf / area
    # Large areas are rejected more often (they overflow the image), pulling the mean below
    # the uniform's 0.54; small crops must be common.
    assert 0.3 < fraction.mean() < 0.54
    assert (fraction < 0.2).double().mean() > 0.1
    # Positions vary per sample: many distinct boxes.
    assert len(set(zip(top.tolist(), left.tolist(), h.tolist(), w.tolist(), strict=True))) > 1000


@pytest.mark.parametrize(
    ("height", "width", "ratio", "box"),
    [
        (32, 32, (3 / 4, 4 / 3), (0, 0, 32, 32)),
        (32, 32, (2, 3), (8, 0, 16, 32)),
        (24, 40, (3 / 4, 4 / 3), (0, 4, 24, 32)),
    ],
)
def test_crop_box_fallback_is_a_centre_crop(height: int, width: int, ratio, box) -> None:
    # Scales above 1 never fit, so every sample takes the fallback.
    boxes = sample_crop_boxes(4, height, width, (2.0, 3.0), ratio, gen())
    assert torch.stack(boxes, 1).tolist() == [list(box)] * 4


def test_crop_boxes_reject_bad_ranges() -> None:
    with pytest.raises(AekitError, match="scale"):
        sample_crop_boxes(1, 8, 8, scale=(0.5, 0.1))
    with pytest.raises(AekitError, match="ratio"):
        sample_crop_boxes(1, 8, 8, ratio=(0.0, 1.0))


# resampling against torchvision's per-image interpolate


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_resized_crop_matches_interpolate_when_upscaling(dtype: torch.dtype) -> None:
    # Output = image size, so every box is upscaled (or kept) along both axes.
    x = images((128, 3, 24, 40), dtype)
    boxes = sample_crop_boxes(128, 24, 40, generator=gen(11))
    assert ((boxes[2] < 24) & (boxes[3] < 40)).any()
    y = random_resized_crop(x, (24, 40), generator=gen(11))
    expected = interpolate_reference(x, boxes, (24, 40), antialias=True)
    assert (y.float() - expected.float()).abs().max() <= ATOL[dtype]


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_resized_crop_matches_interpolate_when_downscaling(
    dtype: torch.dtype, antialias: bool
) -> None:
    # Downscaling is where antialias matters; the weights reproduce interpolate's either way.
    x = images((64, 2, 48, 40), dtype)
    boxes = sample_crop_boxes(64, 48, 40, generator=gen(12))
    y = resized_crop(x, *boxes, size=(13, 21), antialias=antialias)
    expected = interpolate_reference(x, boxes, (13, 21), antialias=antialias)
    assert (y.float() - expected.float()).abs().max() <= ATOL[dtype]
    # Flips folded into the resampling equal flipping the result.
    hflip, vflip = torch.rand((2, 64), generator=gen(13)) < 0.5
    flipped = resized_crop(x, *boxes, (13, 21), antialias, hflip=hflip, vflip=vflip)
    expected = torch.where(hflip[:, None, None, None], y.flip(-1), y)
    expected = torch.where(vflip[:, None, None, None], expected.flip(-2), expected)
    torch.testing.assert_close(flipped, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_crop_at_scale_one_is_identity(dtype: torch.dtype) -> None:
    x = images((6, 3, 16, 16), dtype)
    y = random_resized_crop(x, (16, 16), scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen())
    assert (y.float() - x.float()).abs().max() <= 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
def test_crops_differ_per_sample(dtype: torch.dtype) -> None:
    x = images((1, 3, 16, 16), dtype).expand(64, -1, -1, -1)
    y = random_resized_crop(x, (16, 16), generator=gen(2))
    assert len({tuple(image.flatten().tolist()) for image in y.float()}) > 60


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_cpu_generator() -> None:
    x = images((16, 3, 32, 32))
    ops = ("crop", "hflip", "vflip")
    on_gpu = augment_batch(x.cuda(), ops, gen(4))  # a CPU generator drives GPU data too
    torch.testing.assert_close(on_gpu.cpu(), augment_batch(x, ops, gen(4)), atol=1e-5, rtol=0)
