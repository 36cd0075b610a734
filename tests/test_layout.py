"""The package's layout keeps its rule (docs/architecture.md): import-linter's contracts in
pyproject.toml hold for the tree, and a wrong import breaks them; no module is over 400 lines;
every folder has its place in the architecture page and in the contract."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "aekit"
MAX_LINES = 400
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the project's contracts on the package under ``src`` (first on the
    path, so a copy is checked rather than the installed tree)."""
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is not installed (the dev extra)")
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=src, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def copy_with(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package with ``line`` added to ``module`` (a path under src/aekit), after
    its future import."""
    src = tmp_path / "src"
    shutil.copytree(PACKAGE, src / "aekit", ignore=shutil.ignore_patterns("__pycache__"))
    if not line:
        return src
    path = src / "aekit" / module
    text = path.read_text()
    cut = text.index("\n\n", text.index("from __future__")) + 2  # after the future import
    path.write_text(text[:cut] + line + "\n" + text[cut:])
    return src


def test_the_tree_keeps_the_import_rule() -> None:
    done = lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


# (module, the import added to it, what import-linter says)
WRONG = [
    # a model family reaching up into training
    ("models/base.py", "from ..training import runs",
     "aekit.models is not allowed to import aekit.training"),
    # a job importing another job without a named edge
    ("denoising/fullsize.py", "from ..search import knn",
     "aekit.denoising is not allowed to import aekit.search"),
    # the data layer and the models, independent of each other
    ("data/images.py", "from ..models import registry",
     "aekit.data is not allowed to import aekit.models"),
    # a cycle inside a folder
    ("training/objectives.py", "from . import loop", "No cycles are allowed in aekit.training"),
]  # fmt: skip


@pytest.mark.parametrize(("module", "line", "says"), WRONG)
def test_a_wrong_import_breaks_the_rule(tmp_path: Path, module: str, line: str, says: str) -> None:
    done = lint_imports(copy_with(tmp_path, module, line))
    assert done.returncode == 1, done.stdout
    assert says in done.stdout, done.stdout


def test_a_new_folder_must_be_given_its_layer(tmp_path: Path) -> None:
    src = copy_with(tmp_path, "", "")
    (src / "aekit" / "plugins").mkdir()
    (src / "aekit" / "plugins" / "__init__.py").write_text("")
    done = lint_imports(src)
    assert done.returncode == 1 and "aekit.plugins" in done.stdout, done.stdout


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_folder_has_its_layer_and_its_page_entry() -> None:
    """The contract's layers and docs/architecture.md's table name every folder and top-level
    module of the package, and nothing that is not there."""
    tree = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    tree |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")["layers"]
    named = {part.strip() for layer in layers for part in re.split(r"[|:]", layer)}
    assert named == tree
    page = (ROOT / "docs" / "architecture.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)(?:/|\.py)` \|", page, flags=re.M))
    assert rows == tree - {"__main__"}


def test_the_architecture_picture_names_the_rule_s_folders() -> None:
    """docs/images/architecture.svg (``python docs/draw_architecture.py``) has one box per
    folder of the contract, and one arrow per named edge between jobs."""
    svg = (ROOT / "docs" / "images" / "architecture.svg").read_text()
    labels = re.findall(r"font-weight: 700[^>]*>([\w.]+?)(?:/|\.py)</text>", svg)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "layers")
    named = [part.strip() for layer in layers["layers"] for part in re.split(r"[|:]", layer)]
    assert labels == named
    edges = {tuple(side.strip().split(".")[1] for side in rule.split("->"))
             for rule in layers["ignore_imports"]}  # fmt: skip
    assert svg.count("fill: none; stroke: #c0392b") == len(edges)  # an arc each (and its head)


def test_the_flat_api_keeps_its_names() -> None:
    """aekit.__all__ and aekit.api's functions are those of before the regrouping (issue 27)."""
    import aekit
    import aekit.api

    assert sorted(aekit.__all__) == sorted([
        "AekitError", "Autoencoder", "DataConfig", "Embeddings", "ImageSet", "ModelConfig",
        "RunConfig", "TrainConfig", "create_model", "denoise", "embed", "evaluate", "export",
        "generate", "interpolate", "list_models", "load", "load_dataset", "make_config",
        "map_embeddings", "reconstruct", "score", "train",
    ])  # fmt: skip
    assert all(callable(getattr(aekit, name)) for name in aekit.__all__)
    assert sorted(aekit.api.__all__) == ["denoise", "denoise_photo", "evaluate",
                                         "load_split_images", "make_config", "reconstruct",
                                         "score", "train"]  # fmt: skip
    assert aekit.api.denoise is aekit.denoise and aekit.api.score is aekit.score
