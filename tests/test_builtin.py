"""Built-in models (``builtin:NAME``) and ``--init``: a registry of weights with sha256, model
cards and the run config that made them; ``aekit denoise`` with no run picks the denoiser of each
photo's mode; ``aekit.denoise``, ``aekit.load`` and ``aekit serve`` take them; ``aekit train
--init RUN|builtin:NAME`` starts from trained weights. The registry here is built, by the
maintainers' own tool, from small runs trained by the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.errors import AekitError
from aekit.models import pretrained
from aekit.training.publish import publish_builtin
from aekit.training.runs import load_config

TINY = ["--base-channels", "4", "--latent-dim", "8", "--batch-size", "8"]


def photo(path: Path, w: int, h: int, gray: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 1 if gray else 3), dtype=np.uint8)
    img = Image.fromarray(small.squeeze(-1) if gray else small).resize((w, h), Image.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def train_denoiser(cli, root: Path, gray: bool, out: Path, *extra: str) -> Path:
    for i, (w, h) in enumerate([(72, 48), (48, 72), (64, 64)]):
        photo(root / f"{i}.png", w, h, gray=gray, seed=i)
    code, _, err = cli("train", "--data", f"folder:{root}", "--arch", "unet", "--noise",
                       "gaussian:0-50", "--patch-size", "16", "--epochs", "1", *TINY,
                       "--out", out, *extra)  # fmt: skip
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A weights folder with a colour and a gray default denoiser, and their runs."""
    from aekit.cli import main

    root = tmp_path_factory.mktemp("builtin")

    def cli(*args):  # the module fixture has no capsys: main's exit status only
        return main([str(a) for a in args]), "", ""

    runs = {}
    for name, gray in (("tiny-color", False), ("tiny-gray", True)):
        runs[name] = train_denoiser(cli, root / f"{name}-photos", gray, root / name)
    folder = root / "weights"
    publish_builtin(runs["tiny-color"], "tiny-color", "a test model", default_for=3,
                    folder=folder)  # fmt: skip
    publish_builtin(runs["tiny-gray"], "tiny-gray", "a test model", default_for=1, folder=folder)
    publish_builtin(runs["tiny-color"], "tiny-jpeg", "a test model for JPEG files",
                    folder=folder, default_for_jpeg=3)  # fmt: skip
    return folder, runs


@pytest.fixture
def builtin(registry, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    folder, runs = registry
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", folder)
    return runs


def test_the_registry_holds_weights_hashes_cards_and_configs(registry) -> None:
    folder, runs = registry
    index = json.loads((folder / "index.json").read_text())
    assert sorted(index) == ["tiny-color", "tiny-gray", "tiny-jpeg"]
    entry = index["tiny-color"]
    assert entry["sha256"] == pretrained.sha256(folder / entry["weights"])
    assert entry["noise"] == "gaussian:0-50" and entry["default_for"] == 3
    assert entry["config"] == load_config(runs["tiny-color"]).to_dict()["model"]
    card = (folder / entry["card"]).read_text()
    assert card.startswith("---\nlibrary_name: aekit") and entry["sha256"] in card


def test_denoise_lists_the_built_in_models(cli, builtin) -> None:
    code, out, err = cli("denoise", "--list")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("tiny-color (default): colour, gaussian:0-50; a test model")
    assert lines[1].startswith("tiny-gray (default): gray, gaussian:0-50")
    assert lines[2].startswith("tiny-jpeg (default for JPEG files): colour")


def test_a_jpeg_file_gets_the_jpeg_denoiser_of_its_mode(cli, builtin, tmp_path: Path) -> None:
    colour = photo(tmp_path / "c.jpg", 40, 32, seed=5)
    gray = photo(tmp_path / "g.jpg", 32, 40, gray=True, seed=6)
    png = photo(tmp_path / "p.png", 40, 32, seed=7)
    code, _, err = cli("denoise", colour, gray, png, "--out", tmp_path / "o")
    assert code == 0, err
    assert "built-in tiny-jpeg (trained on noisy JPEG files)" in err
    assert "built-in tiny-gray" in err and "built-in tiny-color" in err  # no gray JPEG model
    named = tmp_path / "renamed.png"  # by its header, not its name
    named.write_bytes(colour.read_bytes())
    code, _, err = cli("denoise", named, "--out", tmp_path / "o2")
    assert code == 0 and "tiny-jpeg" in err, err


def test_denoise_with_no_run_takes_each_photo_s_mode(cli, builtin, tmp_path: Path) -> None:
    colour = photo(tmp_path / "c.png", 40, 32, seed=5)
    gray = photo(tmp_path / "g.png", 32, 40, gray=True, seed=6)
    code, _, err = cli("denoise", colour, gray, "--out", tmp_path / "auto")
    assert code == 0, err
    assert "built-in tiny-color" in err and "built-in tiny-gray" in err
    for name, run in (("c", builtin["tiny-color"]), ("g", builtin["tiny-gray"])):
        code, _, err = cli("denoise", run, tmp_path / f"{name}.png", "--out", tmp_path / name)
        assert code == 0, err
        made = np.array(Image.open(tmp_path / "auto" / f"{name}_denoised.png"))
        assert np.array_equal(made, np.array(Image.open(tmp_path / name / f"{name}_denoised.png")))
    assert np.array(Image.open(tmp_path / "auto" / "g_denoised.png")).ndim == 2  # gray stays gray


def test_a_named_model_denoises_every_photo(cli, builtin, tmp_path: Path) -> None:
    colour = photo(tmp_path / "c.png", 40, 32, seed=5)
    code, _, err = cli("denoise", colour, "--model", "tiny-gray", "--out", tmp_path / "o",
                       "--add-noise", "gaussian:25")  # fmt: skip
    assert code == 0, err
    assert "as the model's training data" in err  # the colour photo went through as gray
    assert np.array(Image.open(tmp_path / "o" / "c_denoised.png")).ndim == 2  # a gray model's


def test_a_bad_model_choice_is_one_line(cli, builtin, tmp_path: Path) -> None:
    colour = photo(tmp_path / "c.png", 40, 32)
    for paths, says in (
        ([colour, "--model", "nope"],
         "no built-in model 'nope': the built-in models are tiny-color, tiny-gray"),
        ([builtin["tiny-color"], colour, "--model", "tiny-gray"],
         "is a run and --model names a built-in model: pass one of them"),
        ([], "name the photos to denoise"),
    ):  # fmt: skip
        code, _, err = cli("denoise", *paths, "--out", tmp_path / "o")
        assert code != 0 and says in err and len(err.strip().splitlines()) == 1, err
        assert not any((tmp_path / "o").glob("*.png"))


def test_weights_that_do_not_match_their_hash_are_refused(cli, registry, tmp_path, monkeypatch):
    folder, _ = registry
    copy = tmp_path / "weights"
    copy.mkdir()
    for f in folder.iterdir():
        copy.joinpath(f.name).write_bytes(f.read_bytes())
    weights = copy / "tiny-color.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", copy)
    code, _, err = cli("denoise", photo(tmp_path / "c.png", 40, 32), "--out", tmp_path / "o")
    assert code != 0 and "does not match its sha256" in err and len(err.splitlines()) == 1
    assert not any((tmp_path / "o").glob("*.png"))


def test_the_api_loads_and_denoises_with_built_in_models(builtin, tmp_path: Path) -> None:
    run = builtin["tiny-color"]
    model = aekit.load("builtin:tiny-color")
    want = aekit.load(run).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    assert aekit.training.runs.load_config("builtin:tiny-color") == load_config(run)
    u8 = torch.from_numpy(np.array(Image.open(photo(tmp_path / "c.png", 40, 32)))).permute(2, 0, 1)
    _, den = aekit.denoise(None, [u8], noise="gaussian:25", seed=3)
    _, ref = aekit.denoise(aekit.load(run), [u8], noise="gaussian:25", seed=3)
    assert torch.equal(den[0], ref[0]) and den[0].shape == (3, 32, 40)
    _, by_name = aekit.denoise("builtin:tiny-color", [u8], noise="gaussian:25", seed=3)
    assert torch.equal(by_name[0], ref[0])


def test_serve_without_a_run_serves_the_colour_denoiser(builtin, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from aekit.web.server import create_app

    client = TestClient(create_app("builtin:tiny-color", None, 1 << 20, 1 << 20))
    info = client.get("/api/info").json()
    assert info["run"] == "builtin:tiny-color" and info["full_size"] is True
    png = photo(tmp_path / "c.png", 40, 32).read_bytes()
    answer = client.post("/api/denoise", files={"image": ("c.png", png, "image/png")},
                         data={"noise": "gaussian", "level": "25"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["denoised"].startswith("data:image/png;base64,")


# ---- --init -------------------------------------------------------------------------------


def test_init_starts_from_the_weights_with_a_new_optimizer(cli, builtin, tmp_path) -> None:
    """With a rate too small to move them, a run started from a model ends with its weights."""
    root = tmp_path / "photos"
    for spec in ("builtin:tiny-color", str(builtin["tiny-color"])):
        out = tmp_path / ("b" if spec.startswith("builtin:") else "r")
        train_denoiser(cli, root, False, out, "--init", spec, "--lr", "1e-12",
                       "--noise", "poisson:30")  # fmt: skip
        cfg = load_config(out)
        assert cfg.train.init == spec if spec.startswith("builtin:") else str(Path(spec))
        assert cfg.model == load_config(builtin["tiny-color"]).model
        assert cfg.train.noise == "poisson:30"  # the command's training options
        start, end = aekit.load(builtin["tiny-color"]).state_dict(), aekit.load(out).state_dict()
        assert max(float((end[k] - v).abs().max()) for k, v in start.items()) < 1e-6
        ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
        assert len(ckpt["optimizer"]["state"]) > 0  # its own optimizer, from the first step


@pytest.mark.parametrize(("extra", "says"), [
    (["--arch", "conv"], "is a unet model and --arch conv is another family"),
    (["--base-channels", "8"], "has --base-channels 4, not 8: the weights decide the model"),
    ([], "is a gray (1 channel) model and the data are colour (3 channels)"),
])  # fmt: skip
def test_init_from_another_model_is_one_line(cli, builtin, tmp_path, extra, says) -> None:
    root = tmp_path / "photos"
    for i in range(3):
        photo(root / f"{i}.png", 64, 48, seed=i)
    init = "builtin:tiny-gray" if not extra else "builtin:tiny-color"
    code, _, err = cli("train", "--data", f"folder:{root}", "--noise", "gaussian:25",
                       "--patch-size", "16", "--epochs", "1", "--init", init, *extra,
                       "--out", tmp_path / "r")  # fmt: skip
    assert code != 0 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r" / "config.json").exists()
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_init_of_a_missing_run_or_model_is_one_line(cli, builtin, tmp_path) -> None:
    for init, says in ((tmp_path / "none", "does not exist"),
                       ("builtin:nope", "no built-in model 'nope'")):  # fmt: skip
        code, _, err = cli("train", "--data", "shapes", "--init", init, "--out", tmp_path / "r")
        assert code != 0 and says in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "r").exists()


def test_the_model_card_s_command_remakes_an_init_run(builtin, tmp_path) -> None:
    from aekit.training.card import train_command

    cfg = aekit.make_config(f"folder:{tmp_path}", init="builtin:tiny-color", noise="poisson:30",
                            patch_size=16)  # fmt: skip
    command = train_command(cfg, tmp_path / "r")
    assert "--init builtin:tiny-color" in command and "--arch unet" in command
    again = aekit.make_config(f"folder:{tmp_path}", init="builtin:tiny-color",
                              noise="poisson:30", patch_size=16, arch="unet",
                              base_channels=4, latent_dim=8)  # fmt: skip
    assert again == cfg


def test_photos_as_cameras_and_programs_write_them(cli, builtin, tmp_path: Path) -> None:
    """A 16-bit gray PNG, a palette PNG, a CMYK JPEG and an EXIF-rotated JPEG: each converted
    and said so, and denoised at its own size, upright."""
    rng = np.random.default_rng(3)
    rgb = np.array(Image.fromarray(rng.integers(0, 256, (6, 7, 3), np.uint8)).resize((40, 32)))
    Image.fromarray(rng.integers(0, 65536, (32, 40)).astype(np.uint16)).save(tmp_path / "a.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "b.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: shown rotated by 90 degrees
    Image.fromarray(rgb).save(tmp_path / "d.jpg", exif=exif)
    files = [tmp_path / name for name in ("a.png", "b.png", "c.jpg", "d.jpg")]
    code, _, err = cli("denoise", *files, "--out", tmp_path / "o")
    assert code == 0, err
    for name, says in (("a.png", "from 16-bit grayscale to grayscale"),
                       ("b.png", "from palette to RGB"), ("c.jpg", "from CMYK to RGB"),
                       ("d.jpg", "upright, as its EXIF orientation says")):  # fmt: skip
        assert f"{tmp_path / name} {says}" in err.replace("converted ", "").replace(
            "turned ", ""), (name, err)  # fmt: skip
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "o").iterdir()}
    assert sizes == {"a_denoised.png": (40, 32), "b_denoised.png": (40, 32),
                     "c_denoised.png": (40, 32), "d_denoised.png": (32, 40)}  # fmt: skip
    assert Image.open(tmp_path / "o" / "a_denoised.png").mode == "L"


def test_a_damaged_photo_anywhere_in_the_list_leaves_nothing_written(cli, builtin, tmp_path):
    good = photo(tmp_path / "good.png", 40, 32, seed=1)
    data = photo(tmp_path / "w.png", 64, 48).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])  # its header reads, its pixels not
    code, out, err = cli("denoise", good, tmp_path / "cut.png", "--out", tmp_path / "o")
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "cannot read" in err and "cut.png" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize("extra", [["p.png"], ["--model", "tiny-gray"], ["--out", "o"]])
def test_list_takes_nothing_else(cli, builtin, extra) -> None:
    code, out, err = cli("denoise", "--list", *extra)
    assert code != 0 and out == "" and "--list names the built-in models and stops" in err


def test_the_api_s_bad_images_are_one_line_each(builtin) -> None:
    u8 = torch.zeros(3, 16, 16, dtype=torch.uint8)
    for images, says in (
        ([torch.zeros(4, 16, 16, dtype=torch.uint8)], "photos have 1 (gray) or 3 (colour) "
                                                      "channels, got 4"),
        (u8, "got one (3, 16, 16) image: pass [image]"),
        (None, "got NoneType"),
        ([torch.zeros(3, 1, 1, dtype=torch.uint8)], "the image is 1x1 pixels: this model needs"),
    ):  # fmt: skip
        with pytest.raises(AekitError, match=re.escape(says)):
            aekit.denoise(None, images)


def test_the_api_takes_each_photo_s_built_in_model(builtin) -> None:
    gen = torch.Generator().manual_seed(0)
    gray = torch.randint(0, 256, (1, 24, 32), dtype=torch.uint8, generator=gen)
    colour = torch.randint(0, 256, (3, 32, 24), dtype=torch.uint8, generator=gen)
    _, den = aekit.denoise(None, [gray, colour, gray])
    assert [tuple(d.shape) for d in den] == [(1, 24, 32), (3, 32, 24), (1, 24, 32)]
    _, alone = aekit.denoise("builtin:tiny-gray", [gray])
    assert torch.equal(alone[0], den[0]) and torch.equal(den[0], den[2])


def test_a_damaged_index_is_one_line(cli, registry, tmp_path, monkeypatch) -> None:
    folder, _ = registry
    index = json.loads((folder / "index.json").read_text())
    twice = {**index, "again": {**index["tiny-color"]}}  # a second colour default
    jpeg_twice = {**index, "again": {**index["tiny-jpeg"]}}
    cases = (("[]", "is damaged"), (json.dumps(twice), "two default models"),
             (json.dumps(jpeg_twice), "two default models for 3-channel JPEG"))  # fmt: skip
    for text, says in cases:
        copy = tmp_path / f"w{len(text)}"
        copy.mkdir()
        (copy / "index.json").write_text(text)
        monkeypatch.setattr(pretrained, "WEIGHTS_DIR", copy)
        code, out, err = cli("denoise", "--list")
        assert code != 0 and out == "" and says in err and "reinstall aekit" in err, err
        assert len(err.strip().splitlines()) == 1


def test_evaluating_a_built_in_model_needs_data_and_a_bare_name_is_pointed_to_it(cli, builtin):
    code, _, err = cli("eval", "builtin:tiny-color", "--full-size")
    assert code != 0 and "pass --data SOURCE" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(AekitError, match="for the built-in model, write builtin:tiny-color"):
        aekit.load("tiny-color")


def test_an_error_is_the_only_line(cli, builtin, tmp_path) -> None:
    (tmp_path / "not.png").write_text("not an image")
    code, _, err = cli("denoise", tmp_path / "not.png", "--out", tmp_path / "o")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "built-in" not in err, err


# ---- the models that ship -----------------------------------------------------------------

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "Kodak24"


def test_the_shipped_models_load_with_their_hashes_and_cards() -> None:
    shipped = pretrained.available()
    assert {m.default_for for m in shipped.values()} >= {1, 3}  # a gray and a colour default
    for name, entry in shipped.items():
        assert pretrained.sha256(entry.weights) == entry.sha256, name
        assert entry.card.read_text().startswith("---\nlibrary_name: aekit"), name
        assert entry.weights.stat().st_size < 8 * 2**20, name  # a few MB in the wheel
        model = aekit.load(f"builtin:{name}")
        assert model.config == entry.config and not model.training


@pytest.mark.parametrize("gray", [False, True])
def test_a_shipped_denoiser_cleans_a_real_photo(gray: bool) -> None:
    if not KODAK.is_dir():
        pytest.skip("the Kodak24 photos are not at ../shared/data/photos/Kodak24")
    from aekit.denoising.fullsize import add_noise, to_uint8
    from aekit.metrics import psnr_per_image
    from aekit.training.objectives import Noise

    with Image.open(KODAK / "kodim05.png") as img:
        a = np.array(img.convert("L" if gray else "RGB"))[100:228, 150:278]
    u8 = torch.from_numpy(a[..., None] if gray else a).permute(2, 0, 1).contiguous()
    clean = u8.float()[None] / 255
    for sigma in (15, 25, 50):  # one blind model for every level
        noisy = add_noise(u8, Noise("gaussian", float(sigma)), 0)
        _, den = aekit.denoise(None, [(noisy * 255).round().clamp(0, 255).to(torch.uint8)])
        before = float(psnr_per_image(noisy[None], clean)[0])
        after = float(psnr_per_image(to_uint8(den[0]).float()[None] / 255, clean)[0])
        assert after > before + 4, (sigma, before, after)  # measured: 4.75 to 10.4 dB here
