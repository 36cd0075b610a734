"""Models: every arch and size runs forward/backward without NaN; conv at 32 is the seed's model."""

import pytest
import torch
from torch import nn

from aekit import Autoencoder, ModelConfig
from aekit.models import downsample_sizes, to_model_scale, to_unit_scale, topk_mask

CASES = [
    ("conv", 1, 28),
    ("conv", 3, 28),
    ("conv", 3, 32),
    ("conv", 1, 64),
    ("conv", 3, 96),
    ("keras", 1, 28),
    ("keras", 3, 28),
]


@pytest.mark.parametrize(("arch", "channels", "size"), CASES)
def test_forward_backward_shapes(arch: str, channels: int, size: int) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, in_channels=channels, image_size=size, base_channels=8,
                      latent_dim=16 if arch == "conv" else None)  # fmt: skip
    model = Autoencoder(cfg)
    lo, hi = model.value_range
    x = torch.rand(3, channels, size, size) * (hi - lo) + lo
    y, z, terms = model(x)
    assert z.shape == (3, cfg.latent_dim) and terms == {}
    assert y.shape == x.shape
    assert y.min() >= lo and y.max() <= hi
    ((y - x) ** 2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert torch.equal(model.decode(model.encode(x)), y)


def test_keras_code_is_8x4x4() -> None:
    model = Autoencoder(ModelConfig(arch="keras", in_channels=1, image_size=28))
    assert model.config.latent_dim == 128
    assert model.encode(torch.rand(2, 1, 28, 28)).shape == (2, 128)


def test_downsampling_stops_at_7_or_less() -> None:
    assert downsample_sizes(32) == [16, 8, 4]
    assert downsample_sizes(28) == [14, 7, 4]
    assert downsample_sizes(64) == [32, 16, 8, 4]
    assert downsample_sizes(224) == [112, 56, 28, 14, 7]


class SeedEncoder(nn.Module):
    """The seed tutorial's Encoder, verbatim in structure."""

    def __init__(self, c: int, b: int, d: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c, b, 3, padding=1, stride=2), nn.GELU(),
            nn.Conv2d(b, b, 3, padding=1), nn.GELU(),
            nn.Conv2d(b, 2 * b, 3, padding=1, stride=2), nn.GELU(),
            nn.Conv2d(2 * b, 2 * b, 3, padding=1), nn.GELU(),
            nn.Conv2d(2 * b, 2 * b, 3, padding=1, stride=2), nn.GELU(),
            nn.Flatten(), nn.Linear(16 * b * 2, d),
        )  # fmt: skip


class SeedDecoder(nn.Module):
    def __init__(self, c: int, b: int, d: int) -> None:
        super().__init__()
        self.linear = nn.Sequential(nn.Linear(d, 16 * b * 2), nn.GELU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * b, 2 * b, 3, output_padding=1, padding=1, stride=2), nn.GELU(),
            nn.Conv2d(2 * b, 2 * b, 3, padding=1), nn.GELU(),
            nn.ConvTranspose2d(2 * b, b, 3, output_padding=1, padding=1, stride=2), nn.GELU(),
            nn.Conv2d(b, b, 3, padding=1), nn.GELU(),
            nn.ConvTranspose2d(b, c, 3, output_padding=1, padding=1, stride=2), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.linear(z).reshape(z.shape[0], -1, 4, 4))


def test_conv_at_32_is_the_seed_model() -> None:
    ours = Autoencoder(ModelConfig(arch="conv", in_channels=3, image_size=32))
    enc, dec = SeedEncoder(3, 64, 256), SeedDecoder(3, 64, 256)
    seed_sd = {
        **{f"encoder.{k}": v for k, v in enc.state_dict().items()},
        **{f"decoder.{k}": v for k, v in dec.state_dict().items()},
    }
    ours_sd = ours.state_dict()
    assert {k: v.shape for k, v in ours_sd.items()} == {k: v.shape for k, v in seed_sd.items()}
    ours.load_state_dict(seed_sd)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y, z, _ = ours(x)
    torch.testing.assert_close(z, enc.net(x))
    torch.testing.assert_close(y, dec(enc.net(x)))
    assert sum(p.numel() for p in ours.parameters()) == 1_866_243


def test_topk_keeps_k_largest() -> None:
    z = torch.tensor([[0.1, 3.0, -2.0, 1.0], [5.0, 4.0, 3.0, 2.0]])
    torch.testing.assert_close(topk_mask(z, 2), torch.tensor([[0, 3.0, 0, 1.0], [5.0, 4.0, 0, 0]]))
    model = Autoencoder(
        ModelConfig(in_channels=3, image_size=32, latent_dim=32, base_channels=8, topk=5)
    )
    code = model.encode(torch.rand(4, 3, 32, 32))
    assert ((code != 0).sum(dim=1) == 5).all()


@pytest.mark.parametrize("arch", ["conv", "keras"])
def test_pixel_scales_round_trip(arch: str) -> None:
    u8 = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8)
    x = to_model_scale(u8, arch)
    assert x.min().item() == (-1.0 if arch == "conv" else 0.0)
    assert x.max().item() == 1.0
    torch.testing.assert_close(to_unit_scale(x, arch) * 255, u8.float())
