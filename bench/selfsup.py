"""Denoising without clean photos: self-supervised runs against the supervised recipe, CBM3D and
the noisy input, on noisy files made the way a camera would make them.

``make`` writes the noisy-only sets: each photo of CBSD432 (training) and Kodak24 (test) with the
noise added **once** (photo i of a folder with seed i, as bench/denoise.py adds it), clipped and
rounded to 8 bits and saved as PNG, like a real noisy file. The clean originals of Kodak24 are
used only to score.

    python bench/selfsup.py make --noise gaussian:25 --out ../data/selfsup/g25
    aekit train --data folder:../data/selfsup/g25/CBSD432 --arch unet --self-supervised n2v \\
        --patch-size 64 --time-limit 30 --out runs/n2v-g25
    python bench/selfsup.py score --run runs/n2v-g25 --noisy ../data/selfsup/g25/Kodak24 \\
        --out results/selfsup_n2v_g25.json
    python bench/selfsup.py score --method cbm3d --sigma 25 --noisy ../data/selfsup/g25/Kodak24

``picture`` draws a 200x200 crop at 100% of one photo: clean, noisy, then each run's output:

    python bench/selfsup.py picture --noisy ../data/selfsup/g25/Kodak24/kodim05.png \\
        --runs runs/n2v-g25,runs/nb2nb-g25,runs/supervised-g25 --out docs/images/selfsup-kodak.png

``score`` denoises every noisy file as ``aekit denoise RUN`` does (its own size, bf16 where the
CPU runs it natively unless --no-amp) and gives PSNR / SSIM on the 0-255 scale against the clean
photo of the same name, and the median seconds per photo.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aekit.denoising.fullsize import add_noise, denoise_image, to_uint8
from aekit.metrics import psnr_per_image, ssim_per_image
from aekit.training.objectives import parse_noise

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parents[1] / "shared" / "data" / "photos"


def read(path: Path) -> torch.Tensor:
    with Image.open(path) as img:
        return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).contiguous()


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp"))


def make(noise: str, out: Path, sets: list[str]) -> None:
    spec = parse_noise(noise)
    assert spec is not None
    for name in sets:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(files(PHOTOS / name)):
            noisy = to_uint8(add_noise(read(path), spec, i).clamp(0, 1))
            Image.fromarray(noisy.permute(1, 2, 0).numpy()).save(folder / f"{path.stem}.png")
        print(f"{folder}: {i + 1} noisy photos ({noise}, added once, 8-bit PNG)")


def score(args: argparse.Namespace) -> dict:
    noisy_files = files(Path(args.noisy))
    clean_dir = Path(args.clean)
    rows, seconds = [], []
    model = None
    if args.method == "aekit":
        import aekit
        from aekit.models.pretrained import load_pretrained

        builtin = args.run.startswith("builtin:")
        model = load_pretrained(args.run[8:]) if builtin else aekit.load(args.run)
        model.eval()
    for i, path in enumerate(noisy_files):
        noisy8 = read(path)
        clean8 = read(clean_dir / path.name)
        t0 = time.perf_counter()
        if args.method == "aekit":
            with torch.no_grad():
                out = denoise_image(model, noisy8.float() / 255, amp=args.amp, tta=args.tta)
        elif args.method == "cbm3d":
            import bm3d

            a = noisy8.permute(1, 2, 0).double().numpy() / 255
            out = torch.from_numpy(bm3d.bm3d_rgb(a, args.sigma / 255)).permute(2, 0, 1)
        else:
            out = noisy8.float() / 255
        seconds.append(time.perf_counter() - t0)
        out8 = to_uint8(out.float().clamp(0, 1))
        a, b = out8.float()[None] / 255, clean8.float()[None] / 255
        rows.append((float(psnr_per_image(a, b)[0]), float(ssim_per_image(a, b)[0])))
        print(f"{i + 1}/{len(noisy_files)} {path.name}: {rows[-1][0]:.2f} dB", flush=True)
    result = {
        "method": args.method, "run": args.run, "noisy": str(args.noisy), "tta": args.tta,
        "amp": args.amp, "photos": len(rows),
        "psnr": statistics.fmean(r[0] for r in rows), "ssim": statistics.fmean(r[1] for r in rows),
        "seconds_per_photo": statistics.median(seconds),
        "per_photo": [{"name": p.name, "psnr": r[0], "ssim": r[1]}
                      for p, r in zip(noisy_files, rows, strict=True)],
        "torch": torch.__version__,
    }  # fmt: skip
    print(f"{args.method} {args.run or ''}: {result['psnr']:.2f} dB / {result['ssim']:.3f}, "
          f"{result['seconds_per_photo']:.3f} s/photo")  # fmt: skip
    return result


def picture(args: argparse.Namespace) -> None:
    import aekit

    noisy = read(Path(args.noisy))
    tiles = [read(Path(args.clean) / Path(args.noisy).name), noisy]
    for run in args.runs.split(","):
        with torch.no_grad():
            tiles.append(to_uint8(denoise_image(aekit.load(run), noisy.float() / 255)))
    top, left = args.at
    crops = [t[:, top : top + 200, left : left + 200] for t in tiles]
    Image.fromarray(torch.cat(crops, dim=2).permute(1, 2, 0).numpy()).save(args.out)
    print(f"{args.out}: clean, noisy, {args.runs}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="write the noisy-only sets")
    m.add_argument("--noise", default="gaussian:25")
    m.add_argument("--out", required=True)
    m.add_argument("--sets", default="CBSD432,Kodak24")
    s = sub.add_parser("score", help="denoise the noisy test files and score them")
    s.add_argument("--method", default="aekit", choices=("aekit", "cbm3d", "noisy"))
    s.add_argument("--run", help="an aekit run folder (or builtin:NAME)")
    s.add_argument("--noisy", required=True, help="the noisy test files")
    s.add_argument("--clean", default=str(PHOTOS / "Kodak24"), help="their clean originals")
    s.add_argument("--sigma", type=float, default=25.0, help="the sigma CBM3D is told")
    s.add_argument("--tta", action="store_true")
    s.add_argument("--no-amp", dest="amp", action="store_false")
    s.add_argument("--out", help="write the result as JSON here")
    d = sub.add_parser("picture", help="crops of one photo: clean, noisy, each run's output")
    d.add_argument("--noisy", required=True, help="one noisy file")
    d.add_argument("--clean", default=str(PHOTOS / "Kodak24"), help="the folder of its original")
    d.add_argument("--runs", required=True, help="run folders, comma-separated")
    d.add_argument("--at", type=int, nargs=2, default=(150, 150), help="the crop's top, left")
    d.add_argument("--out", required=True)
    args = p.parse_args()
    if args.cmd == "picture":
        picture(args)
        return
    if args.cmd == "make":
        make(args.noise, Path(args.out), args.sets.split(","))
        return
    result = score(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
