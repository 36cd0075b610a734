"""aekit generate / interpolate, from Python and from the command line."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import aekit
from aekit.models import to_model_scale, to_unit_scale
from aekit.models.vae import slerp
from aekit.viz import save_image


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> object:
    out = tmp_path_factory.mktemp("gen") / "vae"
    return aekit.train(out, "shapes", arch="vae", epochs=1, limit=128, image_size=16,
                       base_channels=8, latent_dim=8, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory) -> object:
    out = tmp_path_factory.mktemp("gen") / "conv"
    return aekit.train(out, "shapes", epochs=1, limit=128, image_size=16, base_channels=8,
                       latent_dim=8, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def two_images(tmp_path_factory) -> tuple:
    folder = tmp_path_factory.mktemp("pair")
    ds = aekit.load_dataset("shapes", "test", image_size=16)
    paths = [save_image(ds.images[i], folder / f"{i}.png") for i in (0, 5)]
    return ds.images[0], ds.images[5], paths


def test_generate_decodes_seeded_draws_of_the_prior(vae_run) -> None:
    model = aekit.load(vae_run)
    images = aekit.generate(model, n=6, seed=3, temperature=0.5)
    assert images.shape == (6, 3, 16, 16) and images.min() >= 0 and images.max() <= 1
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(3)) * 0.5
    with torch.no_grad():
        want = to_unit_scale(model.eval().decode(z), "vae")
    torch.testing.assert_close(images, want)
    assert torch.equal(aekit.generate(model, n=6, seed=3, temperature=0.5), images)
    assert not torch.equal(aekit.generate(model, n=6, seed=4, temperature=0.5), images)


def test_generate_needs_a_prior_and_checks_its_numbers(conv_run, vae_run) -> None:
    with pytest.raises(aekit.AekitError, match="--arch conv has no prior to sample"):
        aekit.generate(aekit.load(conv_run))
    model = aekit.load(vae_run)
    for bad in (0, -3, 5000, 2.5, True):
        with pytest.raises(aekit.AekitError, match="--n must be a whole number"):
            aekit.generate(model, n=bad)
    for bad in (0, -1.0, float("inf"), float("nan"), "1", True, 10.5, 1e30):
        with pytest.raises(aekit.AekitError, match="--temperature must be a positive"):
            aekit.generate(model, temperature=bad)
    for bad in (-1, 1.5, None, "x", 2**64):
        with pytest.raises(aekit.AekitError, match="--seed must be a whole number"):
            aekit.generate(model, seed=bad)
    with pytest.raises(aekit.AekitError, match="--steps must be a whole number from 2"):
        aekit.interpolate(model, *aekit.load_dataset("shapes", "test", image_size=16).images[:2],
                          steps=1)  # fmt: skip


@pytest.mark.parametrize("which", ["conv", "vae"])
def test_interpolate_decodes_the_path_between_two_codes(which, conv_run, vae_run,
                                                        two_images) -> None:  # fmt: skip
    run = conv_run if which == "conv" else vae_run
    model = aekit.load(run).eval()
    a, b, _ = two_images
    strip = aekit.interpolate(model, a, b, steps=5)
    assert strip.shape == (5, 3, 16, 16)
    with torch.no_grad():
        za, zb = model.encode(to_model_scale(torch.stack([a, b]), model.config.arch))
        t = torch.linspace(0, 1, 5)
        z = slerp(za, zb, t) if which == "vae" else za + t[:, None] * (zb - za)
        want = to_unit_scale(model.decode(z), model.config.arch)
        ends = to_unit_scale(model(to_model_scale(torch.stack([a, b]), model.config.arch)).recon,
                             model.config.arch)  # fmt: skip
    torch.testing.assert_close(strip, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(strip[[0, -1]], ends, atol=1e-5, rtol=1e-4)  # the ends: recons


def test_interpolate_refuses_a_family_without_a_decodable_code(tmp_path, two_images) -> None:
    run = aekit.train(tmp_path / "u", "shapes", arch="unet", epochs=1, limit=64, image_size=16,
                      base_channels=4, latent_dim=8, progress=False)  # fmt: skip
    a, b, _ = two_images
    with pytest.raises(aekit.AekitError, match="unet has no code to decode"):
        aekit.interpolate(aekit.load(run), a, b)


def test_the_commands_write_their_pictures(cli, vae_run, two_images, tmp_path) -> None:
    code, out, err = cli("generate", vae_run, "--n", 10, "--seed", 1, "--out", tmp_path / "g.png")
    assert code == 0 and out == f"wrote {tmp_path / 'g.png'}\n" and err == ""
    assert Image.open(tmp_path / "g.png").size[0] > 200
    _, _, paths = two_images
    code, out, _ = cli("interpolate", vae_run, *paths, "--steps", 4, "--out", tmp_path / "s.png")
    assert code == 0 and out == f"wrote {tmp_path / 's.png'}\n"
    w, h = Image.open(tmp_path / "s.png").size
    assert w > 3 * h  # a strip: A, the four decoded points, B


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "{conv}", "--out", "{tmp}/x.png"], "--arch conv has no prior"),
        (["generate", "{vae}", "--n", "0", "--out", "{tmp}/x.png"], "--n: must be from 1"),
        (["generate", "{vae}", "--temperature", "-1", "--out", "{tmp}/x.png"], "above 0"),
        (["generate", "{vae}", "--temperature", "1e30", "--out", "{tmp}/x.png"], "at most 10"),
        (["generate", "{vae}", "--out", "{tmp}/x.jpg"], "give a path ending in .png"),
        (
            ["interpolate", "{vae}", "{a}", "{a}", "--steps", "1", "--out", "{tmp}/x.png"],
            "--steps: must be from 2",
        ),
        (
            ["interpolate", "{vae}", "{a}", "{tmp}/missing.png", "--out", "{tmp}/x.png"],
            "missing.png",
        ),
        (["generate", "{tmp}/norun", "--out", "{tmp}/x.png"], "norun"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(cli, args, message, vae_run, conv_run,
                                                  two_images, tmp_path) -> None:  # fmt: skip
    fill = {"vae": vae_run, "conv": conv_run, "a": two_images[2][0], "tmp": tmp_path}
    code, _, err = cli(*(a.format(**fill) for a in args))
    assert code != 0 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.jpg").exists()
