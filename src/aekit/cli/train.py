"""``aekit train``: its flags are derived from the dataclass configs."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..data.config import DataConfig
from ..data.images import add_max_pixels_flag
from ..devices import DEVICES
from ..models import list_bodies, list_models
from ..models.config import MODEL_CLI_SKIP, ModelConfig
from ..options import add_arguments, from_namespace
from ..training.config import LOSSES, SCHEDULES, TrainConfig
from ..training.distributed import main_process
from .args import out_dir, out_path


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("train", help="train an autoencoder into a run folder")
    p.add_argument("--out", required=True, type=out_path, help="run folder to create (or continue)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    add_arguments(p, DataConfig)
    add_max_pixels_flag(p)
    add_arguments(p, ModelConfig, skip=MODEL_CLI_SKIP,
                  choices={"arch": list_models(), "body": list_bodies()})  # fmt: skip
    add_arguments(
        p,
        TrainConfig,
        choices={"loss": list(LOSSES), "device": list(DEVICES), "schedule": list(SCHEDULES)},
    )
    p.set_defaults(func=cmd_train)


def cmd_train(ns: argparse.Namespace) -> None:
    from ..training.init import init_model_config
    from ..training.loop import train
    from ..training.runs import RunConfig, resume_config

    if ns.resume:
        given = {f.name: getattr(ns, f.name) for c in CONFIGS for f in fields(c)
                 if hasattr(ns, f.name)}  # fmt: skip
        cfg = resume_config(ns.out, given)
    elif getattr(ns, "init", None):  # the model is the one the weights belong to
        given = {f.name: getattr(ns, f.name) for f in fields(ModelConfig) if hasattr(ns, f.name)}
        model = init_model_config(ns.init, given)
        cfg = RunConfig(from_namespace(DataConfig, ns), model, from_namespace(TrainConfig, ns))
    else:
        cfg = RunConfig(*(from_namespace(c, ns) for c in CONFIGS))
    out_dir(ns.out)
    run = train(cfg, ns.out, resume=ns.resume)
    if main_process():  # under torchrun: once, from rank 0
        _print_summary(run)


CONFIGS = (DataConfig, ModelConfig, TrainConfig)


def _print_summary(run: Path) -> None:
    from ..training.runs import read_metrics

    last = read_metrics(run)[-1]
    extra = "".join(f", {k} {last[k]:.2f} dB" for k in ("noisy_psnr", "denoised_psnr") if k in last)
    extra += "".join(f", {k} {last[k]:.1f} nats" for k in ("kl", "nelbo") if k in last)
    held = (f"held-out loss {last['self_supervised_loss']:.5g}" if "self_supervised_loss" in last
            else f"held-out PSNR {last['test_psnr']:.2f} dB")  # fmt: skip
    print(f"trained {run}: epoch {last['epoch']}, {held}{extra}, {last['images_per_s']:.0f} "
          "images/s")  # fmt: skip
    print(
        f"  weights {run / 'model.safetensors'}, metrics {run / 'metrics.jsonl'}, "
        f"samples {run / 'samples'}, curves {run / 'loss.png'}"
    )
