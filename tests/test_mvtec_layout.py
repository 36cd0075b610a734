"""A folder in MVTec AD's layout trained and scored as it is: its normal images train, the
masks in ground_truth/ are read, and ``aekit score`` says how well each defect kind is found and
where the defects are (pixel AUROC, PRO) at each image's own size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aekit
from formats import mvtec_parts as parts


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from aekit.cli import main

    root = tmp_path_factory.mktemp("mvtec") / "parts"
    parts(root)
    run = root.parent / "run"
    assert main(["train", "--data", f"folder:{root}", "--image-size", "32", "--epochs", "8",
                 "--base-channels", "8", "--latent-dim", "16", "--out", str(run)]) == 0  # fmt: skip
    return root, run


def test_the_normal_images_train_and_the_threshold_is_set_on_normal_ones(mvtec) -> None:
    _, run = mvtec
    assert aekit.training.runs.load_config(run).data.classes == "good"  # implied by the layout
    cal = aekit.score(run)["calibration"]
    assert (cal["split"], cal["count"]) == ("test", 6)  # test/good only: no defect among them


def test_score_reports_each_kind_and_where_the_defects_are(cli, mvtec) -> None:
    root, run = mvtec
    code, out, err = cli("score", run, "--data", f"folder:{root}", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["normal"] == ["good"] and result["anomalous"] == 8 and result["count"] == 14
    assert set(result["per_kind"]) == {"spot", "scratch"}
    assert [v["count"] for v in result["per_kind"].values()] == [4, 4]
    assert result["pixel_images"] == 14 and result["defect_images"] == 8
    assert 0.0 <= result["pro"] <= 1.0
    assert result["pixel_auroc"] > 0.8  # bright defects on dark parts: found where they are
    assert "soft edges: a pixel above 127 counts as defect" in err
    code, out, _ = cli("score", run, "--data", f"folder:{root}")
    assert "AUROC by defect kind (each against the normal images): scratch " in out
    assert "where the defects are, over 14 images with masks (8 with a defect): pixel AUROC" in out


def test_a_mask_of_another_size_is_one_line_and_nothing_written(cli, mvtec, tmp_path) -> None:
    import shutil

    root, run = mvtec
    copy = tmp_path / "parts"
    shutil.copytree(root, copy)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(copy / "ground_truth/spot/000_mask.png")
    code, out, err = cli("score", run, "--data", f"folder:{copy}", "--out", tmp_path / "rep")
    assert code != 0 and out == ""
    assert err.strip().splitlines()[-1].endswith("a mask must be its image's size")
    assert "Traceback" not in err and not (tmp_path / "rep").exists()
