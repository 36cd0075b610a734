"""The photo-denoising recipe (docs/guides/denoise.md), run several times: does every run
train, and alike?

``python bench/recipe_runs.py [--runs amp,amp,no-amp] [--minutes 30] [--keep DIR]
[--out bench/results/recipe_runs.json]``

Each run is ``aekit train --data folder:../shared/data/photos/CBSD432 --arch unet --noise
gaussian:25 --patch-size 64 --time-limit MINUTES`` (``no-amp`` adds ``--no-amp``: float32; ``amp``
is the default, bf16 autocast where the CPU or GPU runs it natively), one after another in a
subprocess. Reported per run: the held-out denoised PSNR of each epoch, the largest drop of an
epoch under the best before it, the loss spikes the guard undid and its last learning-rate
scale; and the spread of the runs' last PSNRs. Nothing else should run on the machine meanwhile:
the schedule follows the clock, so a run that shares the cores takes fewer steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from train_speed import machine  # same folder: the same machine description

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parent.parent / "shared" / "data" / "photos" / "CBSD432"
RECIPE = "--arch unet --noise gaussian:25 --patch-size 64"


def run_once(kind: str, minutes: float, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "aekit", "train", "--data", f"folder:{PHOTOS}",
           *RECIPE.split(), "--time-limit", str(minutes), "--out", str(out)]  # fmt: skip
    if kind == "no-amp":
        cmd.append("--no-amp")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip().splitlines()[-1]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    psnrs = [r["denoised_psnr"] for r in rows]
    drops = [max(psnrs[:i]) - p for i, p in enumerate(psnrs) if i]
    return {
        "kind": kind, "command": " ".join(["aekit", *cmd[3:]]),
        "epochs": len(rows), "denoised_psnr": [round(p, 3) for p in psnrs],
        "noisy_psnr": round(rows[-1]["noisy_psnr"], 3),
        "largest_drop_db": round(max(drops, default=0.0), 3),
        "spikes": [s for r in rows for s in r.get("spikes", [])],
        "lr_scale": rows[-1].get("lr_scale", 1.0),
        "clipped_steps": sum(r.get("clipped_steps", 0) for r in rows),
        "patches_per_s": [r["images_per_s"] for r in rows],
        "warnings": [line for line in done.stderr.splitlines() if "warning" in line],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="amp,amp,no-amp")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--keep", help="folder to keep the run folders in (default: a temporary one)")
    ap.add_argument("--out", default=str(HERE / "results" / "recipe_runs.json"))
    ns = ap.parse_args()
    result: dict[str, Any] = {"machine": machine(), "minutes": ns.minutes, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(ns.keep or tmp)
        for i, kind in enumerate(ns.runs.split(",")):
            got = run_once(kind, ns.minutes, where / f"run{i}-{kind}")
            result["runs"].append(got)
            print(f"run {i} ({kind}): {got['epochs']} epochs, denoised PSNR "
                  f"{got['denoised_psnr']}, largest drop {got['largest_drop_db']} dB, "
                  f"{len(got['spikes'])} spike(s), lr scale {got['lr_scale']}",
                  flush=True)  # fmt: skip
    last = [r["denoised_psnr"][-1] for r in result["runs"]]
    result["last_spread_db"] = round(max(last) - min(last), 3)
    Path(ns.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"last PSNRs {last}: spread {result['last_spread_db']} dB; wrote {ns.out}")


if __name__ == "__main__":
    main()
