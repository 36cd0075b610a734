"""CAREamics's Noise2Void, the peer of ``--self-supervised``, on the noisy files of
``bench/selfsup.py make``: trained on the noisy training photos alone for a time budget, then
each noisy test photo predicted whole and scored against its clean original (PSNR / SSIM on the
0-255 scale, the output clipped and rounded to 8 bits, as for aekit).

CAREamics needs a torch older than aekit's (``torch<2.14``) and torchvision, so it runs in a
venv of its own, never aekit's, and does not import aekit (the scores are computed here the same
way, with scikit-image's SSIM where aekit uses its own):

    python -m venv ../careamics-venv && ../careamics-venv/bin/pip install careamics scikit-image
    OMP_NUM_THREADS=1 ../careamics-venv/bin/python bench/peer_careamics.py \\
        --train ../data/selfsup/g25/CBSD432 --noisy ../data/selfsup/g25/Kodak24 \\
        --clean ../shared/data/photos/Kodak24 --minutes 30 \\
        --out bench/results/selfsup_g25_careamics_n2v.json

The configuration is CAREamics's own N2V (``create_advanced_n2v_config``: its UNet, 0.2% of
the pixels masked, Adam, mean/std normalisation, flips and 90-degree turns) on 64x64 patches,
batch 16, the colour channels denoised together (``independent_channels=False``: they share
edges), ``max_time`` of Lightning's trainer as the budget.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image


def read(folder: Path) -> list[tuple[str, np.ndarray]]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp"))
    return [(p.stem, np.asarray(Image.open(p).convert("RGB"))) for p in files]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, help="the noisy training photos")
    p.add_argument("--noisy", required=True, help="the noisy test photos")
    p.add_argument("--clean", required=True, help="their clean originals, by name")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--limit", type=int, help="only the first N photos of each folder (a check)")
    p.add_argument("--work", default="careamics-work")
    p.add_argument("--out", help="write the result as JSON here")
    args = p.parse_args()

    import careamics
    import torch
    from careamics import CAREamist
    from careamics.config import create_advanced_n2v_config
    from skimage.metrics import structural_similarity

    train = [a.astype(np.float32) for _, a in read(Path(args.train))[: args.limit]]
    s = round(args.minutes * 60)
    budget = f"00:{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"
    config = create_advanced_n2v_config(
        experiment_name="n2v_peer", data_type="array", axes="YXC", patch_size=[64, 64],
        batch_size=16, num_epochs=10_000, n_channels=3, independent_channels=False,
        num_workers=0, trainer_params={"max_time": budget, "accelerator": "cpu"}, seed=1,
    )  # fmt: skip
    careamist = CAREamist(config, work_dir=args.work, enable_progress_bar=False)
    t0 = time.perf_counter()
    careamist.train(train_data=train)
    trained = time.perf_counter() - t0

    rows, seconds = [], []
    for name, noisy in read(Path(args.noisy))[: args.limit]:
        clean = np.asarray(Image.open(next(Path(args.clean).glob(name + ".*"))).convert("RGB"))
        t = time.perf_counter()
        pred, _ = careamist.predict(pred_data=noisy.astype(np.float32), axes="YXC",
                                    data_type="array")  # fmt: skip
        seconds.append(time.perf_counter() - t)
        raw = np.asarray(pred[0])
        if not rows:
            print(f"prediction: shape {raw.shape}, values {raw.min():.1f} to {raw.max():.1f}")
        out = np.squeeze(raw)
        if out.shape[0] == 3 and out.shape[-1] != 3:  # CYX -> YXC
            out = np.moveaxis(out, 0, -1)
        out8 = np.clip(np.round(out), 0, 255).astype(np.uint8)
        ssim = structural_similarity(out8, clean, channel_axis=2, data_range=255)
        rows.append({"name": name, "psnr": psnr(out8, clean), "ssim": float(ssim)})
        print(f"{name}: {rows[-1]['psnr']:.2f} dB", flush=True)
    result = {
        "method": "careamics n2v", "careamics": careamics.__version__, "torch": torch.__version__,
        "train": args.train, "noisy": args.noisy, "minutes": args.minutes,
        "trained_seconds": trained, "photos": len(rows),
        "psnr": statistics.fmean(r["psnr"] for r in rows),
        "ssim": statistics.fmean(r["ssim"] for r in rows),
        "seconds_per_photo": statistics.median(seconds), "per_photo": rows,
    }  # fmt: skip
    print(f"CAREamics N2V: {result['psnr']:.2f} dB / {result['ssim']:.3f}, "
          f"{result['seconds_per_photo']:.2f} s/photo")  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
