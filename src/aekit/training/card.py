"""The model card of a run: ``RUN/README.md`` in the Hugging Face model-card format (YAML front
matter, then markdown), rewritten at each epoch's end, so a run folder can be uploaded to a model
hub as it is and read by whoever receives it: what was trained on what (and the command that
trains it again), how to load it, its last numbers, its samples and its whole config."""

from __future__ import annotations

import json
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..data.config import DataConfig
from ..files import write_text
from ..models import get_family
from ..models.config import MODEL_CLI_SKIP, ModelConfig
from .config import TrainConfig
from .runs import RunConfig

CARD = "README.md"

# the Hugging Face Hub's ids of the built-in datasets that are on it
HUB_DATASETS = {
    "mnist": "ylecun/mnist",
    "fashion-mnist": "zalando-datasets/fashion_mnist",
    "cifar10": "uoft-cs/cifar10",
}
METRIC_NAMES = {  # metrics.jsonl key -> what the card's table calls it
    "train_loss": "training loss",
    "test_loss": "held-out loss",
    "test_mse": "held-out MSE ([0, 1] pixels)",
    "test_psnr": "held-out PSNR (dB)",
    "noisy_psnr": "noisy input PSNR (dB)",
    "denoised_psnr": "denoised PSNR (dB)",
    "denoised_ssim": "denoised SSIM",
    "self_supervised_loss": "held-out self-supervised loss",
    "kl": "KL (nats per image)",
    "nelbo": "negative ELBO (nats per image)",
    "active_fraction": "active latent units (fraction)",
    "dead_units": "dead latent units",
    "images_per_s": "training images/s",
}


def train_command(cfg: RunConfig, out: str | Path) -> str:
    """An ``aekit train`` command line that makes this config: every option that differs from
    what aekit would take by itself (the run's resolved values, e.g. the family's widths)."""
    words = ["aekit", "train"]
    derived = {"data": DataConfig(), "model": ModelConfig(), "train": TrainConfig()}
    limited = TrainConfig(time_limit=cfg.train.time_limit)  # epochs and schedule follow a limit
    for name, part, skip in (("data", cfg.data, ()), ("model", cfg.model, MODEL_CLI_SKIP),
                             ("train", cfg.train, ())):  # fmt: skip
        for f in fields(part):
            value = getattr(part, f.name)
            plain = limited if f.name in ("epochs", "schedule") else derived[name]
            if f.name in skip or (value == getattr(plain, f.name) and f.name != "source"):
                continue  # --data is always said
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                words.append(flag if value else flag.replace("--", "--no-"))
            else:
                words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return " ".join([shlex.join(words), "--out", shell_path(out)])


def shell_path(path: str | Path) -> str:
    """``path`` as one shell word that no command reads as a flag (``./-x``, quoted)."""
    text = str(path)
    return shlex.quote(f"./{text}" if text.startswith("-") else text)


def front_matter(cfg: RunConfig) -> str:
    family = get_family(cfg.model.arch)
    tags = ["aekit", "autoencoder", cfg.model.arch]
    if cfg.train.noise or cfg.train.self_supervised:
        tags.append("denoising")
    if cfg.train.self_supervised:
        tags.append("self-supervised")
    if cfg.train.sparsity:
        tags.append("sparse-autoencoder")
    if family.generative:
        tags.append("variational-autoencoder")
    lines = ["---", "library_name: aekit", "pipeline_tag: image-to-image", "tags:"]
    lines += [f"- {json.dumps(t)}" for t in tags]  # JSON strings are YAML strings
    hub = HUB_DATASETS.get(cfg.data.source)
    if hub:
        lines += ["datasets:", f"- {json.dumps(hub)}"]
    lines += ["metrics:", "- mse", "- psnr", "---"]
    return "\n".join(lines)


def _number(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) < 1 else f"{value:,.2f}"


def render(run: Path, cfg: RunConfig, rows: list[dict[str, Any]], samples: Path | None) -> str:
    """The card's text for ``run`` after the epochs of ``rows`` (metrics.jsonl's lines)."""
    last = rows[-1] if rows else {}
    family = get_family(cfg.model.arch)
    m = cfg.model
    name = shell_path(run.name)  # the commands, pasted beside the folder, must run
    what = (f"An aekit `{m.arch}` autoencoder ({family.summary}),"
            f" {m.in_channels}-channel {m.image_size}×{m.image_size} images, latent size "
            f"{m.latent_dim}, trained on `{cfg.data.source}` [{cfg.data.train_split}] for "
            f"{last.get('epoch', 0)} epochs.")  # fmt: skip
    parts = [
        front_matter(cfg),
        f"\n# {run.name}\n",
        what,
        "\n## Use\n",
        '```python\nimport aekit\n\nmodel = aekit.load("path/to/this/folder")  # eval mode\n'
        "recon = aekit.reconstruct(model, images)  # uint8 (N, C, H, W) -> [0, 1] floats\n```",
        f"\nOr `aekit eval {name}`, `aekit denoise {name} photo.png --out cleaned/`, "
        f"`aekit export {name} --out model.onnx` (onnxruntime).",
        "\n## Training\n",
        f"```bash\n{train_command(cfg, run.name)}\n```",
    ]
    if last:
        table = ["| held-out numbers after epoch " + str(last["epoch"]) + " | value |", "|---|---|"]
        table += [f"| {label} | {_number(last[key])} |" for key, label in METRIC_NAMES.items()
                  if isinstance(last.get(key), int | float)]  # fmt: skip
        parts += ["\n## Results\n", "\n".join(table)]
        parts.append("\nEvery epoch's numbers: `metrics.jsonl`; the curves: `loss.png`.")
    if samples is not None:
        rel = samples.relative_to(run).as_posix()
        caption = f"held-out images and their reconstructions after epoch {last.get('epoch')}"
        parts += ["\n## Samples\n", f"![{caption}]({rel})"]
    config = json.dumps(cfg.to_dict(), indent=2)
    parts += ["\n## Config\n", f"`config.json`:\n\n```json\n{config}\n```", ""]
    return "\n".join(parts)


def write_card(run: Path, cfg: RunConfig, rows: list[dict[str, Any]], samples: Path | None) -> Path:
    """(Re)write ``RUN/README.md``, atomically."""
    path = run / CARD
    write_text(path, render(run, cfg, rows, samples))
    return path
