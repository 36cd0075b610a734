"""Photo denoising against the classics: aekit, CBM3D / BM3D (the ``bm3d`` package), a Gaussian
blur and the noisy input, on the same noisy photos, at each noise level.

Every method sees the same noisy images: photo i at sigma s is
``aekit.denoising.fullsize.add_noise`` of it with seed i (Gaussian, unclipped, as the published
tables add it). Outputs are clipped and rounded to 8 bits (what a saved PNG holds); PSNR and SSIM
on the 0-255 scale, seconds per photo of the method alone. The blur's width is chosen per noise
level as the best of a small grid on the same images (an oracle, which flatters the blur).

    python bench/denoise.py --run runs/photo-denoiser --photos ../shared/data/photos/Kodak24
    python bench/denoise.py --gray --run runs/photo-denoiser-gray --methods noisy,blur,aekit,bm3d
    python bench/denoise.py --methods cbm3d --jobs 16      # the classic alone, in parallel
    python bench/denoise.py --run builtin:NAME --methods aekit,aekit-tta   # a built-in model

``--jpeg Q`` saves each noisy photo as a JPEG file of quality Q first (Pillow's encoder, 8 bits,
4:2:0 chroma subsampling as cameras write them) and gives every method what that file decodes to:
the noise of a noisy JPEG photo. (C)BM3D is told the Gaussian sigma.

``--picture PATH`` draws crops at 100% (clean, noisy, CBM3D, aekit) of one photo at sigma 25.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aekit.denoising.fullsize import add_noise, denoise_image, to_uint8
from aekit.metrics import psnr_per_image, ssim_per_image
from aekit.training.objectives import Noise

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parents[1] / "shared" / "data" / "photos" / "Kodak24"
BLUR_GRID = (0.5, 0.7, 1.0, 1.4, 2.0)


def load_photos(folder: Path, gray: bool, limit: int | None) -> list[tuple[str, torch.Tensor]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp"))
    out = []
    for f in files[:limit]:
        with Image.open(f) as img:
            a = np.array(img.convert("L" if gray else "RGB"))
        out.append((f.name, torch.from_numpy(a[..., None] if gray else a).permute(2, 0, 1)))
    return out


def scores(out8: torch.Tensor, clean8: torch.Tensor) -> tuple[float, float]:
    a, b = out8.float()[None] / 255, clean8.float()[None] / 255
    return float(psnr_per_image(a, b)[0]), float(ssim_per_image(a, b)[0])


def hwc(unit: torch.Tensor) -> np.ndarray:
    """(C, H, W) tensor -> (H, W, C) float64 array, or (H, W) for gray (bm3d's layout)."""
    a = unit.permute(1, 2, 0).double().numpy()
    return a[..., 0] if a.shape[-1] == 1 else a


def from_hwc(a: np.ndarray) -> torch.Tensor:
    a = np.clip(a, 0, 1)
    t = torch.from_numpy(np.ascontiguousarray(a)).float()
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def classic(task: tuple[str, np.ndarray, float]) -> tuple[np.ndarray, float]:
    """CBM3D (colour) or BM3D (gray) of one noisy (H, W[, 3]) array; (output, seconds)."""
    import bm3d

    method, noisy, sigma = task
    t0 = time.perf_counter()
    out = bm3d.bm3d_rgb(noisy, sigma / 255) if method == "cbm3d" else bm3d.bm3d(noisy, sigma / 255)
    return np.asarray(out), time.perf_counter() - t0


def blur(noisy: np.ndarray, width: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(noisy, sigma=(width, width, 0)[: noisy.ndim])


def as_jpeg(noisy: torch.Tensor, quality: int) -> torch.Tensor:
    """A noisy (C, H, W) [0, 1] image saved as an 8-bit JPEG file by Pillow and read back."""
    import io

    a = to_uint8(noisy).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(a.squeeze(-1) if a.shape[-1] == 1 else a).save(buf, "JPEG", quality=quality)
    back = np.array(Image.open(buf))
    back = back[..., None] if back.ndim == 2 else back
    return torch.from_numpy(back).permute(2, 0, 1).float() / 255


def run_level(photos, sigma: float, methods: list[str], model, jobs: int, amp: bool = True,
              jpeg: int | None = None) -> dict:  # fmt: skip
    noise = Noise("gaussian", sigma)
    noisy = [add_noise(u8, noise, i) for i, (_, u8) in enumerate(photos)]
    if jpeg is not None:
        noisy = [as_jpeg(n, jpeg) for n in noisy]
    res: dict[str, dict] = {}

    def record(name: str, outs: list[torch.Tensor], seconds: list[float], **extra) -> None:
        s = [scores(o, u8) for o, (_, u8) in zip(outs, photos, strict=True)]
        res[name] = {"psnr": float(np.mean([p for p, _ in s])),
                     "ssim": float(np.mean([q for _, q in s])),
                     "seconds": float(np.median(seconds)) if seconds else None,
                     "per_image_psnr": [round(p, 3) for p, _ in s], **extra}  # fmt: skip

    if "noisy" in methods:  # unclipped [0, 1] floats, as the tables' "noisy" column
        clean = [u8.float()[None] / 255 for _, u8 in photos]
        p = [float(psnr_per_image(n[None], c)[0]) for n, c in zip(noisy, clean, strict=True)]
        q = [float(ssim_per_image(n[None], c)[0]) for n, c in zip(noisy, clean, strict=True)]
        res["noisy"] = {"psnr": float(np.mean(p)), "ssim": float(np.mean(q)),
                        "seconds": None, "per_image_psnr": [round(x, 3) for x in p]}  # fmt: skip
    if "blur" in methods:
        best = None
        for width in BLUR_GRID:
            t, outs = [], []
            for n in noisy:
                t0 = time.perf_counter()
                outs.append(to_uint8(from_hwc(blur(hwc(n), width))))
                t.append(time.perf_counter() - t0)
            mean = np.mean([scores(o, u8)[0] for o, (_, u8) in zip(outs, photos, strict=True)])
            if best is None or mean > best[0]:
                best = (mean, width, outs, t)
        record("blur", best[2], best[3], width=best[1])
    for name, tta in (("aekit", False), ("aekit-tta", True)):  # tta: the x8 ensemble
        if name not in methods:
            continue
        outs, t = [], []
        denoise_image(model, noisy[0], amp=amp)  # warm-up (allocator, oneDNN kernels)
        for n in noisy:
            t0 = time.perf_counter()
            outs.append(to_uint8(denoise_image(model, n, amp=amp, tta=tta)))
            t.append(time.perf_counter() - t0)
        record(name, outs, t)
    for name in ("cbm3d", "bm3d"):
        if name in methods:
            tasks = [(name, hwc(n), sigma) for n in noisy]
            with ProcessPoolExecutor(jobs) as pool:
                done = list(pool.map(classic, tasks))
            record(name, [to_uint8(from_hwc(o)) for o, _ in done], [s for _, s in done],
                   jobs=jobs)  # fmt: skip
    return res


def picture(photos, model, path: Path, name: str, gray: bool, label: str, crop: int = 200) -> None:
    """Crops at 100% (pixel for pixel) of one photo at sigma 25: clean, noisy, the classic,
    aekit, each captioned with its whole-photo PSNR."""
    from PIL import ImageDraw

    i = next(k for k, (n, _) in enumerate(photos) if n == name)
    clean = photos[i][1]
    noisy = add_noise(clean, Noise("gaussian", 25.0), i)
    classic_name = "bm3d" if gray else "cbm3d"
    ours = to_uint8(denoise_image(model, noisy))
    theirs = to_uint8(from_hwc(classic((classic_name, hwc(noisy), 25.0))[0]))
    noisy_db = float(psnr_per_image(noisy[None], clean.float()[None] / 255)[0])
    panels = [("clean", clean, None), ("noisy, sigma 25", to_uint8(noisy), noisy_db),
              (classic_name.upper(), theirs, scores(theirs, clean)[0]),
              (label, ours, scores(ours, clean)[0])]  # fmt: skip
    _, h, w = clean.shape
    top, left = (h - crop) // 2, (w - crop) // 2
    gap, head = 8, 34
    sheet = Image.new("RGB", (4 * crop + 3 * gap, crop + head), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (title, img, db) in enumerate(panels):
        part = img[:, top : top + crop, left : left + crop].permute(1, 2, 0).numpy()
        tile = Image.fromarray(part.squeeze(-1) if gray else part).convert("RGB")
        x = k * (crop + gap)
        sheet.paste(tile, (x, head))
        draw.text((x, 2), title, fill="black")
        draw.text((x, 16), "" if db is None else f"{db:.2f} dB (whole photo)", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"wrote {path}: {name}, centre {crop}x{crop} crops at 100%")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="an aekit run (unet), or builtin:NAME, to denoise with")
    p.add_argument("--photos", type=Path, default=PHOTOS)
    p.add_argument("--gray", action="store_true", help="the photos converted to gray")
    p.add_argument("--sigmas", default="15,25,50")
    p.add_argument("--methods", default="noisy,blur,aekit,cbm3d")
    p.add_argument("--limit", type=int, default=None, help="only the first N photos")
    p.add_argument("--jobs", type=int, default=1, help="processes for (C)BM3D")
    p.add_argument("--threads", type=int, default=2, help="torch threads for aekit")
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    p.add_argument("--picture", type=Path, default=None)
    p.add_argument("--picture-photo", default="kodim05.png")
    p.add_argument("--no-amp", action="store_true", help="aekit in float32 (default: bf16 "
                   "where the CPU runs it natively)")  # fmt: skip
    p.add_argument("--jpeg", type=int, default=None, help="save the noisy photos as JPEG files "
                   "of this quality first (4:2:0, as cameras do)")  # fmt: skip
    p.add_argument("--picture-label", default="aekit unet, 30 min", help="the aekit panel's title")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    photos = load_photos(args.photos, args.gray, args.limit)
    model = None
    if args.run:
        from aekit.training.runs import load

        model = load(args.run)
    if args.picture:
        picture(photos, model, args.picture, args.picture_photo, args.gray, args.picture_label)
        return
    results = {"photos": str(args.photos), "count": len(photos), "gray": args.gray,
               "run": args.run, "amp": not args.no_amp, "jpeg": args.jpeg,
               "levels": {}}  # fmt: skip
    print("| sigma | method | PSNR (dB) | SSIM | s/photo |\n|---|---|---|---|---|")
    for sigma in (float(s) for s in args.sigmas.split(",")):
        level = run_level(photos, sigma, methods, model, args.jobs, not args.no_amp, args.jpeg)
        results["levels"][f"{sigma:g}"] = level
        for name, r in level.items():
            secs = "" if r["seconds"] is None else f"{r['seconds']:.3f}"
            print(f"| {sigma:g} | {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {secs} |",
                  flush=True)  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
