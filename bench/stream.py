"""Training on data larger than it should hold in memory: images/s and peak anonymous memory.

Usage: ``python bench/stream.py [--sizes 1,2,5] [--minutes 0.75] [--kinds mapped,memory,wds]``,
or ``python bench/stream.py --decode-only --sizes 0.25``: how fast shards are read and decoded
without training (``bench/results/stream_decode.json``).

For each size (GB of uint8 pixels, 10^9 bytes) it writes an uncompressed ``npz`` of 64x64 RGB
images (``x_train``/``y_train``, no test split, so the held-out images are carved out of the
training split) — written in blocks, never whole in memory — and trains on it with the ordinary
command, each run in its own process:

    aekit train --data SOURCE --epochs 1 --time-limit MINUTES --batch-size 128
                --base-channels 16 --latent-dim 64 --out RUN

- ``mapped``: ``npz:FILE`` as aekit opens it (memory-mapped in place: batches are gathered from
  the OS page cache);
- ``memory``: the same file read into memory (``AEKIT_MEMMAP_BYTES`` above its size), only
  for sizes up to ``--memory-max`` GB: the in-memory path to compare with;
- ``wds``: the file packed once into WebDataset shards (``aekit data pack``) and trained on as
  ``wds:DIR`` (streamed by DataLoader workers).

Reported per run: training images/s (metrics.jsonl, the time-limited epoch), and the peak of
the process's ``RssAnon`` (anonymous memory: what the process itself holds, as opposed to file
pages the kernel can drop) and ``RssFile``, sampled every 0.1 s from /proc. Writes
``bench/results/stream.json`` (``--out``). The files go to ``--work`` (default a temporary
folder) and are deleted after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from train_speed import machine  # same folder: the same machine description

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "stream.json"
SIDE = 64
IMAGE_BYTES = SIDE * SIDE * 3
BLOCK = 4096  # images written per step


def write_npz(path: Path, n: int, seed: int = 0) -> None:
    """An uncompressed npz of ``n`` 64x64x3 images (blocky random pictures: 8x8 colour cells)
    and labels 0-9, written block by block."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("x_train.npy", "w", force_zip64=True) as fp:
            header = {"descr": "|u1", "fortran_order": False, "shape": (n, SIDE, SIDE, 3)}
            npy_format.write_array_header_1_0(fp, header)
            for start in range(0, n, BLOCK):
                cells = rng.integers(0, 256, (min(BLOCK, n - start), 8, 8, 3), dtype=np.uint8)
                fp.write(np.repeat(np.repeat(cells, 8, axis=1), 8, axis=2).tobytes())
        with zf.open("y_train.npy", "w", force_zip64=True) as fp:
            np.lib.format.write_array(fp, (np.arange(n) % 10).astype(np.int64))


def watch(cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd``; its wall time and the peaks of RssAnon / RssFile (MB) while it ran."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    peak = {"RssAnon": 0, "RssFile": 0}
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                key, _, value = line.partition(":")
                if key in peak:
                    peak[key] = max(peak[key], int(value.split()[0]))  # kB
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "peak_rss_anon_mb": round(peak["RssAnon"] / 1024),
        "peak_rss_file_mb": round(peak["RssFile"] / 1024),
        "stdout": out.strip().splitlines()[-2:],
    }


def train(source: str, run: Path, minutes: float, env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "aekit", "train", "--data", source, "--epochs", "1",
           "--time-limit", str(minutes), "--batch-size", "128", "--base-channels", "16",
           "--latent-dim", "64", "--out", str(run)]  # fmt: skip
    print("  $", " ".join(cmd[2:]), flush=True)
    result = watch(cmd, env)
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    result.update(images_per_s=row["images_per_s"], trained_images=round(row["images_per_s"]
                  * row["seconds"]), command="aekit " + " ".join(cmd[3:]))  # fmt: skip
    return result


def decode_speed(size: float, work: Path, out: str) -> None:
    """``--decode-only``: how fast one process reads and decodes packed shards (no training):
    images/s of ``Stream`` with no worker and with one, and where the time goes (cProfile)."""
    import cProfile
    import io
    import pstats

    import torch

    from aekit.data.pack import pack
    from aekit.data.wds import open_shards
    from aekit.data.wds_stream import Stream

    n = round(size * 1e9 / IMAGE_BYTES)
    write_npz(work / "decode.npz", n)
    pack(f"npz:{work / 'decode.npz'}", work / "decode")
    shards = open_shards(str(work / "decode"), "train", "wds:decode")
    result: dict = {"machine": machine(), "images": n, "command": " ".join(sys.argv)}
    for workers in (0, 1):
        stream = Stream(shards, (3, SIDE, SIDE), workers=workers)
        t0 = time.perf_counter()
        count = sum(len(b) for b in stream.batches(128, torch.Generator().manual_seed(0)))
        result[f"images_per_s_{workers}_workers"] = round(count / (time.perf_counter() - t0), 1)
    profile = cProfile.Profile()
    stream = Stream(shards, (3, SIDE, SIDE), workers=0)
    profile.enable()
    sum(len(b) for b in stream.batches(128, torch.Generator().manual_seed(0)))
    profile.disable()
    stats = pstats.Stats(profile, stream=io.StringIO())
    total = max(v[3] for v in stats.stats.values())  # type: ignore[attr-defined]
    parts = {"tar reading (webdataset + tarfile)": "tar_file_expander", "image decoding": "decode"}
    for label, name in parts.items():
        cum = max(v[3] for k, v in stats.stats.items() if k[2] == name)  # type: ignore[attr-defined]
        result[f"share_{label}"] = round(cum / total, 2)
    print(json.dumps(result, indent=1))
    Path(out).write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,2,5", help="GB of pixels per file")
    ap.add_argument("--kinds", default="mapped,memory,wds")
    ap.add_argument("--minutes", type=float, default=0.75, help="training time per run")
    ap.add_argument("--memory-max", type=float, default=2, help="largest GB read into memory")
    ap.add_argument("--work", default=None, help="folder for the files (default: a temp one)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--decode-only", action="store_true",
                    help="only read and decode shards of the first size (no training)")  # fmt: skip
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="aekit-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.decode_only:
        out = args.out if args.out != str(RESULTS) else str(RESULTS.with_name("stream_decode.json"))
        try:
            decode_speed(float(args.sizes.split(",")[0]), work, out)
        finally:
            if not args.work:
                shutil.rmtree(work, ignore_errors=True)
        return
    kinds = args.kinds.split(",")
    results = {"machine": machine(), "image": [SIDE, SIDE, 3], "minutes": args.minutes,
               "command": " ".join(sys.argv), "runs": []}  # fmt: skip
    try:
        for size in (float(s) for s in args.sizes.split(",")):
            n = round(size * 1e9 / IMAGE_BYTES)
            path = work / f"images-{size:g}gb.npz"
            t0 = time.perf_counter()
            write_npz(path, n)
            print(f"{size:g} GB: {n} images, written in {time.perf_counter() - t0:.0f} s",
                  flush=True)  # fmt: skip
            base = {k: v for k, v in os.environ.items() if k != "AEKIT_MEMMAP_BYTES"}
            for kind in kinds:
                if kind == "memory" and size > args.memory_max:
                    continue
                env = dict(base)
                source = f"npz:{path}"
                if kind == "memory":
                    env["AEKIT_MEMMAP_BYTES"] = str(int(size * 1e9) + 1)
                if kind == "wds":
                    shards = work / f"shards-{size:g}gb"
                    t0 = time.perf_counter()
                    packed = watch([sys.executable, "-m", "aekit", "data", "pack",
                                    f"npz:{path}", "--out", str(shards)], env)  # fmt: skip
                    print(f"  packed in {time.perf_counter() - t0:.0f} s, peak RssAnon "
                          f"{packed['peak_rss_anon_mb']} MB", flush=True)  # fmt: skip
                    source = f"wds:{shards}"
                run = work / f"run-{kind}-{size:g}"
                result = train(source, run, args.minutes, env)
                result.update(kind=kind, gb=size, images=n)
                if kind == "wds":
                    result["pack_peak_rss_anon_mb"] = packed["peak_rss_anon_mb"]
                    result["pack_wall_s"] = packed["wall_s"]
                    shutil.rmtree(shards)
                print(f"  {kind:7s} {result['images_per_s']:8.1f} images/s, peak RssAnon "
                      f"{result['peak_rss_anon_mb']} MB, RssFile {result['peak_rss_file_mb']} "
                      f"MB", flush=True)  # fmt: skip
                results["runs"].append(result)
                shutil.rmtree(run)
            path.unlink()
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    save_results(args.out, results)


def save_results(out: str, results: dict) -> None:
    """Write a benchmark's raw numbers as indented JSON, and say where."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
