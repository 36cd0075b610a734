"""``aekit demo``: the offline tour on the built-in ``shapes`` set.

Trains a plain and a denoising conv autoencoder, draws reconstruction and denoising grids, and
writes ``report.md`` with the numbers. Sized to finish in about a minute on 2 CPU cores.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .config import DataConfig, ModelConfig, TrainConfig
from .data import load_dataset
from .models import to_model_scale, to_unit_scale
from .objectives import corrupt, parse_noise
from .runs import RunConfig, load, read_metrics
from .train import Objective, evaluate, train
from .viz import image_rows

DEMO_MODEL = ModelConfig(arch="conv", base_channels=32, latent_dim=128)
NOISE = "gaussian:0.4"  # twice the seed's 0.2: a short CPU run shows a clear gain at this level


def demo_configs(epochs: int = 6) -> dict[str, RunConfig]:
    """The two runs of the demo: a plain and a denoising autoencoder on ``shapes``."""
    data = DataConfig(source="shapes")
    return {
        "plain": RunConfig(data, DEMO_MODEL, TrainConfig(epochs=epochs, batch_size=32)),
        "denoising": RunConfig(
            data, DEMO_MODEL, TrainConfig(epochs=epochs, batch_size=32, noise=NOISE)
        ),
    }


def run_demo(out: Path, epochs: int = 6, progress: bool | None = None) -> Path:
    """Run the demo into ``out``; returns the path of its report."""
    out.mkdir(parents=True, exist_ok=True)
    test = load_dataset("shapes", "test")
    shown = test.images[:10]
    lines = [
        "# aekit demo",
        "",
        "Built-in `shapes` set (32x32 RGB, "
        f"{len(test.classes)} classes), conv autoencoder (base 32 channels, latent 128), "
        f"{epochs} epochs each, on the CPU/GPU this machine has.",
        "",
    ]
    for name, cfg in demo_configs(epochs).items():
        run = out / name
        print(f"[demo] training the {name} autoencoder into {run} ...", flush=True)
        t0 = time.perf_counter()
        if (run / "config.json").exists():
            import shutil

            shutil.rmtree(run)  # the demo's own folder from an earlier demo: start clean
        train(cfg, run, progress=progress)
        seconds = time.perf_counter() - t0
        model = load(run)
        ev = evaluate(model, test.images, Objective.from_config(cfg), with_ssim=True)
        lines += _section(name, cfg, run, seconds, ev)
        lines += _pictures(name, model, shown, out)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    print(f"[demo] done: report {report}")
    print(
        f"[demo] pictures: {out / 'reconstructions.png'}, {out / 'denoising.png'}; "
        f"runs: {out / 'plain'}, {out / 'denoising'}"
    )
    return report


def _section(name: str, cfg: RunConfig, run: Path, seconds: float, ev: dict) -> list[str]:
    rows = read_metrics(run)
    lines = [
        f"## {name} autoencoder",
        "",
        f"`aekit train --data shapes --base-channels 32 --latent-dim 128 --batch-size 32 --epochs "
        f"{cfg.train.epochs}{' --noise ' + cfg.train.noise if cfg.train.noise else ''} "
        f"--out {run.name}` took {seconds:.1f} s "
        f"({rows[-1]['images_per_s']:.0f} training images/s in the last epoch).",
        "",
        "| epoch | train loss | held-out loss | held-out PSNR (dB) |"
        + (" noisy PSNR | denoised PSNR |" if cfg.train.noise else ""),
        "|---|---|---|---|" + ("---|---|" if cfg.train.noise else ""),
    ]
    for r in rows:
        extra = f" {r['noisy_psnr']:.2f} | {r['denoised_psnr']:.2f} |" if cfg.train.noise else ""
        lines.append(
            f"| {r['epoch']} | {r['train_loss']:.4f} | {r['test_loss']:.4f} | "
            f"{r['test_psnr']:.2f} |{extra}"
        )
    lines += [
        "",
        f"Test split ({ev['count']} images): MSE {ev['mse']:.5f}, PSNR {ev['psnr']:.2f} dB, "
        f"SSIM {ev['ssim']:.3f}.",
    ]
    if cfg.train.noise:
        lines.append(
            f"With {cfg.train.noise} noise added: the noisy inputs score "
            f"{ev['noisy_psnr']:.2f} dB, the denoised outputs {ev['denoised_psnr']:.2f} dB."
        )
    return [*lines, ""]


def _pictures(name: str, model: torch.nn.Module, images: torch.Tensor, out: Path) -> list[str]:
    arch = model.config.arch
    x = to_model_scale(images, arch)
    with torch.no_grad():
        if name == "plain":
            _, y = model(x)
            path = image_rows(
                [("original", images), ("reconstruction", to_unit_scale(y, arch))],
                out / "reconstructions.png",
                title="plain autoencoder",
            )
        else:
            gen = torch.Generator().manual_seed(0)
            noisy = corrupt(x, parse_noise(NOISE), model.value_range, gen)
            _, y = model(noisy)
            path = image_rows(
                [
                    ("original", images),
                    ("noisy input", to_unit_scale(noisy, arch)),
                    ("denoised", to_unit_scale(y, arch)),
                ],
                out / "denoising.png",
                title=f"denoising autoencoder ({NOISE})",
            )
    return [f"![{name}]({path.name})", ""]
