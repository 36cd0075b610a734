"""One ``step`` shared by training and evaluation, and ``evaluate``: what a run computes on a batch.

Data stays uint8 (on the training device when it fits); each batch is scaled, augmented and
corrupted there, in batched tensor ops. Losses are summed on the device and read once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..data import augment
from ..data.synthetic import synthetic_anomalies
from ..devices import bf16_native
from ..metrics import mse_per_image, psnr, ssim_per_image
from ..models import Autoencoder, get_family, to_model_scale, to_unit_scale
from . import selfsup
from .distributed import SINGLE, Group
from .objectives import (
    Noise,
    Sparsity,
    active_mask,
    corrupt,
    nll_per_image,
    parse_noise,
    parse_sparsity,
    reconstruction_loss,
    sparsity_penalty,
)
from .runs import RunConfig


@dataclass
class Objective:
    """What a step computes: the loss, the input corruption, the sparsity term, augmentation."""

    loss: str
    noise: Noise | None = None
    sparsity: Sparsity | None = None
    augment: tuple[str, ...] = ()
    amp: bool = False  # bf16 autocast for the model's forward pass
    beta: float = 1.0  # the weight of a family's KL term
    kl_warmup: int = 0  # epochs over which that weight rises from 0 to beta
    anomalies: bool = False  # paste synthetic anomalies into training batches (draem)
    textures: torch.Tensor | None = None  # uint8 (N, C, S, S): --anomaly-source's images
    self_supervised: str | None = None  # n2v or nb2nb: the images are noisy, no clean target

    def term_weight(self, name: str, warm: float) -> float:
        """The weight of a family's loss term ``name``; ``warm``: the KL warm-up's fraction."""
        return self.beta * warm if name == "kl" else 1.0

    @classmethod
    def from_config(cls, cfg: RunConfig, device: torch.device | None = None) -> Objective:
        """The objective of a run; bf16 autocast only on a ``device`` that runs it natively."""
        loss = cfg.train.loss or get_family(cfg.model.arch).default_loss
        amp = cfg.train.amp and device is not None and bf16_native(device)
        noise, sparsity = parse_noise(cfg.train.noise), parse_sparsity(cfg.train.sparsity)
        segments = get_family(cfg.model.arch).segments
        return cls(loss, noise, sparsity, cfg.data.augment_ops(), amp, cfg.train.beta,
                   cfg.train.kl_warmup, segments,
                   self_supervised=cfg.train.self_supervised)  # fmt: skip


@dataclass
class StepOut:
    loss: torch.Tensor  # scalar, float32
    clean: torch.Tensor  # (B, C, H, W) target, model scale
    inputs: torch.Tensor  # what the model saw (corrupted when denoising)
    latent: torch.Tensor  # (B, D)
    output: torch.Tensor  # (B, C, H, W) reconstruction, model scale
    terms: dict[str, torch.Tensor]  # the family's own loss terms, unweighted


def warmup_fraction(epoch: int, i: int, steps: int, warmup: int) -> float:
    """How far the KL warm-up is at step ``i`` (from 0) of ``epoch`` (from 1) of ``steps``
    steps: rises linearly to 1 over ``warmup`` epochs (1 at once without warm-up)."""
    return 1.0 if warmup <= 0 else min(1.0, ((epoch - 1) * steps + i + 1) / (warmup * steps))


def step(
    model: Autoencoder,
    batch: torch.Tensor,
    obj: Objective,
    gen: torch.Generator | None,
    training: bool,
    noisy: bool = True,
    sample: bool | None = None,
    warm: float = 1.0,
    forward: Callable[..., Any] | None = None,
) -> StepOut:
    """Scale a uint8 batch, augment (training) and corrupt it, reconstruct, and score it.

    A family that samples its code (a vae) draws from ``gen`` when ``sample`` (default: when
    ``training``), else decodes its posterior mean; ``warm`` scales its KL term (warm-up).
    ``forward`` runs the model in training: the compiled and/or DistributedDataParallel
    wrapper of ``model`` (default ``model`` itself).
    """
    vr = model.value_range
    x = to_model_scale(batch, model.config.arch)
    if training and obj.augment:
        x = augment.augment_batch(x, obj.augment, gen)
    run = model if forward is None else forward
    if obj.self_supervised and noisy:
        return _self_supervised(model, run, x, obj, gen)
    inputs = corrupt(x, obj.noise, vr, gen) if obj.noise and noisy else x
    mask = None
    # the target stays the clean x and the family learns the mask; with noisy (the guard's
    # fixed batch too: a draem's loss on clean images starts at 0, as its unet starts as identity)
    if obj.anomalies and noisy:
        inputs, mask = synthetic_anomalies(inputs, vr, gen, obj.textures)
    eps = None
    if model.generative and (training if sample is None else sample):
        eps = torch.randn(len(x), model.config.latent_dim, generator=gen, device=x.device)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=obj.amp):
        out = run(inputs, eps) if mask is None else run(inputs, eps, mask)
    loss = reconstruction_loss(out.recon, x, obj.loss, vr)
    loss = loss + sparsity_penalty(out.code, obj.sparsity)
    for name, term in out.terms.items():  # the family's own terms (KL, ...)
        loss = loss + obj.term_weight(name, warm) * term.float()
    return StepOut(loss, x, inputs, out.code, out.recon, out.terms)


def _self_supervised(
    model: Autoencoder, run: Callable[..., Any], x: torch.Tensor, obj: Objective,
    gen: torch.Generator | None,
) -> StepOut:  # fmt: skip
    """A self-supervised step on the noisy batch ``x``: its loss, what the model saw and gave.
    ``run`` is the forward that trains (compiled, data-parallel); the output for the whole
    image, without gradient, comes from ``model`` itself."""
    amp = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=obj.amp)
    if obj.self_supervised == "n2v":
        inputs, mask = selfsup.blind_spots(x, gen)
        with amp:
            out = run(inputs, None)
        loss = selfsup.masked_mse(out.recon, x, mask)
        return StepOut(loss + sparsity_penalty(out.code, obj.sparsity), x, inputs, out.code,
                       out.recon, out.terms)  # fmt: skip
    first, second = selfsup.pair_picks(x, gen)
    with torch.no_grad(), amp:
        whole = model(x).recon
    inputs, target = selfsup.sub_image(x, first), selfsup.sub_image(x, second)
    with amp:
        out = run(inputs, None)
    loss = selfsup.neighbour_loss(out.recon, target, selfsup.sub_image(whole, first),
                                  selfsup.sub_image(whole, second))  # fmt: skip
    return StepOut(loss + sparsity_penalty(out.code, obj.sparsity), target, inputs, out.code,
                   out.recon, out.terms)  # fmt: skip


@torch.no_grad()
def evaluate(
    model: Autoencoder,
    images: torch.Tensor,
    obj: Objective,
    batch_size: int = 256,
    seed: int = 0,
    with_ssim: bool = False,
    group: Group = SINGLE,
    references: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Held-out numbers on the [0, 1] scale; the corruption uses a fixed seed, so they compare.
    The model runs under bf16 autocast when ``obj.amp`` (within 1e-3 of float32: ``fastpath``).
    ``references``: uint8 clean references of the (noisy) ``images`` of a self-supervised
    run, which the model's output for them is scored against (``denoised_psnr``, ``_ssim``).

    In a ``group`` of several processes each scores its share of ``images`` and the sums are
    added up, so every rank returns the numbers of the whole set.
    """
    model.eval()
    n = len(images)
    shared = group.on and n >= group.world
    if shared:
        images = images[group.shard(n)]
        references = None if references is None else references[group.shard(n)]
    device = next(model.parameters()).device
    gen = torch.Generator(device).manual_seed(seed + 7919)
    sums: dict[str, torch.Tensor] = {}
    ever_active = None
    spread = Spread()

    def add(key: str, value: torch.Tensor) -> None:
        sums[key] = sums.get(key, 0) + value.float().sum()

    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device, non_blocking=True)
        b = len(batch)
        clean = step(model, batch, obj, gen, training=False, noisy=False)
        target = to_unit_scale(clean.clean, model.config.arch)
        add("mse", mse_per_image(to_unit_scale(clean.output, model.config.arch), target))
        spread.add(to_unit_scale(clean.output, model.config.arch), target)
        if with_ssim:
            add("ssim", ssim_per_image(to_unit_scale(clean.output, model.config.arch), target))
        scored = clean
        if obj.noise:
            scored = step(model, batch, obj, gen, training=False)
            add("noisy_mse", mse_per_image(to_unit_scale(scored.inputs, model.config.arch), target))
            add(
                "denoised_mse",
                mse_per_image(to_unit_scale(scored.output, model.config.arch), target),
            )
        elif obj.anomalies or obj.self_supervised:  # the held-out loss is the objective's
            scored = step(model, batch, obj, gen, training=False)
        if references is not None:  # noisy images and their references: the output's error
            ref = references[start : start + batch_size].to(device).float() / 255
            seen = to_unit_scale(clean.inputs, model.config.arch)
            out = to_unit_scale(clean.output, model.config.arch).clamp(0, 1)
            add("noisy_mse", mse_per_image(seen, ref))
            add("denoised_mse", mse_per_image(out, ref))
            add("denoised_ssim", ssim_per_image(out, ref))
        add("loss", scored.loss * b)
        if "kl" in clean.terms:  # a vae: KL and the negative ELBO of one posterior draw
            pixels = clean.clean[0].numel()
            add("kl", clean.terms["kl"] * pixels * b)
            drawn = step(model, batch, obj, gen, training=False, noisy=False, sample=True)
            nll = nll_per_image(drawn.output, drawn.clean, obj.loss, model.value_range)
            add("nelbo", nll + drawn.terms["kl"] * pixels)
        if obj.sparsity:
            active = active_mask(clean.latent, obj.sparsity)
            add("active", active.float().mean(dim=1))
            ever_active = active.any(0) if ever_active is None else ever_active | active.any(0)
    keys = sorted(sums)
    totals = torch.stack([sums[k] for k in keys])
    if shared:
        totals = group.sum(totals)
        if ever_active is not None:
            ever_active = group.sum(ever_active.float()) > 0
    # the one host sync of an evaluation
    means = dict(zip(keys, (v / n for v in totals.tolist()), strict=True))
    result = {"count": n, "loss": means["loss"], "mse": means["mse"], "psnr": psnr(means["mse"])}
    if spread.collapsed(group if shared else SINGLE):
        result["collapsed"] = True
    if with_ssim:
        result["ssim"] = means["ssim"]
    if obj.noise or references is not None:
        result["noisy_psnr"] = psnr(means["noisy_mse"])
        result["denoised_psnr"] = psnr(means["denoised_mse"])
    if references is not None:
        result["denoised_ssim"] = means["denoised_ssim"]
    if obj.self_supervised:
        result["self_supervised_loss"] = means["loss"]
    if "kl" in means:
        result["kl"], result["nelbo"] = means["kl"], means["nelbo"]
    if obj.sparsity and ever_active is not None:
        result["active_fraction"] = means["active"]
        result["dead_units"] = int((~ever_active).sum().item())
    return result


class Spread:
    """How much the reconstructions of the held-out images differ from one another, against
    how much the images do: a model whose output no longer depends on its input (the same
    picture for every image) has collapsed."""

    LEVEL = 1 / 255  # less spread than one 8-bit level, at every pixel, is no spread at all

    def __init__(self) -> None:
        self.sums: torch.Tensor | None = None

    def add(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """One batch of [0, 1] reconstructions and images, (B, C, H, W) each."""
        # about mid-grey, so that float32 sums of squares keep their precision
        o, t = output.float() - 0.5, target.float() - 0.5
        batch = torch.stack([o.sum(0), o.square().sum(0), t.sum(0), t.square().sum(0)])
        count = torch.full_like(batch[:1], float(len(output)))
        batch = torch.cat([batch, count])
        self.sums = batch if self.sums is None else self.sums + batch

    def collapsed(self, group: Group = SINGLE) -> bool:
        if self.sums is None:
            return False
        sums = group.sum(self.sums) if group.on else self.sums
        n = sums[4]
        if float(n.min()) < 2:
            return False

        def std(s: torch.Tensor, sq: torch.Tensor) -> float:
            return float((sq / n - (s / n).square()).clamp_min(0).sqrt().max())

        return std(sums[0], sums[1]) < self.LEVEL <= std(sums[2], sums[3])
