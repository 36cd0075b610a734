"""The photo recipe's levers, each as a short run of the recipe with one option changed, scored
on Kodak24 at sigma 25 with the ordinary commands (``aekit train``, then ``aekit eval
--full-size``). Nothing else should run meanwhile: every run gets the same minutes.

    python bench/recipe_levers.py --minutes 10 --out results/recipe_levers.json
    python bench/recipe_levers.py --levers "plain=;ema=--ema 0.999" --minutes 10

Each result: the lever, its train command, the patches it trained on and their median rate, the
held-out score, and Kodak24's PSNR, SSIM and seconds per photo.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data" / "photos"
AEKIT = [sys.executable, "-m", "aekit"]
LEVERS = (
    "unet16=--arch unet;"
    "ema=--arch unet --ema 0.999;"
    "charbonnier=--arch unet --loss charbonnier;"
    "bs32=--arch unet --batch-size 32 --lr 3e-3;"
    "unet24=--arch unet --base-channels 24;"
    "nafnet16=--arch nafnet"
)


def lever_run(name: str, flags: str, minutes: float, runs: Path, train: Path, test: Path) -> dict:
    out = runs / name
    command = [*AEKIT, "train", "--data", f"folder:{train}", "--noise", "gaussian:25",
               "--patch-size", "64", "--time-limit", f"{minutes:g}", *shlex.split(flags),
               "--out", str(out)]  # fmt: skip
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    scored = subprocess.run([*AEKIT, "eval", str(out), "--data", f"folder:{test}", "--noise",
                             "gaussian:25", "--full-size", "--json"],
                            check=True, capture_output=True, text=True)  # fmt: skip
    result = json.loads(scored.stdout)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "lever": name,
        "command": shlex.join(["aekit", *command[3:]]),
        "epochs": len(rows),
        "patches": sum(round(r["images_per_s"] * r["seconds"]) for r in rows),
        "median_patches_per_s": statistics.median(r["images_per_s"] for r in rows),
        "heldout_denoised_psnr": rows[-1]["denoised_psnr"],
        "kodak24_psnr": result["denoised_psnr"],
        "kodak24_ssim": result["denoised_ssim"],
        "seconds_per_photo": result["seconds_per_image"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levers", default=LEVERS, help="NAME=FLAGS;NAME=FLAGS...")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--train", type=Path, default=SHARED / "CBSD432")
    p.add_argument("--test", type=Path, default=SHARED / "Kodak24")
    p.add_argument("--runs", type=Path, default=Path("runs/levers"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    results = []
    for item in filter(None, args.levers.split(";")):
        name, flags = item.split("=", 1)
        results.append(lever_run(name, flags, args.minutes, args.runs, args.train, args.test))
        r = results[-1]
        print(f"{name}: {r['kodak24_psnr']:.3f} dB, SSIM {r['kodak24_ssim']:.4f}, "
              f"{r['patches']} patches ({r['median_patches_per_s']:.0f}/s), "
              f"{r['seconds_per_photo']:.3f} s/photo", flush=True)  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"minutes": args.minutes, "results": results}, indent=1))


if __name__ == "__main__":
    main()
