"""A trained run made a built-in model (``builtin:NAME``): its weights copied into the package's
``models/weights/`` with their sha256, model card and the run's config, in ``index.json``.

    python bench/publish_builtin.py RUN --name unet-color-blind --default-for 3 --summary "..."
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import AekitError
from ..files import write_text
from ..models import pretrained
from .card import CARD
from .runs import CONFIG_VERSION, WEIGHTS, load_config, read_metrics


def publish_builtin(
    run: str | Path,
    name: str,
    summary: str,
    default_for: int | None = None,
    folder: Path | None = None,
) -> pretrained.Pretrained:
    """Add (or replace) the built-in model ``name`` from the finished run ``run``; with
    ``default_for`` (1 or 3) it becomes the denoiser of photos of that many channels."""
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
    if default_for is not None:
        for entry in index.values():  # one default per mode
            if entry.get("default_for") == default_for:
                entry["default_for"] = None
    weights, card = f"{name}.safetensors", f"{name}.md"
    shutil.copyfile(run / WEIGHTS, folder / weights)
    digest = pretrained.sha256(folder / weights)
    text = (run / CARD).read_text() if (run / CARD).is_file() else f"# {name}\n"
    note = (f"\n## Built into aekit\n\n`builtin:{name}` (`aekit denoise --model {name}`, "
            f"`aekit.load(\"builtin:{name}\")`): {summary}\n\n"
            f"sha256 of {weights}: `{digest}`\n")  # fmt: skip
    write_text(folder / card, text + note)
    index[name] = {
        "weights": weights,
        "sha256": digest,
        "card": card,
        "noise": cfg.train.noise or "none",
        "default_for": default_for,
        "summary": summary,
        "config": cfg.to_dict()["model"],
        "run_config": {"version": CONFIG_VERSION, **cfg.to_dict()},
    }
    write_text(index_path, json.dumps(index, indent=2) + "\n")
    return pretrained.get(name, folder)
