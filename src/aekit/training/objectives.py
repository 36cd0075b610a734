"""Training objectives as small pure functions: reconstruction losses, input corruptions (for
denoising autoencoders) and sparsity penalties (for sparse ones).

Spec strings come from the CLI: ``--noise gaussian:25``, ``--sparsity kl:0.05:1e-3``. Noise
levels are in pixel units, the same for every model family: ``gaussian:25`` is sigma = 25 on the
0-255 scale (the denoising literature's convention; the tutorial's 0.2 on [-1, 1] is 25.5);
``gaussian:0-55`` draws one sigma per image from that range (a blind denoiser's training);
``poisson:PEAK`` is photon noise, a pixel of value v in [0, 1] becoming Poisson(PEAK * v) / PEAK.
A ``+jpeg:LOW-HIGH[:SHARE]`` stage saves the noisy images as JPEG files would (8-bit, 4:2:0, a
quality per image drawn from LOW-HIGH; only that share of the images, default all): the noise of
a noisy JPEG photo, ``gaussian:0-50+jpeg:60-98:0.5``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..errors import AekitError
from .jpeg import jpeg_round_trip

NOISE_KINDS = ("gaussian", "poisson", "saltpepper", "mask")
SPARSITY_KINDS = ("l1", "kl", "topk")
ACTIVE_THRESHOLD = 1e-2  # a latent unit counts as active when its activation exceeds this
# A gaussian sigma far beyond any use: 255 (the whole pixel range) already buries every image;
# larger ones only overflow into inf/NaN pictures.
MAX_GAUSSIAN_SIGMA = 1000.0
# Photon counts per unit brightness: 1e6 is already indistinguishable from a clean image.
MAX_POISSON_PEAK = 1e6
NOISE_USAGE = (
    "use gaussian:SIGMA, gaussian:LOW-HIGH (a sigma per image), poisson:PEAK, "
    "saltpepper:FRACTION or mask:FRACTION, optionally followed by +jpeg:LOW-HIGH[:SHARE]"
)
JPEG_USAGE = (
    "+jpeg:QUALITY, +jpeg:LOW-HIGH or +jpeg:LOW-HIGH:SHARE (qualities 1-100, low before high; "
    "the share of images saved as JPEG 0-1)"
)


@dataclass(frozen=True)
class Noise:
    kind: str
    amount: float  # gaussian: sigma in pixel units (0-255); poisson: peak; saltpepper / mask:
    # fraction of pixels
    high: float | None = None  # gaussian:LOW-HIGH: sigma drawn per image from [amount, high]
    jpeg: tuple[float, float, float] | None = None  # +jpeg: quality low, high; share of images


@dataclass(frozen=True)
class Sparsity:
    kind: str
    weight: float = 0.0  # l1 and kl: weight of the penalty in the loss
    rho: float = 0.0  # kl: target mean activation
    k: int = 0  # topk: units kept per sample


def _numbers(spec: str, flag: str, count: int, usage: str) -> list[float]:
    parts = spec.split(":")[1:]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise AekitError(f"bad {flag} {spec!r}: expected {usage}")
    return values


def parse_noise(spec: str | None, flag: str = "--noise") -> Noise | None:
    """``"gaussian:25"`` -> Noise("gaussian", 25.0); ``"gaussian:0-55"`` -> Noise("gaussian",
    0.0, 55.0); ``"poisson:30"`` -> Noise("poisson", 30.0); None -> None."""
    if not spec:
        return None
    stage_at = re.search(r"\+(?=[A-Za-z])", spec)  # a "+" before a name: "1e+308" is a number
    if stage_at:
        base, stage = spec[: stage_at.start()], spec[stage_at.end() :]
        if not base:
            raise AekitError(f"bad {flag} {spec!r}: a noise comes before +jpeg ({NOISE_USAGE})")
        noise = parse_noise(base, flag)
        assert noise is not None
        return replace(noise, jpeg=_jpeg_stage(stage, spec, flag))
    kind = spec.split(":")[0]
    if kind not in NOISE_KINDS:
        raise AekitError(f"unknown {flag} {spec!r}: {NOISE_USAGE}")
    if kind == "gaussian" and "-" in spec.partition(":")[2].lstrip("-"):
        return _sigma_range(spec, flag)
    (amount,) = _numbers(spec, flag, 1, f"{kind}:NUMBER")
    if kind == "gaussian":
        _check_sigma(amount, spec, flag)
    elif kind == "poisson":
        if not 0 < amount <= MAX_POISSON_PEAK:
            raise AekitError(
                f"bad {flag} {spec!r}: the peak is the photon count of a white pixel, above 0 "
                f"and at most {MAX_POISSON_PEAK:g} (poisson:30 is strong noise, 1000 faint)"
            )
    elif not 0 <= amount <= 1:
        raise AekitError(f"bad {flag} {spec!r}: the amount is a fraction of pixels, 0 to 1")
    return Noise(kind, amount)


def _jpeg_stage(stage: str, spec: str, flag: str) -> tuple[float, float, float]:
    """``jpeg:95`` -> (95, 95, 1); ``jpeg:60-98:0.5`` -> (60, 98, 0.5)."""
    kind, _, rest = stage.partition(":")
    parts = rest.split(":")
    try:
        if kind != "jpeg" or len(parts) > 2:
            raise ValueError
        low, _, high = parts[0].partition("-")
        values = (float(low), float(high or low), float(parts[1]) if len(parts) == 2 else 1.0)
    except ValueError:
        raise AekitError(f"bad {flag} {spec!r}: expected {JPEG_USAGE}") from None
    q_low, q_high, share = values
    if not (1 <= q_low <= q_high <= 100 and 0 <= share <= 1):
        raise AekitError(f"bad {flag} {spec!r}: expected {JPEG_USAGE}")
    return values


def _check_sigma(sigma: float, spec: str, flag: str) -> None:
    if not 0 <= sigma <= MAX_GAUSSIAN_SIGMA:
        raise AekitError(
            f"bad {flag} {spec!r}: the sigma must be between 0 and {MAX_GAUSSIAN_SIGMA:g} "
            "(pixel units, 0-255 scale: gaussian:25 is the usual level)"
        )


def _sigma_range(spec: str, flag: str) -> Noise:
    """``gaussian:LOW-HIGH``: a sigma per image drawn uniformly from the range."""
    low_text, _, high_text = spec.partition(":")[2].partition("-")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise AekitError(
            f"bad {flag} {spec!r}: expected gaussian:LOW-HIGH, e.g. gaussian:0-55"
        ) from None
    for sigma in (low, high):
        _check_sigma(sigma, spec, flag)
    if low > high:
        raise AekitError(
            f"bad {flag} {spec!r}: the range goes from low to high: gaussian:{high:g}-{low:g}"
        )
    return Noise("gaussian", low, high)


def parse_sparsity(spec: str | None) -> Sparsity | None:
    """``"l1:1e-3"``, ``"kl:0.05:1e-3"`` or ``"topk:32"`` -> Sparsity; None -> None."""
    if not spec:
        return None
    kind = spec.split(":")[0]
    if kind == "l1":
        (w,) = _numbers(spec, "--sparsity", 1, "l1:WEIGHT")
        result = Sparsity("l1", weight=w)
    elif kind == "kl":
        rho, w = _numbers(spec, "--sparsity", 2, "kl:RHO:WEIGHT")
        if not 0 < rho < 1:
            raise AekitError(f"bad --sparsity {spec!r}: RHO is a target activation in (0, 1)")
        result = Sparsity("kl", weight=w, rho=rho)
    elif kind == "topk":
        (k,) = _numbers(spec, "--sparsity", 1, "topk:K")
        if k != int(k) or k < 1:
            raise AekitError(f"bad --sparsity {spec!r}: K is a positive whole number")
        result = Sparsity("topk", k=int(k))
    else:
        raise AekitError(f"unknown --sparsity {spec!r}: use l1:WEIGHT, kl:RHO:WEIGHT or topk:K")
    if result.weight < 0:
        raise AekitError(f"bad --sparsity {spec!r}: the weight must be >= 0")
    return result


def corrupt(
    x: torch.Tensor,
    noise: Noise,
    value_range: tuple[float, float],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A corrupted copy of the (B, C, H, W) batch ``x`` for denoising training.

    gaussian: x + N(0, 1) * sigma (pixel units, scaled to ``value_range``), unclipped, as the
    seed's ``add_noise`` and the published tables; with a range, one sigma per image drawn
    uniformly from it; poisson: Poisson(peak * v) / peak for each value v on [0, 1] (photon
    noise: its variance grows with brightness); saltpepper: that fraction of pixels (all
    channels together) set to the low or high end of the range; mask: that fraction of pixels
    set to the low end (black), the masking noise of Vincent et al. A jpeg stage then replaces
    its share of the noisy images by their JPEG round trip at a quality drawn per image.
    """
    noisy = _noise(x, noise, value_range, generator)
    if noise.jpeg is None:
        return noisy
    return _jpeg(noisy, noise.jpeg, value_range, generator)


def _jpeg(
    x: torch.Tensor,
    stage: tuple[float, float, float],
    value_range: tuple[float, float],
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The images of ``x`` drawn with probability share, saved as JPEG and read back."""
    q_low, q_high, share = stage
    b, c, h, w = x.shape
    lo, hi = value_range
    pick = torch.rand(b, generator=generator, device=x.device) < share
    u = torch.rand(b, generator=generator, device=x.device)
    quality = torch.round(q_low + u * (q_high - q_low))
    x8 = (x.float() - lo) * (255.0 / (hi - lo))
    if c == 3:
        saved = jpeg_round_trip(x8, quality)
    else:  # each channel a gray JPEG
        saved = jpeg_round_trip(x8.reshape(b * c, 1, h, w), quality.repeat_interleave(c))
        saved = saved.reshape(b, c, h, w)
    saved = (saved * ((hi - lo) / 255.0) + lo).to(x.dtype)
    return torch.where(pick[:, None, None, None], saved, x)


def _noise(
    x: torch.Tensor,
    noise: Noise,
    value_range: tuple[float, float],
    generator: torch.Generator | None,
) -> torch.Tensor:
    lo, hi = value_range
    if noise.kind == "gaussian":
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if noise.high is None:
            return x + eps * (noise.amount * (hi - lo) / 255.0)
        # blind: one sigma per image, drawn from the range
        u = torch.rand((len(x), 1, 1, 1), generator=generator, device=x.device)
        sigma = noise.amount + u * (noise.high - noise.amount)
        return x + eps * (sigma * ((hi - lo) / 255.0)).to(x.dtype)
    if noise.kind == "poisson":
        unit = ((x.float() - lo) / (hi - lo)).clamp_min(0)
        counts = torch.poisson(unit * noise.amount, generator=generator)
        return (counts / noise.amount * (hi - lo) + lo).to(x.dtype)
    b, _, h, w = x.shape
    u = torch.rand((b, 1, h, w), generator=generator, device=x.device)
    hit = u < noise.amount
    if noise.kind == "mask":
        return x.masked_fill(hit, lo)
    # the same uniform draw decides salt or pepper: below amount/2 pepper, else salt
    salt = u >= noise.amount / 2
    return torch.where(hit, torch.where(salt, hi, lo).to(x.dtype), x)


def reconstruction_loss(
    output: torch.Tensor, target: torch.Tensor, kind: str, value_range: tuple[float, float]
) -> torch.Tensor:
    """Mean loss over all pixels, in float32. ``bce`` compares pixels mapped to [0, 1];
    ``charbonnier`` is sqrt(d^2 + eps^2), eps one thousandth of the value range (a smooth l1)."""
    output, target = output.float(), target.float()
    if kind == "mse":
        return F.mse_loss(output, target)
    if kind == "l1":
        return F.l1_loss(output, target)
    lo, hi = value_range
    if kind == "charbonnier":
        eps = 1e-3 * (hi - lo)
        return ((output - target).square() + eps * eps).sqrt().mean()
    if (lo, hi) != (0.0, 1.0):
        output, target = (output - lo) / (hi - lo), (target - lo) / (hi - lo)
    with torch.autocast(output.device.type, enabled=False):  # BCE refuses low precision
        return F.binary_cross_entropy(output.clamp(0, 1), target)


def nll_per_image(
    output: torch.Tensor, target: torch.Tensor, loss: str, value_range: tuple[float, float]
) -> torch.Tensor:
    """The negative log-likelihood of ``target`` under the decoder ``loss`` stands for, in nats
    per image (B,): mse, a Gaussian of variance 1/2 on the model's scale (sum of squared errors
    plus its constant); bce, a Bernoulli per value on [0, 1]."""
    dims = tuple(range(1, output.dim()))
    if loss == "mse":
        sq = (output.float() - target.float()).square().sum(dim=dims)
        return sq + 0.5 * target[0].numel() * math.log(math.pi)
    lo, hi = value_range
    p = ((output.float() - lo) / (hi - lo)).clamp(0, 1)
    t = ((target.float() - lo) / (hi - lo)).clamp(0, 1)
    return F.binary_cross_entropy(p, t, reduction="none").sum(dim=dims)


def sparsity_penalty(z: torch.Tensor, sparsity: Sparsity | None) -> torch.Tensor:
    """The sparsity term added to the loss for a (B, D) latent batch (0 for none and topk)."""
    if sparsity is None or sparsity.kind == "topk":
        return z.new_zeros((), dtype=torch.float32)
    z = z.float()
    if sparsity.kind == "l1":
        return sparsity.weight * z.abs().sum(dim=1).mean()
    # KL(rho || rho_hat) summed over units, rho_hat = batch-mean sigmoid activation per unit
    rho = sparsity.rho
    rho_hat = torch.sigmoid(z).mean(dim=0).clamp(1e-6, 1 - 1e-6)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return sparsity.weight * kl.sum()


def activations(z: torch.Tensor, sparsity: Sparsity | None) -> torch.Tensor:
    """How active each latent unit is: its sigmoid for ``kl`` (what the penalty sees), else |z|."""
    return torch.sigmoid(z.float()) if sparsity and sparsity.kind == "kl" else z.float().abs()


def active_mask(z: torch.Tensor, sparsity: Sparsity | None) -> torch.Tensor:
    """(B, D) bool: which units are active (activation above ``ACTIVE_THRESHOLD``)."""
    return activations(z, sparsity) > ACTIVE_THRESHOLD
