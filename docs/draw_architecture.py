"""Draw docs/images/architecture.svg, the picture of the import rule, from the contract itself
(``[tool.importlinter]`` in pyproject.toml): one band per layer, top to bottom, a box per folder
or module, and the named edges between jobs as arrows.

    python docs/draw_architecture.py            # rewrites docs/images/architecture.svg

tests/test_layout.py checks that the picture names exactly the contract's folders.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import matplotlib
import tomllib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "architecture.svg"
PACKAGE = ROOT / "src" / "aekit"

ROLE = {
    "__main__": "python -m aekit",
    "cli": "the aekit command",
    "web": "aekit serve: API, page",
    "api": "aekit.train, .denoise, .score ...",
    "anomaly": "aekit score",
    "denoising": "aekit denoise",
    "explore": "generate, units",
    "exporting": "aekit export",
    "search": "embed, search, map",
    "training": "configs, runs, the loop",
    "data": "sources, augment, streams",
    "models": "registry, families",
    "options": "config machinery",
    "viz": "pictures",
    "metrics": "PSNR, SSIM",
    "devices": "cpu, cuda, bf16",
    "files": "atomic writes, locks",
    "errors": "AekitError",
}
BAND = {
    "cli": "#dfe7fd",
    "web": "#dfe7fd",
    "__main__": "#dfe7fd",
    "api": "#e3f2e1",
    "anomaly": "#fdebd3",
    "training": "#f3e1f5",
    "data": "#e0f4f4",
}
GROUND = "#eeeeee"


def contract() -> tuple[list[list[str]], list[tuple[str, str]]]:
    """The layers (each a list of folders) and the named edges (importer, imported folder)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")
    rows = [[p.strip() for p in re.split(r"[|:]", layer)] for layer in layers["layers"]]
    edges = []
    for rule in layers.get("ignore_imports", []):
        a, b = (side.strip().split(".")[1] for side in rule.split("->"))
        if (a, b) not in edges:
            edges.append((a, b))
    return rows, edges


def draw(out: Path = OUT) -> Path:
    rows, edges = contract()
    width, row_h, box_h, gap, arcs = 10.0, 0.72, 0.56, 0.12, 0.5
    ends = {name for edge in edges for name in edge}
    headroom = [arcs if ends & set(row) else 0.0 for row in rows]  # room for a row's arcs
    height = row_h * len(rows) + sum(headroom) + 0.5
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    left, right = 1.3, width - 0.15
    centres: dict[str, tuple[float, float, float]] = {}
    y = height - 0.25
    for row, room in zip(rows, headroom, strict=True):
        y -= row_h + room
        colour = BAND.get(row[0], GROUND)
        span = (right - left - gap * (len(row) - 1)) / len(row)
        for j, name in enumerate(row):
            x = left + j * (span + gap)
            box = FancyBboxPatch((x, y), span, box_h, boxstyle="round,pad=0,rounding_size=0.08",
                                 facecolor=colour, edgecolor="#555555", linewidth=0.8)  # fmt: skip
            ax.add_patch(box)
            label = f"{name}/" if (PACKAGE / name).is_dir() else f"{name}.py"
            ax.text(x + span / 2, y + box_h * 0.64, label, ha="center", va="center",
                    fontsize=10.5, fontweight="bold", family="DejaVu Sans")  # fmt: skip
            ax.text(x + span / 2, y + box_h * 0.27, ROLE.get(name, ""), ha="center",
                    va="center", fontsize=7.5, color="#333333", family="DejaVu Sans")  # fmt: skip
            centres[name] = (x + span / 2, y, span)
    top, bottom = height - 0.35, 0.35
    ax.add_patch(FancyArrowPatch((0.55, top), (0.55, bottom), arrowstyle="-|>,head_width=0.25",
                                 mutation_scale=18, color="#444444", linewidth=1.5))  # fmt: skip
    ax.text(0.3, (top + bottom) / 2, "imports go down only", rotation=90, ha="center",
            va="center", fontsize=9, color="#444444", family="DejaVu Sans")  # fmt: skip
    for a, b in edges:  # jobs of one layer: an arc above the boxes
        (xa, ya, _), (xb, _, _) = centres[a], centres[b]
        ax.add_patch(FancyArrowPatch((xa, ya + box_h), (xb, ya + box_h),
                                     connectionstyle="arc3,rad=-0.07",
                                     arrowstyle="-|>,head_width=0.18", mutation_scale=14,
                                     color="#c0392b", linewidth=1.2))  # fmt: skip
    ax.text(right, height - 0.12, "red: the named edges between jobs (pyproject.toml)",
            ha="right", va="center", fontsize=8, color="#c0392b", family="DejaVu Sans")  # fmt: skip
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, and checked by the tests
    plt.rcParams["svg.hashsalt"] = "aekit"  # the same file from the same contract
    fig.savefig(out, metadata={"Date": None} if out.suffix == ".svg" else None, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(draw(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
