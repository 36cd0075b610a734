"""A trained run made a built-in model (``builtin:NAME``): its weights copied into the package's
``models/weights/`` with their sha256, model card and the run's config, in ``index.json``.

    python bench/publish_builtin.py RUN --name unet-color-blind --default-for 3 --summary "..."
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import AekitError
from ..files import write_text
from ..models import pretrained
from .card import front_matter, train_command
from .runs import CONFIG_VERSION, WEIGHTS, RunConfig, load_config, read_metrics


def publish_builtin(
    run: str | Path,
    name: str,
    summary: str,
    default_for: int | None = None,
    folder: Path | None = None,
    default_for_jpeg: int | None = None,
) -> pretrained.Pretrained:
    """Add (or replace) the built-in model ``name`` from the finished run ``run``; with
    ``default_for`` (1 or 3) it becomes the denoiser of photos of that many channels, with
    ``default_for_jpeg`` that of JPEG files of them."""
    folder = pretrained.WEIGHTS_DIR if folder is None else folder
    run = Path(run)
    cfg = load_config(run)
    if not (run / WEIGHTS).is_file() or not read_metrics(run):
        raise AekitError(f"{run} has no finished epoch to publish")
    if not name.replace("-", "").isalnum():
        raise AekitError(f"a built-in model's name is letters, digits and -, got {name!r}")
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / pretrained.INDEX
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    for key, channels in (("default_for", default_for), ("default_for_jpeg", default_for_jpeg)):
        for entry in index.values():  # one default per mode
            if channels is not None and entry.get(key) == channels:
                entry[key] = None
    weights, card = f"{name}.safetensors", f"{name}.md"
    shutil.copyfile(run / WEIGHTS, folder / weights)
    digest = pretrained.sha256(folder / weights)
    write_text(folder / card, builtin_card(name, summary, cfg, read_metrics(run), digest))
    index[name] = {
        "weights": weights,
        "sha256": digest,
        "card": card,
        "noise": cfg.train.noise or "none",
        "default_for": default_for,
        "default_for_jpeg": default_for_jpeg,
        "summary": summary,
        "config": cfg.to_dict()["model"],
        "run_config": {"version": CONFIG_VERSION, **cfg.to_dict()},
    }
    write_text(index_path, json.dumps(index, indent=2) + "\n")
    return pretrained.get(name, folder)


def _portable(source: str) -> str:
    """A folder source said by the folder's name (``folder:CBSD432``), not by where it lay on
    the machine that trained the model."""
    kind, _, where = source.partition(":")
    return f"{kind}:{Path(where).name}" if kind == "folder" and where else source


def builtin_card(
    name: str, summary: str, cfg: RunConfig, rows: list[dict[str, Any]], digest: str
) -> str:
    """The model card of a built-in model: what it is, how to use it, the command and the time
    that trained it, its held-out numbers, its sha256 and its config."""
    last = rows[-1]
    shown = cfg.to_dict()  # the data folder by its name, not by where it lay when trained
    shown["data"]["source"] = _portable(cfg.data.source)
    command = train_command(cfg, name).replace(cfg.data.source, shown["data"]["source"])
    minutes = sum(r.get("seconds", 0.0) for r in rows) / 60
    m = cfg.model
    mode = {1: "gray", 3: "colour"}[m.in_channels]
    return "\n".join([
        front_matter(cfg),
        f"\n# {name}\n",
        f"{summary}\n",
        f"A `{m.arch}` of aekit (width {m.base_channels}), for {mode} photos of any size, "
        f"trained on `{cfg.train.noise or 'no noise'}`.",
        "\n## Use\n",
        f"```bash\naekit denoise photo.jpg --out cleaned/ --model {name}\n```\n",
        f'```python\nimport aekit\n\nmodel = aekit.load("builtin:{name}")  # eval mode\n'
        "noisy, denoised = aekit.denoise(model, [photo])  # uint8 (C, H, W) -> [0, 1] floats\n```",
        "\n## Training\n",
        f"```bash\n{command}\n```\n",
        f"{last['epoch']} epochs, {minutes:.1f} minutes summed over their own times"
        + (f" (a budget of --time-limit {cfg.train.time_limit:g} minutes)."
           if cfg.train.time_limit else "."),
        "\n## Held-out numbers after the last epoch\n",
        "| measure | value |\n|---|---|",
        *(f"| {label} | {last[key]:.2f} |" for key, label in
          (("noisy_psnr", "noisy input PSNR (dB)"), ("denoised_psnr", "denoised PSNR (dB)"),
           ("images_per_s", "training patches/s")) if key in last),
        "\n## Weights\n",
        f"`{name}.safetensors`, sha256 `{digest}` (checked before the weights are read).",
        "\n## Config\n",
        f"```json\n{json.dumps(shown, indent=2)}\n```",
        "",
    ])  # fmt: skip
