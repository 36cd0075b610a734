"""Decoding codes that no image gave: samples of a vae's prior (``generate``) and the path
between two images' codes (``interpolate``: spherical for a vae, linear for the others)."""

from __future__ import annotations

import torch

from ..errors import AekitError
from ..models import Autoencoder, check_input, get_family, to_model_scale, to_unit_scale
from ..models.vae import slerp
from ..training.config import MAX_SEED

MAX_SAMPLES = 4096
MAX_STEPS = 256
# beyond a few standard deviations of the prior a decoder gives noise, and from ~1e20 NaN
MAX_TEMPERATURE = 10.0
DECODE_BATCH = 256


def check_count(name: str, value: int, high: int, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AekitError(f"{name} must be a whole number from {low} to {high:,}, got {value!r}")


@torch.no_grad()
def generate(
    model: Autoencoder, n: int = 64, seed: int = 0, temperature: float = 1.0
) -> torch.Tensor:
    """``n`` images decoded from draws of a vae's prior N(0, temperature^2 I): (n, C, H, W) floats
    on [0, 1], on the CPU. The draws come from a CPU generator seeded with ``seed``, so a seed
    gives the same codes on every device."""
    arch = model.config.arch
    if not get_family(arch).generative:
        raise AekitError(
            f"--arch {arch} has no prior to sample: generate from a run trained with --arch vae"
        )
    check_count("--n", n, MAX_SAMPLES)
    check_count("--seed", seed, MAX_SEED, low=0)
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not (0 < temperature <= MAX_TEMPERATURE)
    ):
        raise AekitError(
            f"--temperature must be a positive number up to {MAX_TEMPERATURE:g}, "
            f"got {temperature!r}"
        )
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.config.latent_dim, generator=g) * temperature
    return _decode(model, z)


@torch.no_grad()
def interpolate(
    model: Autoencoder, image_a: torch.Tensor, image_b: torch.Tensor, steps: int = 8
) -> torch.Tensor:
    """The decodings of ``steps`` evenly spaced points from the code of ``image_a`` to that of
    ``image_b`` (uint8 (C, H, W) images at the model's size), ends included: (steps, C, H, W)
    floats on [0, 1], on the CPU. Spherical for a vae (its codes are Gaussian), else linear."""
    arch = model.config.arch
    family = get_family(arch)
    if not family.decodable:
        raise AekitError(
            f"--arch {arch} has no code to decode on its own (its skips carry the picture): "
            "interpolate with a conv, resnet, keras or vae run"
        )
    for what, image in (("image_a", image_a), ("image_b", image_b)):
        if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.dim() != 3:
            raise AekitError(f"{what} must be a uint8 (C, H, W) image tensor")
        check_input(model, tuple(image.shape), what)
    check_count("--steps", steps, MAX_STEPS, low=2)  # at least the two ends
    model.eval()
    device = next(model.parameters()).device
    pair = torch.stack([image_a, image_b]).to(device)
    codes = model.encode(to_model_scale(pair, arch)).float().cpu()
    t = torch.linspace(0.0, 1.0, steps)
    if family.generative:
        z = slerp(codes[0], codes[1], t)
    else:
        z = torch.lerp(codes[0].expand(steps, -1), codes[1].expand(steps, -1), t[:, None])
    return _decode(model, z)


def _decode(model: Autoencoder, z: torch.Tensor) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    out = [
        to_unit_scale(model.decode(part.to(device)), model.config.arch).cpu()
        for part in z.split(DECODE_BATCH)
    ]
    return torch.cat(out)
