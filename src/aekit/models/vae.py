"""``vae``: a variational autoencoder (Kingma & Welling; β-VAE after Higgins et al.) on the body
of another family (``--body resnet``, the default, or ``conv``): its encoder, with twice the
outputs for the posterior's mean and log-variance, and its decoder.

``forward(x, eps)`` decodes z = mean + std * eps, with ``eps`` drawn by the training step from
its seeded generator (so resume stays bit-exact), or the posterior mean when ``eps`` is None. Its
loss term ``kl`` is KL(q(z|x) || N(0, I)) per image, divided by the pixel values per image (the
reconstruction loss is a mean over them); the step weights it by ``--beta``. Search uses the
posterior mean; ``aekit generate`` decodes draws from the prior.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..errors import AekitError
from .base import AEOutput, Autoencoder
from .config import MAX_LATENT, ModelConfig
from .registry import Family, get_family, list_bodies

# the resnet body: 0.3 dB better than the conv body on CIFAR (BENCHMARKS.md, "Model families").
# (The conv body's Tanh once saturated to a blank image on MNIST, as the conv family did, with
# torch's default start; both now start with He weights and the output at the data's mean.)
DEFAULT_BODY = "resnet"
LOGVAR_RANGE = (-30.0, 20.0)  # keeps exp(logvar) finite in float32 and bf16


class VAE(Autoencoder):
    def __init__(self, config: ModelConfig | None = None, **kwargs: object) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        encoder, decoder = get_family(cfg.body).body  # type: ignore[arg-type, misc]
        self.encoder = encoder(replace(cfg, latent_dim=2 * cfg.latent_dim))
        self.decoder = decoder(cfg)
        self.pixels = cfg.in_channels * cfg.image_size**2

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and log-variance of q(z|x), each (B, latent_dim), in float32."""
        mean, logvar = self.encoder(x).float().chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> AEOutput:
        mean, logvar = self.posterior(x)
        z = mean if eps is None else mean + torch.exp(0.5 * logvar) * eps
        kl = kl_divergence(mean, logvar)
        return AEOutput(self.decode(z), mean, {"kl": kl.mean() / self.pixels})


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per row, in nats: (B, D) -> (B,)."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum(dim=1)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows ``a`` and ``b`` (D,) at fractions ``t`` (T,) ->
    (T, D): the path between two draws of a Gaussian prior that keeps their typical norm
    (linear where the two are parallel)."""
    na, nb = a / a.norm().clamp_min(1e-12), b / b.norm().clamp_min(1e-12)
    omega = torch.arccos((na * nb).sum().clamp(-1.0, 1.0))
    t = t[:, None]
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    s = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / s) * a + (torch.sin(t * omega) / s) * b


def check(cfg: ModelConfig) -> None:
    if cfg.body is None:
        cfg.body = DEFAULT_BODY
    if cfg.body not in list_bodies():
        raise AekitError(
            f"--body {cfg.body!r} cannot carry a vae: choose one of {', '.join(list_bodies())}"
        )
    if cfg.topk is not None:
        raise AekitError("--arch vae keeps a Gaussian code, not a top-k one: drop topk:K")
    get_family(cfg.body).check(cfg)  # its sizes and defaults (latent size, width)
    if cfg.latent_dim > MAX_LATENT // 2:
        raise AekitError(f"--latent-dim of a vae must be at most {MAX_LATENT // 2:,}")


def nll_constant(pixels: int) -> float:
    """The constant of a Gaussian decoder with variance 1/2 (the one whose negative log-likelihood
    is the sum of squared errors plus this), in nats per image of ``pixels`` values."""
    return 0.5 * pixels * math.log(math.pi)


FAMILY = Family(
    name="vae",
    summary="a variational autoencoder (--beta, --kl-warmup) on the resnet or conv body",
    model=VAE,
    check=check,
    value_range=(-1.0, 1.0),
    default_loss="mse",
    generative=True,
)
