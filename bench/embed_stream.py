"""``aekit embed`` of a split larger than memory: peak anonymous memory and images/s.

Usage: ``python bench/embed_stream.py [--sizes 1,5] [--memory-max 1] [--kinds folder,wds]``.

For each size (GB of uint8 pixels, 10^9 bytes) it writes a folder of 64x64 RGB PNGs (the blocky
random pictures of ``bench/stream.py``, 10 class subfolders) and, for ``wds``, packs it into
shards (``aekit data pack``, 1 GB each); then it embeds the split with the ordinary command,
each run in its own process:

    aekit embed RUN --data SOURCE --split train --batch-size 256 --out EMB

- ``streamed``: as aekit reads a split above ``AEKIT_MEMMAP_BYTES`` (the default 2 GiB at 5 GB;
  set to 1 byte at the smaller sizes, so that they stream too): in chunks, decoded ahead in a
  thread;
- ``memory``: the same split read whole first (``AEKIT_MEMMAP_BYTES`` above its size), only for
  sizes up to ``--memory-max`` GB: the path to compare with (and the vectors to compare).

RUN is a conv autoencoder (base 16, latent 64) trained for one epoch on 2,000 other images.
Reported per run: images/s of the whole command (wall time: the header scan, the model, the
decoding, encoding and writing the store), and the peak ``RssAnon`` / ``RssFile`` of the
process (sampled every 0.1 s, as ``bench/stream.py`` does). Writes
``bench/results/embed_stream.json``; the files go to ``--work`` (default a temporary folder)
and are deleted after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from stream import (  # same folder: the same pictures and measurement
    IMAGE_BYTES,
    SIDE,
    save_results,
    watch,
)
from train_speed import machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "embed_stream.json"
FILES_PER_TASK = 4096


def _write_files(root: Path, start: int, stop: int, seed: int) -> None:
    rng = np.random.default_rng((seed, start))
    for i in range(start, stop):
        cells = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        pic = np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1)
        Image.fromarray(pic).save(root / f"c{i % 10}" / f"{i:07d}.png", compress_level=1)


def write_folder(root: Path, n: int, seed: int = 0) -> None:
    """``n`` 64x64 RGB PNGs in 10 class subfolders (image i in class i mod 10)."""
    for c in range(10):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        tasks = [pool.submit(_write_files, root, s, min(n, s + FILES_PER_TASK), seed)
                 for s in range(0, n, FILES_PER_TASK)]  # fmt: skip
        for task in tasks:
            task.result()


def embed(run: Path, source: str, out: Path, env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "aekit", "embed", str(run), "--data", source, "--split",
           "train", "--batch-size", "256", "--out", str(out)]  # fmt: skip
    print("  $", " ".join(cmd[2:]), flush=True)
    result = watch(cmd, env)
    result["command"] = "aekit " + " ".join(cmd[3:])
    return result


def train_model(work: Path, env: dict[str, str]) -> Path:
    write_folder(work / "small", 2000, seed=1)
    run = work / "run"
    watch([sys.executable, "-m", "aekit", "train", "--data", f"folder:{work / 'small'}",
           "--epochs", "1", "--batch-size", "128", "--base-channels", "16", "--latent-dim",
           "64", "--out", str(run)], env)  # fmt: skip
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,5", help="GB of pixels per folder")
    ap.add_argument("--kinds", default="folder,wds")
    ap.add_argument("--memory-max", type=float, default=1, help="largest GB read into memory")
    ap.add_argument("--work", default=None, help="folder for the files (default: a temp one)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="aekit-embed-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k != "AEKIT_MEMMAP_BYTES"}
    results = {"machine": machine(), "image": [SIDE, SIDE, 3], "command": " ".join(sys.argv),
               "runs": []}  # fmt: skip
    try:
        run = train_model(work, base)
        for size in (float(s) for s in args.sizes.split(",")):
            results["runs"] += embed_size(run, work, size, args.kinds.split(","),
                                          args.memory_max, base)  # fmt: skip
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    save_results(args.out, results)


def embed_size(
    run: Path, work: Path, size: float, kinds: list[str], memory_max: float, base: dict
) -> list[dict]:
    """Every kind and path of one size; its files are deleted after."""
    n = round(size * 1e9 / IMAGE_BYTES)
    folder = work / f"pics-{size:g}gb"
    t0 = time.perf_counter()
    write_folder(folder, n)
    print(f"{size:g} GB: {n} images, written in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for kind in kinds:
        source = f"folder:{folder}"
        if kind == "wds":
            shards = work / f"shards-{size:g}gb"
            packed = watch([sys.executable, "-m", "aekit", "data", "pack", source, "--out",
                            str(shards)], base)  # fmt: skip
            print(f"  packed in {packed['wall_s']:.0f} s", flush=True)
            source = f"wds:{shards}"
        stores = {}
        for path in ("memory", "streamed"):
            if path == "memory" and size > memory_max:
                continue
            env = dict(base)
            if path == "memory":
                env["AEKIT_MEMMAP_BYTES"] = str(int(size * 1e9) + 1)
            elif size * 1e9 <= 2**31:  # below the default line: lowered, so that it streams
                env["AEKIT_MEMMAP_BYTES"] = "1"
            stores[path] = work / f"emb-{kind}-{path}-{size:g}"
            result = embed(run, source, stores[path], env)
            result.update(kind=kind, path=path, gb=size, images=n,
                          images_per_s=round(n / result["wall_s"], 1))  # fmt: skip
            print(f"  {kind:6s} {path:8s} {result['images_per_s']:8.1f} images/s, peak "
                  f"RssAnon {result['peak_rss_anon_mb']} MB, RssFile "
                  f"{result['peak_rss_file_mb']} MB", flush=True)  # fmt: skip
            rows.append(result)
        if len(stores) == 2:  # the two paths' stores: the same vectors and items
            a, b = (np.load(p / "embeddings.npy") for p in stores.values())
            same = (p / "items.jsonl" for p in stores.values())
            rows[-1]["same_as_memory"] = bool(np.array_equal(a, b)) and len(
                {f.read_text() for f in same}) == 1  # fmt: skip
        for store in stores.values():
            shutil.rmtree(store)
        if kind == "wds":
            shutil.rmtree(shards)
    shutil.rmtree(folder)
    return rows


if __name__ == "__main__":
    main()
