"""The unet family: any image size, a residual output, a pooled code that is not decoded."""

from __future__ import annotations

import json

import pytest
import torch

import aekit
from aekit import AekitError, ModelConfig
from aekit.models import check_input, create_model


def unet(channels: int = 3) -> aekit.Autoencoder:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="unet", in_channels=channels, image_size=32, base_channels=8,
                      latent_dim=24)  # fmt: skip
    return create_model(cfg).eval()


@pytest.mark.parametrize("shape", [(32, 32), (28, 31), (9, 70), (1, 1)])
def test_any_size_goes_in_and_comes_back(shape: tuple[int, int]) -> None:
    model = unet()
    x = torch.rand(2, 3, *shape) * 2 - 1
    out = model(x)
    assert out.recon.shape == x.shape and out.code.shape == (2, 24)
    assert torch.isfinite(out.recon).all()
    check_input(model, (3, *shape), "these")  # no size refused, only channels
    with pytest.raises(AekitError, match="as many channels"):
        check_input(model, (1, *shape), "these")


def test_the_output_is_the_input_plus_a_residual() -> None:
    model = unet()
    x = torch.rand(2, 3, 20, 20) * 2 - 1
    assert torch.equal(model(x).recon, x)  # the head starts at zero: a new model copies
    torch.nn.init.normal_(model.head.weight)
    assert not torch.equal(model(x).recon, x)
    assert model(x * 3).recon.abs().max() <= 1  # clamped to the value range


def test_each_output_pixel_depends_only_on_its_neighbourhood() -> None:
    # no normalisation over the image: what happens far away does not reach a pixel (so large
    # photos can be denoised in tiles)
    model = unet()
    torch.nn.init.normal_(model.head.weight, std=0.1)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    y = x.clone()
    y[..., 200:, 200:] = -1.0  # change one corner only
    a, b = model(x).recon, model(y).recon
    assert torch.equal(a[..., :64, :64], b[..., :64, :64])
    assert not torch.equal(a[..., 200:, 200:], b[..., 200:, 200:])


def test_the_code_is_the_pooled_bottleneck_and_does_not_decode() -> None:
    model = unet()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.equal(model.encode(x), model(x).code)
    crop = x[:, :, :24, :24]  # the pooled code of a smaller image has the same size
    assert model.encode(crop).shape == (3, 24)
    with pytest.raises(AekitError, match="no code to decode"):
        model.decode(model.encode(x))


def test_unet_refuses_topk() -> None:
    with pytest.raises(AekitError, match="no bottleneck vector"):
        aekit.make_config("shapes", arch="unet", sparsity="topk:4")


def test_a_store_keeps_one_image_size(cli, tmp_path) -> None:
    # a unet embeds any size: appending another size to its store is refused before encoding
    run = aekit.train(tmp_path / "u", "shapes", arch="unet", epochs=1, limit=64, image_size=20,
                      base_channels=4, latent_dim=8, progress=False)  # fmt: skip
    emb = tmp_path / "emb"
    code, _, err = cli("embed", run, "--data", "shapes", "--split", "test", "--out", emb)
    assert code == 0, err
    before = (emb / "manifest.json").read_bytes()
    code, _, err = cli("embed", run, "--data", "shapes", "--split", "train", "--image-size", 24,
                       "--append", "--out", emb)  # fmt: skip
    assert code == 2 and "share one size; pass --image-size 20" in err and err.count("\n") == 1
    assert (emb / "manifest.json").read_bytes() == before
    code, _, err = cli("embed", run, "--data", "shapes", "--split", "train", "--image-size", 20,
                       "--append", "--out", emb)  # fmt: skip
    assert code == 0, err


def test_a_plain_unet_copies_and_reports_a_finite_psnr(cli, tmp_path) -> None:
    # trained without noise, a unet starts as (and stays) the identity: its numbers stay JSON
    run = aekit.train(tmp_path / "u", "shapes", arch="unet", epochs=1, limit=64, image_size=16,
                      base_channels=4, latent_dim=8, progress=False)  # fmt: skip
    code, out, err = cli("eval", run, "--json", "--limit", 20)
    assert code == 0, err
    assert json.loads(out)["psnr"] == 100.0 and "Infinity" not in out  # the cap: identical


def test_training_output_is_unclamped_so_a_saturated_model_still_learns() -> None:
    model = unet().train()
    torch.nn.init.constant_(model.head.bias, 5.0)  # every output far past the value range
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = model(x).recon
    assert out.max() > 1  # not clamped while training
    ((out - x) ** 2).mean().backward()
    assert model.head.bias.grad.abs().sum() > 0  # so the loss still pulls it back
    assert model.eval()(x).recon.max() <= 1  # clamped when used
