"""Self-supervised denoising: the blind spot (n2v) and the neighbouring sub-images (nb2nb) as
pure functions, the noise estimate, training on noisy photos alone with --clean references,
denoise / eval / export of such a run, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.training.selfsup import (
    CELL,
    RADIUS,
    blind_spots,
    masked_mse,
    neighbour_loss,
    noise_sigma,
    pair_picks,
    sub_image,
)

# ---- the pure functions ---------------------------------------------------------------------


def unique(b: int, c: int, h: int, w: int) -> torch.Tensor:
    """A batch whose every value is different: where a value came from can be read off it."""
    return torch.arange(b * c * h * w, dtype=torch.float64).reshape(b, c, h, w)


@pytest.mark.parametrize("size", [(4, 4), (16, 12), (13, 18)])
def test_blind_spots_replace_one_pixel_per_cell_by_another_within_the_radius(size) -> None:
    h, w = size
    x = unique(3, 2, h, w)
    for seed in range(20):  # many draws: the edges' clamped offsets included
        inputs, mask = blind_spots(x, torch.Generator().manual_seed(seed))
        assert mask.shape == (3, 1, h, w) and mask.dtype == torch.bool
        cells = mask[:, 0, : h // CELL * CELL, : w // CELL * CELL]
        per_cell = cells.reshape(3, h // CELL, CELL, w // CELL, CELL).sum(dim=(2, 4))
        assert (per_cell == 1).all()  # one blind spot per whole cell, none elsewhere
        assert int(mask.sum()) == 3 * (h // CELL) * (w // CELL)
        keep = ~mask.expand_as(x)
        assert torch.equal(inputs[keep], x[keep])  # every other pixel untouched
        for b, _, r, c in mask.nonzero().tolist():
            v = inputs[b, 0, r, c]
            assert v != x[b, 0, r, c]  # never the pixel's own value
            src = (x[b, 0] == v).nonzero()[0].tolist()
            assert max(abs(src[0] - r), abs(src[1] - c)) <= RADIUS
            # every channel of the pixel comes from the same neighbour
            assert inputs[b, 1, r, c] == x[b, 1, src[0], src[1]]


def test_masked_mse_is_the_error_at_the_blind_spots_only() -> None:
    out, target = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    target[:, :, 0, 0] = 3.0
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, 0, 0] = True
    assert float(masked_mse(out, target, mask)) == 9.0
    mask[0, 0, 1, 1] = True  # one more pixel with error 1: (2 * 3 * 9 + 3 * 1) / 9 values
    assert float(masked_mse(out, target, mask)) == pytest.approx(57 / 9)


def test_neighbour_sub_images_take_two_adjacent_pixels_of_each_cell() -> None:
    x = unique(2, 3, 8, 10)
    first, second = pair_picks(x, torch.Generator().manual_seed(0))
    assert first.shape == second.shape == (2, 1, 4, 5)
    g1, g2 = sub_image(x, first), sub_image(x, second)
    assert g1.shape == g2.shape == (2, 3, 4, 5)
    for b in range(2):
        for i in range(4):
            for j in range(5):
                p = (x[b, 0] == g1[b, 0, i, j]).nonzero()[0].tolist()
                q = (x[b, 0] == g2[b, 0, i, j]).nonzero()[0].tolist()
                assert p[0] // 2 == q[0] // 2 == i and p[1] // 2 == q[1] // 2 == j  # one cell
                assert abs(p[0] - q[0]) + abs(p[1] - q[1]) == 1  # sharing an edge
                assert g1[b, 2, i, j] == x[b, 2, p[0], p[1]]  # channels move together
    # over many cells every first position and both of its neighbours are drawn
    big = unique(1, 1, 64, 64)
    f, s = pair_picks(big, torch.Generator().manual_seed(1))
    assert set(f.flatten().tolist()) == {0, 1, 2, 3}
    assert set(zip(f.flatten().tolist(), s.flatten().tolist(), strict=True)) == {
        (0, 1), (0, 2), (1, 0), (1, 3), (2, 0), (2, 3), (3, 1), (3, 2)}  # fmt: skip


def test_the_neighbour_loss_is_the_mapping_error_plus_its_regulariser() -> None:
    out, target = torch.full((1, 1, 2, 2), 2.0), torch.zeros(1, 1, 2, 2)
    same = torch.zeros(1, 1, 2, 2)
    assert float(neighbour_loss(out, target, same, same, gamma=1.0)) == 4 + 4
    # the whole image's sub-images differ exactly as output and target do: no regulariser
    assert float(neighbour_loss(out, target, same + 2, same, gamma=1.0)) == 4
    assert float(neighbour_loss(out, target, same, same, gamma=0.5)) == 4 + 2


def test_the_noise_estimate_reads_the_sigma_of_gaussian_noise() -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    smooth = np.array(Image.fromarray(small).resize((160, 160), Image.BICUBIC))
    clean = torch.from_numpy(smooth).permute(2, 0, 1)[None]
    noisy = clean.float() + 25 * torch.randn(
        clean.shape, generator=torch.Generator().manual_seed(0)
    )
    noisy = noisy.round().clamp(0, 255).to(torch.uint8)
    assert float(noise_sigma(clean)[0]) < 2
    assert 22 < float(noise_sigma(noisy)[0]) < 26  # clipping at 0 and 255 takes a little


# ---- training on noisy photos alone -----------------------------------------------------------


def smooth_photo(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    return np.array(Image.fromarray(small).resize((w, h), Image.BICUBIC))


@pytest.fixture(scope="module")
def noisy_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(noisy, clean): ten smooth photos and their copies with sigma-25 noise added once, as
    8-bit PNG files, the noisy ones named as the clean ones."""
    root = tmp_path_factory.mktemp("selfsup")
    noisy_dir, clean_dir = root / "noisy", root / "clean"
    noisy_dir.mkdir()
    clean_dir.mkdir()
    rng = np.random.default_rng(1)
    for i in range(10):
        clean = smooth_photo(72 + 8 * (i % 3), 64 + 8 * (i % 2), seed=i)
        noisy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(clean).save(clean_dir / f"photo{i}.png")
        Image.fromarray(noisy).save(noisy_dir / f"photo{i}.png")
    return noisy_dir, clean_dir


@pytest.fixture(scope="module")
def selfsup_runs(noisy_set, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    noisy_dir, clean_dir = noisy_set
    root = tmp_path_factory.mktemp("selfsup-runs")
    runs = {}
    for method in ("n2v", "nb2nb"):
        runs[method] = aekit.train(
            root / method, f"folder:{noisy_dir}", arch="unet", base_channels=8,
            self_supervised=method, clean=str(clean_dir), patch_size=32, epochs=3,
            batch_size=8, progress=False,
        )  # fmt: skip
    return runs


@pytest.mark.parametrize("method", ["n2v", "nb2nb"])
def test_a_self_supervised_run_trains_on_noisy_photos_and_scores_against_references(
    method: str, selfsup_runs, noisy_set
) -> None:
    run = selfsup_runs[method]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:  # the held-out loss is the method's own, and the references score it
        assert row["self_supervised_loss"] == row["test_loss"] > 0
        assert {"noisy_psnr", "denoised_psnr", "denoised_ssim"} <= set(row)
    # the noisy held-out photos against their references: sigma 25 is about 20.2 dB
    assert 19.5 < rows[-1]["noisy_psnr"] < 21
    # the model learns to denoise from noisy photos alone
    assert rows[-1]["denoised_psnr"] > rows[-1]["noisy_psnr"] + 2
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["self_supervised"] == method and cfg["train"]["noise"] is None


def test_a_self_supervised_run_denoises_evaluates_and_exports_as_a_supervised_one(
    selfsup_runs, noisy_set, tmp_path: Path, cli
) -> None:
    noisy_dir, clean_dir = noisy_set
    run = selfsup_runs["nb2nb"]
    code, out, err = cli("denoise", run, noisy_dir / "photo0.png", "--out", tmp_path / "den")
    assert code == 0, err
    with Image.open(next((tmp_path / "den").glob("*.png"))) as img:
        assert img.size == (72, 64)
    code, out, err = cli("eval", run, "--data", f"folder:{noisy_dir}", "--full-size", "--clean",
                         clean_dir, "--json")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["count"] == 10 and result["denoised_psnr"] > result["noisy_psnr"] + 2
    # the same numbers by hand: each noisy file through the model against its reference
    model = aekit.load(run)
    from aekit.denoising.fullsize import denoise_image, to_uint8
    from aekit.metrics import psnr_per_image

    want = []
    for i in range(10):
        noisy = torch.from_numpy(np.array(Image.open(noisy_dir / f"photo{i}.png"))).permute(2, 0, 1)
        clean = torch.from_numpy(np.array(Image.open(clean_dir / f"photo{i}.png"))).permute(2, 0, 1)
        den = to_uint8(denoise_image(model, noisy.float() / 255)).float()[None] / 255
        want.append(float(psnr_per_image(den, clean.float()[None] / 255)[0]))
    assert result["denoised_psnr"] == pytest.approx(float(np.mean(want)), abs=0.05)
    # without --data: the photos the run held out, the paired ones it was scored on
    code, out, err = cli("eval", run, "--full-size", "--clean", clean_dir, "--json")
    assert code == 0, err
    held = json.loads(out)
    assert held["count"] == 1 and held["split"] == "train"
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert held["noisy_psnr"] < held["denoised_psnr"]
    assert last["noisy_psnr"] == pytest.approx(held["noisy_psnr"], abs=1.0)  # centre vs whole
    # with --noise it is scored as a denoiser of that noise, as any run
    code, out, err = cli("eval", run, "--data", f"folder:{clean_dir}", "--full-size", "--noise",
                         "gaussian:25", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["noise"] == "gaussian:25"
    pytest.importorskip("onnxruntime")
    done = aekit.export(run, tmp_path / "m.onnx")  # checked against aekit's own output
    assert done.path.is_file() and done.max_difference <= 1e-4


def test_a_self_supervised_run_resumes(noisy_set, tmp_path: Path, cli) -> None:
    noisy_dir, _ = noisy_set
    run = tmp_path / "r"
    code, _, err = cli("train", "--data", f"folder:{noisy_dir}", "--arch", "unet",
                       "--base-channels", "8", "--self-supervised", "n2v", "--patch-size", "32",
                       "--epochs", "1", "--out", run)  # fmt: skip
    assert code == 0, err
    assert "held-out loss" in err and "held-out PSNR" not in err
    code, _, err = cli("train", "--out", run, "--resume", "--epochs", "2")
    assert code == 0, err
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]


def test_clean_images_are_said_to_look_clean(noisy_set, tmp_path: Path, cli) -> None:
    _, clean_dir = noisy_set
    code, _, err = cli("train", "--data", f"folder:{clean_dir}", "--arch", "unet",
                       "--base-channels", "8", "--self-supervised", "nb2nb", "--patch-size", "32",
                       "--epochs", "1", "--out", tmp_path / "r")  # fmt: skip
    assert code == 0, err
    assert "look clean" in err and "sigma is about" in err


# ---- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--self-supervised", "n2v", "--noise", "gaussian:25"], "drop --noise"),
        (["--self-supervised", "n3v"], "unknown --self-supervised 'n3v'"),
        (["--clean", "CLEAN"], "add --self-supervised"),
        (["--self-supervised", "nb2nb", "--arch", "conv"], "half-size sub-images"),
        (["--self-supervised", "n2v", "--arch", "draem"], "trains a denoiser"),
        (["--self-supervised", "n2v", "--arch", "vae"], "trains a denoiser"),
        (["--self-supervised", "n2v", "--clean", "NOWHERE"], "is not a folder"),
        (["--self-supervised", "n2v", "--clean", "EMPTY"], "holds no images"),
        (["--self-supervised", "n2v", "--clean", "OTHER"], "pairs with the noisy images"),
        (["--self-supervised", "n2v", "--clean", "SMALLER"], "same photo at the same size"),
        (["--self-supervised", "nb2nb", "--patch-size", "6"], "from 8 to 4,096, got 6"),
    ],
)
def test_self_supervised_refusals_are_one_line_and_write_nothing(
    extra: list[str], message: str, noisy_set, tmp_path: Path, cli
) -> None:
    noisy_dir, clean_dir = noisy_set
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    Image.fromarray(smooth_photo(64, 64, 0)).save(tmp_path / "other" / "unrelated.png")
    (tmp_path / "smaller").mkdir()
    for i in range(10):
        Image.fromarray(smooth_photo(40, 40, i)).save(tmp_path / "smaller" / f"photo{i}.jpg")
    folders = {"CLEAN": clean_dir, "NOWHERE": tmp_path / "nowhere", "EMPTY": tmp_path / "empty",
               "OTHER": tmp_path / "other", "SMALLER": tmp_path / "smaller"}  # fmt: skip
    extra = [str(folders.get(e, e)) for e in extra]
    if "--arch" not in extra:
        extra += ["--arch", "unet"]
    code, _, err = cli("train", "--data", f"folder:{noisy_dir}", "--patch-size", "32",
                       "--epochs", "1", *extra, "--out", tmp_path / "r")  # fmt: skip
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_eval_clean_refusals(selfsup_runs, noisy_set, cli) -> None:
    noisy_dir, clean_dir = noisy_set
    run = selfsup_runs["n2v"]
    code, _, err = cli("eval", run, "--data", f"folder:{noisy_dir}", "--clean", clean_dir)
    assert code != 0 and "use it with --full-size" in err
    code, _, err = cli("eval", run, "--data", f"folder:{noisy_dir}", "--full-size")
    assert code != 0 and "--clean DIR" in err and len(err.strip().splitlines()) == 1


def test_clean_references_need_photos_at_their_own_size(noisy_set, tmp_path: Path, cli) -> None:
    noisy_dir, clean_dir = noisy_set
    code, _, err = cli("train", "--data", f"folder:{noisy_dir}", "--image-size", "32", "--arch",
                       "unet", "--self-supervised", "n2v", "--clean", clean_dir, "--epochs", "1",
                       "--out", tmp_path / "r")  # fmt: skip
    assert code != 0 and "add --patch-size" in err and len(err.strip().splitlines()) == 1


def test_a_held_out_split_keeps_its_paired_photos(noisy_set, tmp_path: Path) -> None:
    """A folder with its own test split: the held-out photos are its paired ones."""
    import shutil

    from aekit.data.config import DataConfig
    from aekit.training.splits import load_photo_splits

    noisy_dir, clean_dir = noisy_set
    root = tmp_path / "split"
    for split, names in (("train", range(6)), ("test", range(6, 10))):
        (root / split).mkdir(parents=True)
        for i in names:
            shutil.copy(noisy_dir / f"photo{i}.png", root / split / f"photo{i}.png")
    only = tmp_path / "few-clean"
    only.mkdir()
    for i in (7, 9):
        shutil.copy(clean_dir / f"photo{i}.png", only / f"photo{i}.png")
    train, held = load_photo_splits(DataConfig(source=f"folder:{root}", patch_size=32), str(only))
    assert [Path(p).name for p in held.paths] == ["photo7.png", "photo9.png"]
    assert len(train) == 6
    # ten photos, no split: the paired ones are held out, one (10%) of them
    train, held = load_photo_splits(DataConfig(source=f"folder:{noisy_dir}", patch_size=32),
                                    str(only))  # fmt: skip
    assert len(held) == 1 and Path(held.paths[0]).name in ("photo7.png", "photo9.png")
    assert len(train) == 9
