"""``aekit units``: the most used units of a code, the images that activate them most, and each
unit decoded alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.explore.units import unit_report
from aekit.search.embed import encode

TINY = {"epochs": 1, "limit": 256, "base_channels": 8, "device": "cpu", "amp": False}


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("units")
    return aekit.train(root / "topk", "shapes", latent_dim=32, sparsity="topk:4", progress=False,
                       **TINY)  # fmt: skip


def test_units_of_a_k_sparse_code(sparse_run: Path, cli, tmp_path: Path) -> None:
    out = tmp_path / "units.png"
    code, stdout, err = cli("units", sparse_run, "--top", 5, "--images", 6, "--limit", 300,
                            "--out", out, "--json")  # fmt: skip
    assert code == 0, err
    got = json.loads(stdout)
    assert (got["count"], got["units"], len(got["top"])) == (300, 32, 5)
    codes = encode(aekit.load(sparse_run), aekit.load_dataset("shapes", "test", limit=300).images)
    fires = (np.abs(codes) > 1e-2).mean(axis=0)
    assert got["dead_units"] == int((fires == 0).sum()) and 0 < got["active_per_image"] <= 4
    shown = [t["unit"] for t in got["top"]]
    assert [t["fires"] for t in got["top"]] == pytest.approx(sorted(fires[shown], reverse=True))
    assert fires[shown].min() >= np.sort(fires)[-5]  # the most used units, not others
    for t in got["top"]:  # the images that activate the unit most
        act = np.abs(codes[:, t["unit"]])
        assert act[t["images"]].min() >= np.sort(act)[-6] and len(t["images"]) == 6
    with Image.open(out) as picture:
        assert picture.size[0] > 300 and picture.size[1] > 5 * 60  # a row per unit


def test_a_unit_alone_is_decoded_where_the_code_decodes(sparse_run: Path, tmp_path: Path) -> None:
    model = aekit.load(sparse_run)
    images = aekit.load_dataset("shapes", "test", limit=50).images
    found = unit_report(model, images, None, top=3, per_unit=2)
    u, v = found.units[0], float(found.value[0])
    z = torch.zeros(1, 32)
    z[0, u] = v
    with torch.no_grad():
        want = aekit.models.to_unit_scale(model.decode(z), "conv")
    assert torch.allclose(found.alone[0], want[0])
    unet = aekit.train(tmp_path / "unet", "shapes", arch="unet", **TINY)
    assert unit_report(aekit.load(unet), images, None, top=2).alone is None  # no code to decode


def test_units_mistakes_are_one_line(sparse_run: Path, cli, tmp_path: Path) -> None:
    out = tmp_path / "u.png"
    for args, words in [
        (["--top", 65], "--top 65: show between 1 and 32 units of this code"),
        (["--limit", 5, "--images", 6], "--images 6: between 1 and the 5 images scored"),
    ]:
        code, _, err = cli("units", sparse_run, "--out", out, *args)
        assert code != 0 and err.strip() == f"aekit units: error: {words}"
    code, _, err = cli("units", sparse_run, "--out", tmp_path / "u.txt")
    assert code != 0 and "PNG" in err
    assert not any(tmp_path.iterdir())


def test_units_runs_the_model_where_device_says(
    sparse_run: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aekit.devices import pick_device

    seen, real = [], aekit.training.runs.load

    def load(run: Path, device: object = "cpu") -> aekit.Autoencoder:
        seen.append(device)
        return real(run, device)

    monkeypatch.setattr(aekit.training.runs, "load", load)
    args = ["units", sparse_run, "--limit", 40, "--top", 2, "--out", tmp_path / "u.png"]
    assert cli(*args, "--device", "cpu")[0] == 0 and seen == [torch.device("cpu")]
    assert cli(*args)[0] == 0 and seen[-1] == pick_device("auto")  # the default: auto
    if not torch.cuda.is_available():
        (tmp_path / "u.png").unlink()
        code, _, err = cli(*args, "--device", "cuda")
        assert code == 2 and "--device cuda was asked for but this machine has none" in err
        assert not (tmp_path / "u.png").exists()
