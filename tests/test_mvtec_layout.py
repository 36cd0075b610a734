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
from formats import mvtec_run


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    flags = ("--image-size", "32", "--epochs", "8", "--base-channels", "8", "--latent-dim", "16")
    return mvtec_run(tmp_path_factory.mktemp("mvtec"), *flags)


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


def test_out_draws_the_most_anomalous_at_their_own_size_with_their_masks(cli, mvtec, tmp_path):
    root, run = mvtec
    code, _, err = cli("score", run, "--data", f"folder:{root}", "--out", tmp_path / "rep",
                       "--overlays", "3")  # fmt: skip
    assert code == 0, err
    assert "overlays/ (the 3 most anomalous at their own size)" in err
    pictures = sorted((tmp_path / "rep" / "overlays").iterdir())
    assert [p.name[:5] for p in pictures] == ["0001_", "0002_", "0003_"]
    scores = {Path(r["item"]).stem: r for r in aekit.score(run, data=f"folder:{root}")["items"]}
    ranked = sorted(scores.values(), key=lambda r: -r["score"])[:3]
    for picture, row in zip(pictures, ranked, strict=True):
        name = picture.stem[5:]
        assert Path(row["item"]).stem == name
        image = np.array(Image.open(row["item"]))
        h, w = image.shape
        drawn = np.array(Image.open(picture))
        assert drawn.shape == (h, 3 * w + 2 * 4, 3)  # image | heatmap over it | mask
        assert (drawn[:, :w, 0] == image).all()
        mask_file = root / "ground_truth" / str(row["label"]) / f"{name}_mask.png"
        mask = np.array(Image.open(mask_file)) > 127 if mask_file.exists() else np.zeros((h, w))
        assert ((drawn[:, -w:, 0] == 255) == mask).all()
    code, _, err = cli("score", run, "--data", f"folder:{root}", "--out", tmp_path / "all",
                       "--overlays", "all")  # fmt: skip
    assert code == 0 and len(list((tmp_path / "all" / "overlays").iterdir())) == 14
    code, _, err = cli("score", run, "--data", f"folder:{root}", "--out", tmp_path / "x",
                       "--overlays", "-2")  # fmt: skip
    assert code != 0 and "--overlays" in err and not (tmp_path / "x").exists()
