"""The contract every registered model family keeps (``aekit.models.list_models()``): a new
family is covered by these tests without editing them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import aekit
from aekit import AekitError, ModelConfig
from aekit.models import AEOutput, Autoencoder, create_model, get_family, list_models
from aekit.training.runs import load_checkpoint, read_metrics

FAMILIES = list_models()
SIZE = 28  # every family takes 28x28 (the keras model takes only that)


def small(arch: str, channels: int = 3) -> ModelConfig:
    return ModelConfig(arch=arch, in_channels=channels, image_size=SIZE, base_channels=8)


def batch(model: Autoencoder, n: int = 4, seed: int = 0) -> torch.Tensor:
    lo, hi = model.value_range
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, model.config.in_channels, SIZE, SIZE, generator=g) * (hi - lo) + lo


def test_the_tutorial_families_are_registered() -> None:
    assert FAMILIES[:2] == ["conv", "keras"]


@pytest.mark.parametrize("arch", FAMILIES)
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_returns_the_output_type(arch: str, channels: int) -> None:
    torch.manual_seed(0)
    model = create_model(small(arch, channels))
    assert isinstance(model, Autoencoder) and type(model) is get_family(arch).model
    x = batch(model)
    if get_family(arch).segments:  # it trains on the mask of pasted anomalies: every weight
        out = model(x, None, (x[:, :1] > 0).float())
        assert set(out.terms) == {"focal"}
    else:
        out = model(x)
    assert isinstance(out, AEOutput)
    assert out.recon.shape == x.shape and out.code.shape == (4, model.config.latent_dim)
    lo, hi = model.value_range
    assert torch.isfinite(out.recon).all() and lo <= out.recon.min() and out.recon.max() <= hi
    loss = ((out.recon - x) ** 2).mean() + sum(out.terms.values())
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert torch.equal(model.encode(x), out.code)


@pytest.mark.parametrize("arch", FAMILIES)
def test_autoencoder_of_a_config_is_its_family(arch: str) -> None:
    model = Autoencoder(small(arch))
    assert type(model) is get_family(arch).model


@pytest.mark.parametrize("arch", FAMILIES)
def test_weights_round_trip_through_safetensors(arch: str, tmp_path) -> None:
    torch.manual_seed(1)
    model = create_model(small(arch)).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "w")
    again = create_model(small(arch)).eval()
    again.load_state_dict(load_file(tmp_path / "w"))
    x = batch(model)
    assert torch.equal(again(x).recon, model(x).recon)


@pytest.mark.parametrize("arch", FAMILIES)
def test_channels_last_matches_contiguous(arch: str) -> None:
    torch.manual_seed(2)
    model = create_model(small(arch)).eval()
    x = batch(model)
    want = model(x).recon
    got = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    # other convolution kernels, float32 still: they differed by 4.2e-6 at most (31% of this
    # bound, resnet and vae), under oneDNN's AVX512 and AVX2 kernels alike
    torch.testing.assert_close(got.recon, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", FAMILIES)
def test_bf16_autocast_is_close_to_float32(arch: str) -> None:
    torch.manual_seed(3)
    model = create_model(small(arch)).eval()
    x = batch(model)
    want = model(x).recon  # float32, set explicitly: autocast off
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=True):
        got = model(x).recon.float()
    lo, hi = model.value_range
    # at most 0.028 of the range (vae; resnet 0.026), the same under AVX512-BF16 and AVX2 kernels:
    # bf16's rounding of weights and activations (round to nearest on every CPU) is what moves it
    assert (got - want).abs().max() <= 0.05 * (hi - lo)


@pytest.mark.parametrize("arch", FAMILIES)
def test_train_resume_embed_and_search(arch: str, tmp_path) -> None:
    # on the CPU: bit-exact resume is a CPU promise (GPU kernels vary; the CUDA test below)
    opts = {"arch": arch, "image_size": SIZE, "base_channels": 8, "limit": 64, "batch_size": 32,
            "progress": False, "amp": False, "device": "cpu"}  # fmt: skip
    straight = aekit.train(tmp_path / "straight", "shapes", epochs=2, **opts)
    halted = aekit.train(tmp_path / "halted", "shapes", epochs=1, **opts)
    aekit.train(halted, resume=True, epochs=2, progress=False)
    a, b = load_checkpoint(straight)["model"], load_checkpoint(halted)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-exact resume
    model = aekit.load(straight, device="cpu")
    assert type(model) is get_family(arch).model
    test = aekit.load_dataset("shapes", "test", image_size=SIZE).subset(slice(0, 50))
    store = aekit.embed(model, test, run=straight)
    assert store.dim == model.config.latent_dim and len(store) == 50
    _, idx = store.search(store.vectors[:3], k=5, exclude=[0, 1, 2])
    assert idx.shape == (3, 5) and not (idx == [[0], [1], [2]]).any()


def test_unknown_family_lists_the_registered_ones() -> None:
    with pytest.raises(AekitError, match="choose one of conv, keras"):
        aekit.make_config("shapes", arch="vgg")
    with pytest.raises(AekitError, match="unknown --arch"):
        create_model(ModelConfig(arch="vgg", in_channels=3, image_size=32))


def test_a_family_rule_holds_in_the_api_as_in_the_cli() -> None:
    with pytest.raises(AekitError, match="drop --latent-dim"):
        aekit.make_config("shapes", arch="keras", latent_dim=64)
    assert aekit.make_config("mnist", arch="keras").model.latent_dim == 128
    assert aekit.make_config("shapes").model.latent_dim == 256


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch", FAMILIES)
def test_every_family_trains_resumes_and_embeds_on_cuda(arch: str, tmp_path) -> None:
    # the GPU fast path (bf16 autocast, channels_last, torch.compile) for every family
    opts = {"arch": arch, "image_size": SIZE, "base_channels": 8, "limit": 256, "batch_size": 64,
            "progress": False, "device": "cuda"}  # fmt: skip
    straight = aekit.train(tmp_path / "straight", "shapes", epochs=2, **opts)
    halted = aekit.train(tmp_path / "halted", "shapes", epochs=1, **opts)
    aekit.train(halted, resume=True, epochs=2, progress=False)
    a, b = read_metrics(straight), read_metrics(halted)
    assert [r["epoch"] for r in b] == [1, 2]  # GPU kernels are not bit-exact: the same, closely
    assert b[-1]["test_mse"] == pytest.approx(a[-1]["test_mse"], rel=0.02)
    model = aekit.load(straight, device="cuda")
    test = aekit.load_dataset("shapes", "test", image_size=SIZE).subset(slice(0, 50))
    store = aekit.embed(model, test, run=straight)
    assert store.dim == model.config.latent_dim and np.isfinite(store.vectors).all()
