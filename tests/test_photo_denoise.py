"""Photo denoising: patch training on photos of mixed sizes, noise kinds, the time limit and its
schedule, exact tiles, full-size denoise and eval, and their refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
import aekit.denoising.fullsize
from aekit import AekitError, ModelConfig
from aekit.data.augment import augment_batch
from aekit.data.photos import PhotoSet, cut_patches, load_photos, sample_patches
from aekit.denoising.fullsize import add_noise, denoise_image
from aekit.models import create_model
from aekit.models.tiles import check_tile, reach
from aekit.training.objectives import Noise, corrupt, parse_noise
from aekit.training.schedules import lr_factor

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def photo(path: Path, w: int, h: int, gray: bool = False, seed: int = 0) -> Path:
    """A smooth random picture (a photo's statistics, roughly) of w x h."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 1 if gray else 3), dtype=np.uint8)
    img = Image.fromarray(small.squeeze(-1) if gray else small).resize((w, h), Image.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """Six colour photos of mixed sizes, none resized to another's."""
    d = tmp_path / "photos"
    for i, (w, h) in enumerate([(96, 64), (64, 96), (120, 80), (80, 80), (100, 72), (72, 100)]):
        photo(d / f"p{i}.png", w, h, seed=i)
    return d


def unet(channels: int = 3, depth: int = 1) -> aekit.Autoencoder:
    torch.manual_seed(0)
    cfg = ModelConfig(arch="unet", in_channels=channels, image_size=32, base_channels=8,
                      depth=depth)  # fmt: skip
    model = create_model(cfg).eval()
    torch.nn.init.normal_(model.head.weight, std=0.05)  # not the identity it starts as
    return model


# ---- photos and patches ---------------------------------------------------------------------


def test_photos_keep_their_own_sizes_and_patches_are_cut_from_them(photo_dir: Path) -> None:
    photos = load_photos(f"folder:{photo_dir}", "train")
    assert len(photos) == 6 and photos.channels == 3
    assert sorted(zip(photos.widths.tolist(), photos.heights.tolist(), strict=True))[0] == (64, 96)
    for i in range(len(photos)):
        with Image.open(photos.paths[i]) as img:
            want = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(photos.photo(i), want)
    gen = torch.Generator().manual_seed(0)
    idx, top, left = sample_patches(photos, 500, 32, gen)
    patches = cut_patches(photos, idx, top, left, 32)
    assert patches.shape == (500, 3, 32, 32) and patches.dtype == torch.uint8
    for b in (0, 77, 499):  # the gather equals slicing the photo
        i, t, l_ = int(idx[b]), int(top[b]), int(left[b])
        assert torch.equal(patches[b], photos.photo(i)[:, t : t + 32, l_ : l_ + 32])
    assert (top + 32 <= photos.heights[idx]).all() and (left + 32 <= photos.widths[idx]).all()
    # every photo is drawn, the larger ones more often (in proportion to their positions)
    counts = torch.bincount(idx, minlength=6).float()
    assert (counts > 0).all()
    assert counts[2] > counts[3]  # 120x80 has 89*49 positions, 80x80 has 49*49


def test_gray_photos_give_one_channel_and_a_colour_one_makes_all_rgb(tmp_path: Path) -> None:
    for i in range(3):
        photo(tmp_path / "g" / f"{i}.png", 40 + 8 * i, 48, gray=True, seed=i)
    assert load_photos(f"folder:{tmp_path / 'g'}", "train").channels == 1
    photo(tmp_path / "g" / "c.png", 50, 50, seed=9)
    mixed = load_photos(f"folder:{tmp_path / 'g'}", "train")
    assert mixed.channels == 3 and len(mixed) == 4


def test_rot90_with_both_flips_gives_all_eight_orientations() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4).expand(400, 1, 4, 4).contiguous()
    y = augment_batch(x, ("hflip", "vflip", "rot90"), torch.Generator().manual_seed(0))
    seen = {tuple(t.flatten().tolist()) for t in y}
    want = set()
    for k in range(4):
        r = torch.rot90(x[0, 0], k)
        want |= {tuple(r.flatten().tolist()), tuple(r.flip(-1).flatten().tolist())}
    assert seen == want and len(want) == 8
    with pytest.raises(AekitError, match="square"):
        augment_batch(torch.zeros(2, 1, 4, 6), ("rot90",), torch.Generator())


# ---- noise ------------------------------------------------------------------------------------


def test_blind_gaussian_draws_one_sigma_per_image_within_the_range() -> None:
    x = torch.zeros(64, 3, 64, 64)
    y = corrupt(x, parse_noise("gaussian:5-50"), (0.0, 1.0), torch.Generator().manual_seed(0))
    sigmas = y.flatten(1).std(dim=1) * 255
    assert sigmas.min() > 4 and sigmas.max() < 51
    assert sigmas.max() - sigmas.min() > 25  # not one sigma for the batch
    assert (y < 0).any()  # not clipped


def test_poisson_noise_has_the_photon_statistics_of_its_peak() -> None:
    x = torch.full((8, 1, 64, 64), 0.5)
    y = corrupt(x, Noise("poisson", 30.0), (-1.0, 1.0), torch.Generator().manual_seed(0))
    counts = ((y + 1) / 2) * 30  # back to photon counts of a pixel of value 0.75
    assert torch.allclose(counts, counts.round(), atol=1e-4)  # whole photons
    assert math.isclose(counts.mean().item(), 22.5, rel_tol=0.02)
    assert math.isclose(counts.var().item(), 22.5, rel_tol=0.05)  # Poisson: variance = mean


@pytest.mark.parametrize(("spec", "words"), [
    ("gaussian:60-5", "low to high: gaussian:5-60"),
    ("poisson:0", "above 0"),
    ("poisson:-2", "above 0"),
    ("gaussian:5-x", "gaussian:LOW-HIGH"),
    ("gaussian:5-2000", "between 0 and 1000"),
    ("speckle:3", "poisson:PEAK"),
])  # fmt: skip
def test_bad_noise_specs_are_one_line(cli, tmp_path: Path, spec: str, words: str) -> None:
    code, out, err = cli("train", "--data", "shapes", "--noise", spec, "--out", tmp_path / "r")
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "r").exists()


def test_add_noise_is_the_same_for_a_seed_and_differs_between_seeds() -> None:
    clean = torch.randint(0, 256, (3, 40, 30), dtype=torch.uint8)
    spec = parse_noise("gaussian:25")
    a, b, c = add_noise(clean, spec, 3), add_noise(clean, spec, 3), add_noise(clean, spec, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert math.isclose(((a - clean / 255) * 255).std().item(), 25, rel_tol=0.03)


# ---- the schedule and the time limit ----------------------------------------------------------


def test_schedules_have_their_shapes() -> None:
    assert lr_factor("constant", 0.7) == 1.0
    # cosine: a linear warm-up from 1/25 over the first 2%, then half a cosine down to 0
    assert lr_factor("cosine", 0) == 1 / 25 and math.isclose(lr_factor("cosine", 0.01), 0.52)
    assert lr_factor("cosine", 0.02) == 1.0 and lr_factor("cosine", 1) == 0.0
    assert math.isclose(lr_factor("cosine", 0.51), 0.5)
    assert all(
        lr_factor("cosine", p / 100) > lr_factor("cosine", (p + 1) / 100) for p in range(2, 99)
    )
    assert math.isclose(lr_factor("onecycle", 0), 1 / 25)
    assert math.isclose(lr_factor("onecycle", 0.3), 1.0)
    assert lr_factor("onecycle", 1) < 1e-5
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    torch_one = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=1001)
    for i in range(1000):  # torch's OneCycleLR, up to its phases' one-step offsets
        assert math.isclose(opt.param_groups[0]["lr"], lr_factor("onecycle", i / 1000),
                            rel_tol=0.01, abs_tol=1e-3)  # fmt: skip
        opt.step()
        torch_one.step()


def test_a_time_limit_stops_saves_and_resumes_with_the_schedule_spanning_it(
    photo_dir: Path, tmp_path: Path, cli
) -> None:
    run = tmp_path / "run"
    for i in range(3):  # 1,400 patches of 16x16 an epoch: far more than 60 ms of steps
        photo(tmp_path / "big" / f"{i}.png", 400, 300, seed=i)
    limit = 0.001  # 60 ms: the first epoch stops after its first steps
    code, _out, err = cli("train", "--data", f"folder:{tmp_path / 'big'}", "--arch", "unet",
                         "--base-channels", "8", "--noise", "gaussian:25", "--patch-size", "16",
                         "--batch-size", "8", "--time-limit", str(limit), "--out", run)  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["stopped"] == "time limit of 0.001 minutes"
    seen = round(rows[0]["images_per_s"] * rows[0]["seconds"])
    assert 8 <= seen < 1000  # a few steps, not the epoch
    assert (run / "model.safetensors").is_file() and (run / "samples" / "epoch_001.png").is_file()
    cfg = aekit.training.runs.load_config(run)
    assert cfg.train.schedule == "cosine" and cfg.train.time_limit == limit
    assert cfg.model.image_size == 16 and cfg.data.augment_ops() == ("hflip", "vflip", "rot90")
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    spent = ckpt["trained_seconds"]
    assert 60 * limit <= spent < 60 * limit + 60
    # the budget is spent: resuming needs a larger one, and then trains on
    code, _, err = cli("train", "--out", run, "--resume")
    assert code != 0 and "--time-limit" in err and len(err.strip().splitlines()) == 1
    # 3 s more than the first session spent (its evaluation counts too: on a loaded machine
    # more than the 60 ms budget)
    more = f"{(spent + 3) / 60:.5f}"
    code, _, err = cli("train", "--out", run, "--resume", "--time-limit", more)
    assert code == 0, err
    after = torch.load(run / "checkpoint.pt", weights_only=True)
    assert after["epoch"] > ckpt["epoch"] and after["trained_seconds"] >= float(more) * 60
    assert aekit.training.runs.load_config(run).train.time_limit == float(more)
    lr_last = after["optimizer"]["param_groups"][0]["lr"]  # set from the time spent
    assert lr_last < 1e-3 * lr_factor("cosine", 0.8)  # the cosine reached (near) its end


@pytest.mark.parametrize("value", ["0", "-1", "nan", "1e9"])
def test_a_time_limit_must_be_positive_minutes(cli, tmp_path: Path, value: str) -> None:
    code, _out, err = cli("train", "--data", "shapes", "--time-limit", value, "--out", tmp_path)
    assert code != 0 and "--time-limit" in err and len(err.strip().splitlines()) == 1


def test_a_patch_larger_than_the_smallest_photo_names_it(photo_dir: Path, tmp_path: Path,
                                                         cli) -> None:  # fmt: skip
    code, _, err = cli("train", "--data", f"folder:{photo_dir}", "--arch", "unet",
                       "--patch-size", "72", "--out", tmp_path / "r")  # fmt: skip
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "--patch-size 72" in err and "p0.png (96x64)" in err and "64 or less" in err
    assert not (tmp_path / "r" / "model.safetensors").exists()


# ---- tiles and full-size denoising --------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2])
def test_the_receptive_radius_bounds_how_far_a_pixel_sees(depth: int) -> None:
    model = unet(1, depth).double()
    side = 2 * model.receptive_radius() + 40
    for c in (side // 2, side // 2 + 3):
        x = (torch.rand(1, 1, side, side, dtype=torch.double) * 0.5).requires_grad_()
        model(x).recon[0, 0, c, c].backward()
        reached = (x.grad[0, 0].abs() > 0).nonzero()
        assert (reached - c).abs().max() <= model.receptive_radius()
        assert (reached - c).abs().max() > model.receptive_radius() * 0.7  # a tight bound


@pytest.mark.parametrize(("h", "w", "tile"), [(300, 260, 256), (205, 333, 272), (64, 400, 264)])
def test_tiled_equals_untiled(h: int, w: int, tile: int) -> None:
    model = unet()
    noisy = torch.rand(3, h, w) * 1.2 - 0.1
    whole = denoise_image(model, noisy, tile=None)
    tiled = denoise_image(model, noisy, tile=tile)
    assert tiled.shape == (3, h, w)
    assert (tiled - whole).abs().max() < 1e-4
    assert tile < max(h, w)  # it was tiled


def test_a_tile_smaller_than_the_models_reach_is_refused() -> None:
    model = unet()
    with pytest.raises(AekitError, match="--tile 64 is too small"):
        denoise_image(model, torch.rand(3, 300, 300), tile=64)
    assert reach(model) % model.stride == 0
    least = 4 * reach(model)  # a core of half the tile at least: at most 4x the work
    with pytest.raises(AekitError, match=f"--tile {least - 1} is too small.* use --tile {least} "):
        denoise_image(model, torch.rand(3, 300, 300), tile=least - 1)
    check_tile(model, least)
    check_tile(model, least - 1, largest=least - 1)  # no tile needed
    noisy = torch.rand(3, 3 * least, 8)  # tiled along its height: 6 tiles of the least
    exact = denoise_image(model, noisy, least) - denoise_image(model, noisy, None)
    assert exact.abs().max() < 1e-4  # the least the message names works, without seams


@pytest.mark.parametrize("arch", ["unet", "conv"])
def test_a_batch_is_denoised_in_one_pass_with_the_numbers_of_one_image_at_a_time(arch) -> None:
    # float64: float32 kernels round differently with the batch size (about 1e-5 relative on
    # AVX512), float64's some 1e-15, so a bound of 1e-12 holds on any CPU and still shows that
    # every image is denoised as it is alone
    conv = ModelConfig(arch="conv", in_channels=3, image_size=32)
    model = (unet() if arch == "unet" else create_model(conv).eval()).double()
    side = (40, 48) if arch == "unet" else (32, 32)
    images = torch.randint(0, 256, (5, 3, *side), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    passes: list[int] = []
    model.register_forward_pre_hook(lambda module, args: passes.append(len(args[0])))
    noisy, den = aekit.denoise(model, images, "gaussian:25", seed=3, amp=False)
    assert passes == [5] and den.shape == (5, 3, *side)
    alone = [aekit.api.denoise_photo(model, im, "gaussian:25", 3 + i, amp=False)
             for i, im in enumerate(images)]  # fmt: skip
    assert torch.equal(noisy, torch.stack([a[0] for a in alone]))  # the noise of each image
    assert (den - torch.stack([a[1] for a in alone])).abs().max() < 1e-12
    passes.clear()
    noisy_list, den_list = aekit.denoise(model, list(images), "gaussian:25", seed=3, amp=False)
    assert passes == [5] and torch.equal(torch.stack(den_list), den)  # a list of one size too
    assert torch.equal(torch.stack(noisy_list), noisy)


def test_denoise_cli_keeps_every_photos_size_and_mode(cli, photo_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    aekit.train(run, data=f"folder:{photo_dir}", arch="unet", base_channels=8,
                noise="gaussian:25", patch_size=32, epochs=2, progress=False)  # fmt: skip
    gray = photo(tmp_path / "in" / "gray.png", 150, 90, gray=True, seed=5)
    big = photo(tmp_path / "in" / "big.jpg", 300, 200, seed=6)
    out = tmp_path / "out"
    code, stdout, err = cli("denoise", run, big, gray, "--out", out, "--add-noise",
                            "gaussian:25", "--tile", "256")  # fmt: skip
    assert code == 0, err
    assert f"{gray} is gray: the colour model sees it as RGB, and it is saved gray" in err
    with Image.open(out / "big_denoised.png") as img:
        assert img.size == (300, 200) and img.mode == "RGB"
    with Image.open(out / "big_noisy.png") as img:
        assert img.size == (300, 200)
    with Image.open(out / "gray_denoised.png") as img:
        assert img.size == (150, 90) and img.mode == "L"  # the input's mode, again
    with Image.open(out / "gray_noisy.png") as img:
        assert img.mode == "L"  # gray noise on the gray photo
    assert "mean PSNR: noisy" in stdout and stdout.count("->") >= 2
    # the same numbers from the API and from eval --full-size
    from aekit.devices import pick_device

    model = aekit.training.runs.load(run, device=pick_device("auto"))  # where the command ran it
    u8 = torch.from_numpy(np.array(Image.open(big).convert("RGB"))).permute(2, 0, 1)
    _, den = aekit.api.denoise_photo(model, u8, "gaussian:25", seed=0, tile=256)
    saved = torch.from_numpy(np.array(Image.open(out / "big_denoised.png"))).permute(2, 0, 1)
    assert torch.equal(aekit.denoising.fullsize.to_uint8(den), saved)


def test_reconstruct_keeps_a_unets_files_at_their_own_sizes(cli, photo_dir: Path,
                                                            tmp_path: Path) -> None:  # fmt: skip
    run = tmp_path / "run"
    aekit.train(run, data=f"folder:{photo_dir}", arch="unet", base_channels=8, patch_size=32,
                epochs=1, progress=False)  # fmt: skip
    files = [photo(tmp_path / "in" / "a.png", 96, 64, seed=7), photo(tmp_path / "in" / "b.png",
                                                                     40, 56, seed=8)]  # fmt: skip
    code, out, err = cli("reconstruct", run, *files, "--out", tmp_path / "grid.png")
    assert code == 0, err
    assert "resized" not in err and (tmp_path / "grid.png").is_file()
    model = aekit.load(run)
    for path, line in zip(files, out.splitlines(), strict=False):
        u8 = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1)[None]
        with torch.no_grad():  # one pass at the file's own size, float32
            rec = aekit.models.to_unit_scale(model(aekit.models.to_model_scale(u8, "unet")).recon,
                                             "unet")  # fmt: skip
        want = float(aekit.metrics.psnr_per_image(rec, u8.float() / 255)[0])
        assert line == f"{path}: PSNR {want:.2f} dB"


def test_eval_full_size_reports_noisy_and_denoised_per_image(cli, photo_dir: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    run = tmp_path / "run"
    aekit.train(run, data=f"folder:{photo_dir}", arch="unet", base_channels=8,
                noise="gaussian:25", patch_size=32, epochs=2, progress=False)  # fmt: skip
    code, out, err = cli("eval", run, "--data", f"folder:{photo_dir}", "--noise", "gaussian:25",
                         "--full-size", "--per-image", "--json")  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert res["count"] == 6 and len(res["images"]) == 6
    first = res["images"][0]
    assert (first["width"], first["height"]) == (96, 64)
    assert 19.5 < res["noisy_psnr"] < 21  # sigma 25: 20.17 dB
    assert res["denoised_psnr"] > res["noisy_psnr"] and res["denoised_ssim"] > res["noisy_ssim"]
    assert math.isclose(res["noisy_psnr"], np.mean([r["noisy_psnr"] for r in res["images"]]))
    again = aekit.evaluate(run, data=f"folder:{photo_dir}", noise="gaussian:25", full_size=True)
    assert again["denoised_psnr"] == res["denoised_psnr"]  # a fixed seed per image
    code, text, err = cli("eval", run, "--data", f"folder:{photo_dir}", "--full-size")
    assert code == 0 and "6 photos at full size, gaussian:25" in text


def test_fixed_size_families_refuse_full_size_photos(cli, tiny_run: Path, tmp_path: Path) -> None:
    big = photo(tmp_path / "big.png", 90, 60)
    code, _out, err = cli("denoise", tiny_run, big, "--out", tmp_path / "o")
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "32x32 images only" in err and "--arch unet" in err and "90x60" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    code, _, err = cli("eval", tiny_run, "--data", "shapes", "--full-size", "--noise", "gaussian:5")
    assert code != 0 and "32x32 images only" in err


def test_photos_smaller_than_the_stride_are_refused(cli, photo_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    aekit.train(run, data=f"folder:{photo_dir}", arch="unet", base_channels=8,
                noise="gaussian:25", patch_size=32, epochs=1, progress=False)  # fmt: skip
    tiny = photo(tmp_path / "tiny.png", 6, 40)
    ok = photo(tmp_path / "ok.png", 40, 40)
    code, _, err = cli("denoise", run, ok, tiny, "--out", tmp_path / "o")
    assert code != 0 and "6x40" in err and "at least 8x8" in err
    assert not (tmp_path / "o").exists()  # nothing written, not even the good one


@pytest.mark.skipif(not (PHOTOS / "Kodak24").is_dir(), reason="Kodak24 is not at hand")
def test_a_real_kodak_photo_is_denoised_at_full_size_in_tiles() -> None:
    u8 = torch.from_numpy(np.array(Image.open(PHOTOS / "Kodak24" / "kodim01.png")))
    u8 = u8.permute(2, 0, 1).contiguous()
    model = unet()
    noisy = add_noise(u8, parse_noise("gaussian:25"), 0)
    tiled = denoise_image(model, noisy, tile=256)
    assert tiled.shape == u8.shape and max(u8.shape) > 256  # so it was tiled
    assert (tiled - denoise_image(model, noisy, tile=None)).abs().max() < 1e-4


def test_photoset_packs_tensors_of_mixed_sizes() -> None:
    a, b = torch.zeros(1, 5, 7, dtype=torch.uint8), torch.ones(1, 9, 4, dtype=torch.uint8)
    ps = PhotoSet.from_arrays([a, b], "x", "train", ["a", "b"])
    assert torch.equal(ps.photo(0), a) and torch.equal(ps.photo(1), b)
    assert ps.pixels == 35 + 36 and ps.smallest() == (4, "b (4x9)")


def test_a_budget_shorter_than_one_step_still_trains_one(photo_dir: Path, tmp_path: Path) -> None:
    run = aekit.train(tmp_path / "r", data=f"folder:{photo_dir}", arch="unet", base_channels=8,
                      patch_size=32, time_limit=1e-6, progress=False)  # fmt: skip
    rows = aekit.training.runs.read_metrics(run)
    assert len(rows) == 1 and "stopped" in rows[0]
    # one batch of 16: Adam took one step, and 16 images lie within what the row's rounding
    # (seconds to 1 ms, images/s to 0.1) leaves of images/s x seconds (a step of 11 ms on an
    # AVX512 core gave 15.35, which rounded to 15)
    optimizer = torch.load(run / "checkpoint.pt", weights_only=True)["optimizer"]
    assert {int(s["step"]) for s in optimizer["state"].values()} == {1}
    sec, ips = rows[0]["seconds"], rows[0]["images_per_s"]
    assert (ips - 0.05) * (sec - 0.0005) <= 16 <= (ips + 0.05) * (sec + 0.0005)


def test_a_patch_run_resumes_bit_for_bit(photo_dir: Path, tmp_path: Path) -> None:
    opts = {"data": f"folder:{photo_dir}", "arch": "unet", "base_channels": 8, "patch_size": 32,
            "noise": "gaussian:0-55", "progress": False}  # fmt: skip
    whole = aekit.train(tmp_path / "whole", epochs=2, **opts)
    part = aekit.train(tmp_path / "part", epochs=1, **opts)
    aekit.train(part, resume=True, epochs=2, progress=False)
    a, b = aekit.training.runs.load(whole).state_dict(), aekit.training.runs.load(part).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert aekit.training.runs.read_metrics(whole)[-1]["denoised_psnr"] == pytest.approx(
        aekit.training.runs.read_metrics(part)[-1]["denoised_psnr"], abs=0
    )
