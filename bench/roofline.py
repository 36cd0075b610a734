"""How far can training go on this CPU? The loop against its raw step, and FLOPs against peak.

Usage: ``python bench/roofline.py [--families conv,resnet,unet,vae] [--repeats 3] [--limit 2048]
[--results bench/results/train_speed.json]``

- **Loop vs raw step**, per family (the seed's CIFAR model for ``conv``: base 64, latent 256;
  the others at their defaults), batch 64, on the built-in ``shapes`` set (32x32 RGB, the first
  ``--limit`` training images):
  - *loop*: ``aekit.train(..., epochs=2, augment="none")`` with every other option at its
    default (channels_last, bf16 autocast where native); images/s of epoch 2 from its
    ``metrics.jsonl`` ``seconds`` (the epoch's shuffle to its summed loss read back: the
    uint8 gather, scaling, lr schedule, loss sum; not the held-out pass). ``conv+augment`` is
    the same with ``augment="crop,hflip,vflip"`` (bench/train_speed.py's recipe), work the raw
    step does not do.
  - *raw step*: the same model (built from that run's config), Adam, the family's loss, on one
    batch already scaled, channels_last and resident; forward (bf16 autocast where the loop
    uses it), backward, optimizer step, as many steps as the loop's epoch, no host sync but
    the last. Where bf16 is native, *raw, bf16 weights* also runs with the model and batch cast
    to bf16 (no float32 master weights: faster, not a recipe aekit trains with).
  - *ratio*: each repeat's loop images/s over the raw step's measured right after it (paired:
    the shared machine's slow minutes touch both), median over the repeats. Families take
    turns per repeat.

- **FLOPs per training image**: ``torch.utils.flop_counter.FlopCounterMode`` over one forward
  and backward step of the seed's CIFAR model (conv, base 64, latent 256, 32x32) at batch 64,
  divided by 64 (convolutions and matrix products; element-wise ops are not counted).
- **Peak**: the best of the median rates of a 2048^3 matrix product and of a 3x3 convolution
  (batch 64, 128 -> 128 channels, 16x16) in float32, and in bf16 where the CPU runs it natively.
- **bf16 check**: a 512^3 matrix product in float32 and in bf16, also where bf16 is not native
  (there torch emulates it).
- **Ceiling**: peak / FLOPs per image, the images/s no implementation of this model can beat here;
  with the seed loop's images/s from ``--results`` (same machine, same session) it gives the
  largest speed-up over the seed that is possible at that precision.

Writes ``bench/results/roofline.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import aekit
from aekit.devices import bf16_native, pick_device
from aekit.models import Autoencoder
from aekit.models.base import to_model_scale
from aekit.models.config import ModelConfig
from aekit.training import fastpath, runs
from aekit.training.objectives import reconstruction_loss
from aekit.training.splits import load_splits
from aekit.training.step import Objective
from train_speed import machine  # same folder: the same machine description

HERE = Path(__file__).resolve().parent


def train_flops_per_image(batch: int = 64) -> float:
    model = Autoencoder(
        ModelConfig(arch="conv", in_channels=3, image_size=32, latent_dim=256, base_channels=64)
    )
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        out = model(x).recon
        torch.nn.functional.mse_loss(out, x).backward()
    return counter.get_total_flops() / batch


def median_rate(fn, flops: float, repeats: int = 15) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return flops / statistics.median(times)


def peak(dtype: torch.dtype) -> dict[str, float]:
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(dtype)
    x = torch.randn(64, 128, 16, 16, dtype=dtype)
    with torch.no_grad():
        mm = median_rate(lambda: a @ b, 2 * 2048**3)
        cv = median_rate(lambda: conv(x), 2 * 64 * 128 * 128 * 9 * 16 * 16)
    return {"matmul_gflops": mm / 1e9, "conv_gflops": cv / 1e9, "peak_gflops": max(mm, cv) / 1e9}


SEED_MODEL = {"base_channels": 64, "latent_dim": 256}  # the tutorial's CIFAR model
BATCH = 64


def loop_rate(work: Path, family: str, limit: int, device: str, augment: str) -> tuple[float, Path]:
    """aekit.train's images/s in its second epoch, and the run folder."""
    arch = family.split("+")[0]
    run = aekit.train(
        work / f"{family}-{time.monotonic_ns()}", "shapes", arch=arch, epochs=2,
        batch_size=BATCH, limit=limit, augment=augment, device=device, progress=False,
        **(SEED_MODEL if arch == "conv" else {}),
    )  # fmt: skip
    return runs.read_metrics(run)[-1]["images_per_s"], run


def raw_rate(run: Path, steps: int, device: torch.device, bf16_weights: bool = False) -> float:
    """images/s of the bare train step of ``run``'s model on one resident, scaled batch."""
    cfg = runs.load_config(run)
    obj = Objective.from_config(cfg, device)
    torch.manual_seed(0)
    model = Autoencoder(cfg.model).to(device, memory_format=fastpath.memory_format(device))
    images = load_splits(cfg.data)[0].images[:BATCH].to(device)
    x = to_model_scale(images, cfg.model.arch).contiguous(memory_format=torch.channels_last)
    if bf16_weights:
        model, x = model.to(torch.bfloat16), x.to(torch.bfloat16)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    eps = None
    if model.generative:
        eps = torch.randn(BATCH, cfg.model.latent_dim, device=device, dtype=x.dtype)
    forward = fastpath.training_forward(model, device, cfg.train.compile)
    amp = obj.amp and not bf16_weights

    def one() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = forward(x, eps)
        loss = reconstruction_loss(out.recon, x, obj.loss, model.value_range)
        for name, term in out.terms.items():
            loss = loss + obj.term_weight(name, 1.0) * term.float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        one()
    float(one().detach())  # warm, and synchronised
    t = time.perf_counter()
    for _ in range(steps):
        loss = one()
    float(loss.detach())
    return steps * BATCH / (time.perf_counter() - t)


def loop_vs_raw(families: list[str], repeats: int, limit: int, device_name: str) -> dict:
    """Per family: the loop's and the raw step's images/s (each repeat's), medians, ratio."""
    device = pick_device(device_name)
    bf16 = bf16_native(device)
    rates: dict[str, dict[str, list[float]]] = {f: {} for f in families}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for family in families:
                augment = "crop,hflip,vflip" if family.endswith("+augment") else "none"
                loop, run = loop_rate(Path(tmp), family, limit, device_name, augment)
                steps = limit // BATCH  # the loop's steps per epoch (limit: whole batches)
                got = {"loop": loop, "raw": raw_rate(run, steps, device)}
                if bf16:
                    got["raw_bf16_weights"] = raw_rate(run, steps, device, bf16_weights=True)
                for key, value in got.items():
                    rates[family].setdefault(key, []).append(value)
                print(f"repeat {r + 1} {family}: " + ", ".join(
                    f"{k} {v:.1f} images/s" for k, v in got.items()), flush=True)  # fmt: skip
    out = {}
    for family, got in rates.items():
        med = {k: statistics.median(v) for k, v in got.items()}
        # each repeat's loop and raw step run one after the other: their ratio is paired, so
        # the machine's slow minutes touch both; the median of those ratios is the result
        paired = [lo / ra for lo, ra in zip(got["loop"], got["raw"], strict=True)]
        out[family] = {"images_per_s": got, "median": med, "loop_over_raw_paired": paired,
                       "loop_over_raw": statistics.median(paired)}  # fmt: skip
        if "raw_bf16_weights" in med:
            out[family]["loop_over_raw_bf16_weights"] = statistics.median(
                lo / ra for lo, ra in zip(got["loop"], got["raw_bf16_weights"], strict=True)
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results" / "train_speed.json")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "roofline.json")
    parser.add_argument(
        "--families",
        default="conv,conv+augment,resnet,unet,vae",
        help="families for loop vs raw step ('none': skip that part)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--limit",
        type=int,
        default=2048,
        help="training images per epoch (a multiple of the batch, 64)",
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    families = [] if args.families == "none" else args.families.split(",")
    if args.limit % BATCH:
        parser.error(f"--limit must be a multiple of {BATCH}")
    loops = loop_vs_raw(families, args.repeats, args.limit, args.device) if families else {}
    flops = train_flops_per_image()
    dtypes = [torch.float32] + ([torch.bfloat16] if bf16_native(torch.device("cpu")) else [])
    seed = None
    if args.results.is_file():
        seed = json.loads(args.results.read_text())["median"]["seed"]["train_images_per_s"]
    rows: dict[str, dict] = {}
    # Is bf16 worth it here? A 512^3 product in each dtype (bf16 is emulated where not native).
    small = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(512, 512, dtype=dtype), torch.randn(512, 512, dtype=dtype)
        small[str(dtype).removeprefix("torch.")] = (
            median_rate(lambda a=a, b=b: a @ b, 2 * 512**3, 5) / 1e9
        )
    for dtype in dtypes:
        p = peak(dtype)
        ceiling = p["peak_gflops"] * 1e9 / flops
        rows[str(dtype).removeprefix("torch.")] = {
            **p,
            "ceiling_images_per_s": ceiling,
            "max_speedup_over_seed": ceiling / seed if seed else None,
        }
    report = {
        "machine": machine(),
        "command": " ".join(["python", "bench/roofline.py", *sys.argv[1:]]),
        "train_mflops_per_image": flops / 1e6,
        "seed_images_per_s": seed,
        "seed_gflops": seed * flops / 1e9 if seed else None,
        "loop_vs_raw": loops,
        "peak": rows,
        "matmul_512_gflops": small,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
