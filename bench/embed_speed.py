"""Embedding and evaluation at scale: ``aekit embed`` and ``aekit eval`` on 25k-100k images.

Usage: ``python bench/embed_speed.py [--sizes 25k,50k,100k] [--repeats 3]``

The images are ``shapes`` drawn fresh at each size (32x32 RGB, the same generator as the built-in
set, every image distinct), saved as an ``npz:`` file's ``test`` split; the model is the seed's
CIFAR model (``conv``, base 64, latent 256), trained for one epoch on 2,000 other images. Each
command runs as a user runs it, in its own process under ``/usr/bin/time``, which gives:

- **images/s**: images / the command's wall time (start-up, loading the npz and writing the
  store included), median of ``--repeats``;
- **peak RSS**: the process's maximum resident memory; **beyond data** subtracts the uint8
  images (N x 3,072 bytes) and, for ``embed``, its float32 vectors (N x 1,024 bytes). That
  remainder staying flat across sizes is what "memory does not grow with the dataset" means.

Writes ``bench/results/embed_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from aekit.data.shapes import generate_shapes
from train_speed import machine  # same folder: the same machine description

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "embed_speed.json"
LATENT = 256


def parse_size(text: str) -> int:
    return int(float(text[:-1]) * 1000) if text.lower().endswith("k") else int(text)


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` under /usr/bin/time: (wall seconds, peak RSS in MB)."""
    with tempfile.NamedTemporaryFile("r") as log:
        full = ["/usr/bin/time", "-f", "%e %M", "-o", log.name, *cmd]
        subprocess.run(full, check=True, stdout=subprocess.DEVNULL)
        wall, kb = log.read().split()[-2:]
    return float(wall), int(kb) / 1024


def make_npz(path: Path, n: int) -> None:
    """``n`` fresh shapes as the test split (NHWC uint8), 2,000 others as the train split."""
    test, labels = generate_shapes("test", count=n, seed=n)
    train, train_labels = generate_shapes("train", count=2000)
    np.savez(path, x_train=train.transpose(0, 2, 3, 1), y_train=train_labels,
             x_test=test.transpose(0, 2, 3, 1), y_test=labels)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25k,50k,100k")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    aekit_cmd = [sys.executable, "-m", "aekit"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in map(parse_size, args.sizes.split(",")):
            data = tmp / f"shapes{size}.npz"
            make_npz(data, size)
            run = tmp / f"run{size}"
            train = ["train", "--epochs", "1", "--limit", "2000", "--base-channels", "64"]
            train += ["--latent-dim", str(LATENT), "--out", str(run)]
            data_args = ["--data", f"npz:{data}"]
            subprocess.run([*aekit_cmd, *train, *data_args], check=True, stdout=subprocess.DEVNULL)
            emb = ["embed", str(run), *data_args, "--split", "test", "--out", str(tmp / "emb")]
            commands = {
                "embed": [*aekit_cmd, *emb],
                "eval": [*aekit_cmd, "eval", str(run), *data_args, "--split", "test", "--json"],
            }
            for name, cmd in commands.items():
                runs = []
                for _ in range(args.repeats):
                    if name == "embed":
                        shutil.rmtree(tmp / "emb", ignore_errors=True)
                    runs.append(timed(cmd))
                wall = statistics.median(r[0] for r in runs)
                peak = statistics.median(r[1] for r in runs)
                data_mb = size * 3 * 32 * 32 / 2**20
                if name == "embed":
                    data_mb += size * LATENT * 4 / 2**20
                row = {"command": name, "images": size, "wall_s": wall,
                       "images_per_s": size / wall, "peak_rss_mb": peak,
                       "data_mb": data_mb, "beyond_data_mb": peak - data_mb,
                       "runs": [{"wall_s": w, "peak_rss_mb": m} for w, m in runs]}  # fmt: skip
                rows.append(row)
                print(f"{name} {size:,}: {row['images_per_s']:,.0f} img/s, peak RSS "
                      f"{peak:,.0f} MB ({row['beyond_data_mb']:,.0f} MB beyond data)",
                      file=sys.stderr)  # fmt: skip
            data.unlink()
    report = {
        "machine": machine(),
        "command": " ".join(["python", "bench/embed_speed.py", *sys.argv[1:]]),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        "| command | images | images/s | wall (s) | peak RSS (MB) | data (MB) | beyond data (MB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| aekit {r['command']} | {r['images']:,} | {r['images_per_s']:,.0f} "
              f"| {r['wall_s']:.1f} | {r['peak_rss_mb']:,.0f} | {r['data_mb']:,.0f} "
              f"| {r['beyond_data_mb']:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
