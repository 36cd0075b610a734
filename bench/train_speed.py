"""Training speed: the seed tutorial's PyTorch loop against ``aekit train``, same model and data.

Usage: ``python bench/train_speed.py [--data auto] [--epochs 2] [--limit N] [--repeats 1]
[--variants seed,aekit,aekit:amp=false]``

Both train the seed's CIFAR model (``conv``, base 64, latent 256, same initial weights: seed 0)
with Adam 1e-3 and MSE for ``--epochs`` epochs on the same images, and are scored on the same
held-out images. Variants:

- ``seed``: ``bench/seed_loop.py``, the tutorial's loop restated without torchvision: per-image
  RandomResizedCrop + flips in ``DataLoader(batch_size=64, shuffle=True, num_workers=2)``
  workers, float32, ``loss.item()`` every step, the test loop after each epoch.
- ``aekit[:key=value...]``: ``aekit.train(..., base_channels=64, latent_dim=256, batch_size=64,
  lr=1e-3, augment="crop,hflip,vflip")`` with aekit's other defaults (bf16 autocast where the
  CPU or GPU runs it natively); ``key=value`` overrides an option, e.g. ``aekit:amp=false`` or
  ``aekit:batch_size=256:lr=0.002``. ``force_compile=true`` compiles on a CPU too (aekit
  compiles only on a GPU), ``compile_mode=reduce-overhead`` compiles with CUDA graphs and
  ``contiguous=true`` trains without channels_last; each worker gets an empty inductor cache,
  so a compile is timed cold, inside its first epoch. A variant that fails is reported on
  stderr and left out of the table.

What is timed (training only, each epoch's test pass excluded): for ``seed``, from asking the
loader for its first batch (worker start-up included, as every epoch pays it) to the last
``loss.item()``; for aekit, its own ``metrics.jsonl`` ``seconds`` (from the epoch's shuffle to
its summed loss read back). images/s = training images x epochs / those seconds summed.
``wall_s`` is the whole run (data loading, test passes, aekit's checkpoints and samples).
Test MSE is on the [0, 1] pixel scale after the last epoch, mean over the held-out images.

Each variant runs in a fresh subprocess, one at a time; with ``--repeats`` they alternate.
``--data auto`` is ``cifar10`` when its files are present (``$AEKIT_DATA``), else ``shapes``;
any aekit source works (``npz:FILE``: bench/gpu_check.sh builds a 50,000-image one).
Writes ``bench/results/train_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import aekit
from aekit.devices import bf16_native, pick_device
from aekit.training import fastpath
from aekit.training.splits import load_splits

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "train_speed.json"
TIMING = (
    "training only, each epoch's test pass excluded: seed from asking the DataLoader for its "
    "first batch (worker start-up included) to the last loss.item(); aekit its metrics.jsonl "
    "'seconds' (from the epoch's shuffle to its summed loss read back); images/s = training "
    "images x epochs / those seconds summed"
)
MODEL = {"base_channels": 64, "latent_dim": 256}
SEED_RECIPE = {"batch_size": 64, "lr": 1e-3, "augment": "crop,hflip,vflip"}


def pick_data(name: str) -> str:
    """``auto`` -> ``cifar10`` when its files are here (nothing is downloaded), else ``shapes``."""
    if name != "auto":
        return name
    try:
        aekit.load_dataset("cifar10", "test", download=False)
        return "cifar10"
    except aekit.AekitError:
        return "shapes"


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``aekit:amp=false:batch_size=256`` -> ("aekit", {"amp": False, "batch_size": 256})."""
    kind, *pairs = spec.split(":")
    if kind not in ("seed", "aekit") or (kind == "seed" and pairs):
        raise SystemExit(f"unknown variant {spec!r}: use seed or aekit[:key=value...]")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        options[key] = {"true": True, "false": False}.get(text.lower(), text)
        for cast in (int, float):
            try:
                options[key] = cast(text)
                break
            except ValueError:
                pass
    return kind, options


def run_seed(data: str, epochs: int, limit: int | None) -> dict[str, Any]:
    """The seed's loop (bench/seed_loop.py) on the same splits aekit uses."""
    sys.path.insert(0, str(HERE))
    import seed_loop

    t0 = time.perf_counter()
    train_set, held = load_splits(aekit.DataConfig(source=data, limit=limit))
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")  # as the seed
    torch.manual_seed(0)  # the seed sets none; 0 gives aekit's initial weights
    model = seed_loop.Autoencoder(3, MODEL["base_channels"], MODEL["latent_dim"]).to(device)
    trn_loader, test_loader = seed_loop.make_loaders(train_set, held)
    criterion = torch.nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    rows = seed_loop.train(
        model, criterion, optimizer, trn_loader, test_loader, device, num_epochs=epochs
    )
    return summary(rows, time.perf_counter() - t0, len(held))


def run_aekit(data: str, epochs: int, limit: int | None, options: dict[str, Any]) -> dict:
    """``aekit.train`` with the seed's recipe; speed and MSE read from its metrics.jsonl."""
    n_train, held = (len(s) for s in load_splits(aekit.DataConfig(source=data, limit=limit)))
    if options.pop("force_compile", False):
        fastpath.compile_pays = lambda device: True
    if options.pop("contiguous", False):
        fastpath.memory_format = lambda device: torch.contiguous_format
    if mode := options.pop("compile_mode", None):  # e.g. reduce-overhead: CUDA graphs
        plain = torch.compile
        fastpath.torch.compile = lambda model, **kw: plain(model, mode=mode, **kw)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = aekit.train(
            Path(tmp) / "run",
            data=data,
            epochs=epochs,
            limit=limit,
            progress=False,
            **{**MODEL, **SEED_RECIPE, **options},
        )
        wall = time.perf_counter() - t0
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [
        {
            "epoch": m["epoch"],
            "train_loss": m["train_loss"],
            "test_loss": m["test_loss"],
            "test_mse": m["test_mse"],
            "train_seconds": m["seconds"],
            "images": n_train,
        }
        for m in metrics
    ]
    return summary(rows, wall, held)


def summary(rows: list[dict], wall: float, held: int) -> dict[str, Any]:
    seconds = sum(r["train_seconds"] for r in rows)
    images = sum(r["images"] for r in rows)
    return {
        "train_images_per_s": images / seconds,
        "train_seconds": seconds,
        "epoch_images_per_s": [r["images"] / r["train_seconds"] for r in rows],
        # after the first epoch (which pays worker start-up or a compile): the steady rate
        "later_images_per_s": (
            sum(r["images"] for r in rows[1:]) / sum(r["train_seconds"] for r in rows[1:])
            if len(rows) > 1
            else None
        ),
        "test_mse": rows[-1]["test_mse"],
        "test_psnr": -10 * math.log10(rows[-1]["test_mse"]),
        "train_loss": rows[-1]["train_loss"],
        "train_images": rows[0]["images"],
        "heldout_images": held,
        "wall_s": wall,
        "epochs": rows,
    }


def run_variant(spec: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """One variant in a fresh interpreter (no warm caches or threads carried between them);
    None when it failed (its error is on stderr), so one broken lever does not lose the rest."""
    cmd = [sys.executable, __file__, "--worker", spec, "--data", args.data]
    cmd += ["--epochs", str(args.epochs)] + (["--limit", str(args.limit)] if args.limit else [])
    with tempfile.TemporaryDirectory() as cache:  # a cold torch.compile cache for each run
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        print(f"{spec}: failed with exit code {proc.returncode}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    """CPU model (lscpu), cores, RAM, GPU and versions, for the report."""
    lscpu = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout.splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in lscpu if x.startswith("Model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next(int(x.split()[1]) for x in meminfo if x.startswith("MemTotal"))
    device = pick_device("auto")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "device": str(device),
        "bf16_native": bf16_native(device),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "aekit": aekit.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def table(variants: dict[str, dict]) -> str:
    """The per-variant medians as a markdown table; the ratio is of medians, against ``seed``."""
    base = variants.get("seed", {}).get("train_images_per_s")
    lines = [
        "| variant | train images/s (median) | min–max | vs seed | epochs 2+ images/s "
        "| test MSE [0, 1] | test PSNR (dB) | wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        ratio = f"{v['train_images_per_s'] / base:.2f}×" if base else "-"
        low, high = v["train_images_per_s_range"]
        later = v.get("later_images_per_s")
        lines.append(
            f"| {name} | {v['train_images_per_s']:,.0f} | {low:,.0f}–{high:,.0f} | {ratio} "
            f"| {f'{later:,.0f}' if later else '-'} | {v['test_mse']:.5f} "
            f"| {v['test_psnr']:.2f} | {v['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="auto", help="auto, cifar10, shapes or any aekit source")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", default="seed,aekit,aekit:amp=false")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data = pick_data(args.data)
    if args.worker:
        kind, options = parse_variant(args.worker)
        result = (
            run_seed(args.data, args.epochs, args.limit)
            if kind == "seed"
            else run_aekit(args.data, args.epochs, args.limit, options)
        )
        print(json.dumps(result))
        return

    specs = args.variants.split(",")
    for spec in specs:
        parse_variant(spec)  # fail before any run
    runs: dict[str, list[dict]] = {spec: [] for spec in specs}
    for r in range(args.repeats):
        for spec in specs:
            res = run_variant(spec, args)
            if res is None:
                continue
            runs[spec].append(res)
            print(
                f"[{r + 1}/{args.repeats}] {spec}: {res['train_images_per_s']:.0f} img/s, "
                f"test MSE {res['test_mse']:.5f}, wall {res['wall_s']:.0f} s",
                file=sys.stderr,
            )
    medians = {
        spec: {
            **{
                k: statistics.median(x[k] for x in rs)
                for k in ("train_images_per_s", "test_mse", "test_psnr", "wall_s")
            },
            "later_images_per_s": (
                statistics.median(x["later_images_per_s"] for x in rs)
                if rs[0]["later_images_per_s"]
                else None
            ),
            "train_images_per_s_range": [
                min(x["train_images_per_s"] for x in rs),
                max(x["train_images_per_s"] for x in rs),
            ],
        }
        for spec, rs in runs.items()
        if rs
    }
    report = {
        "machine": machine(),
        "command": " ".join(["python", "bench/train_speed.py", *sys.argv[1:]]),
        "data": args.data,
        "epochs": args.epochs,
        "limit": args.limit,
        "repeats": args.repeats,
        "timed": TIMING,
        "median": medians,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(medians))


if __name__ == "__main__":
    main()
