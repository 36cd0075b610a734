"""Anomaly detection: --classes, the scores and metrics, aekit score, the report, the API."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_msssim import ssim as reference_ssim

import aekit
from aekit.anomaly.detector import ANOMALY, SCORES_VERSION, load_detector
from aekit.anomaly.methods import (
    calibrate,
    combine,
    detection_metrics,
    gaussian_blur,
    knn_distance,
    method_scores,
    reconstruct_scores,
    spread_stats,
    ssim_map,
)
from aekit.data.classes import class_names, keep_classes, parse_classes
from aekit.data.config import DataConfig
from aekit.errors import AekitError
from aekit.search.embed import encode
from aekit.training.splits import load_splits

# --- pure functions ---


def test_ssim_map_is_pytorch_msssim_inside_the_border() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 32, 32, generator=gen)
    b = (a + 0.2 * torch.randn(3, 3, 32, 32, generator=gen)).clamp(0, 1)
    inside = ssim_map(a, b)[:, 5:-5, 5:-5]  # pytorch_msssim's valid 11x11 window positions
    expected = reference_ssim(a, b, data_range=1.0, size_average=False, win_size=11)
    torch.testing.assert_close(inside.mean(dim=(1, 2)), expected, atol=1e-5, rtol=1e-4)
    assert torch.allclose(ssim_map(a, a), torch.ones(3, 32, 32), atol=1e-5)


def test_gaussian_blur_keeps_constants_and_mass() -> None:
    flat = torch.full((1, 2, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    delta = torch.zeros(1, 1, 33, 33)
    delta[0, 0, 16, 16] = 1.0
    blurred = gaussian_blur(delta, 1.5)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert blurred[0, 0, 16, 16] == blurred.max()  # centred
    assert blurred[0, 0, 16, 17] == pytest.approx(blurred[0, 0, 17, 16].item())  # symmetric


def test_detection_metrics_follow_their_definitions() -> None:
    rng = np.random.default_rng(0)
    anomalous = rng.random(300) < 0.3
    scores = rng.normal(size=300) + 1.2 * anomalous
    m = detection_metrics(scores, anomalous)
    # AUROC: the chance that an anomaly outscores a normal image (Mann-Whitney)
    pairs = scores[anomalous][:, None] > scores[~anomalous][None, :]
    assert m["auroc"] == pytest.approx(pairs.mean(), abs=1e-9)
    # best F1 over every threshold, flagging scores >= threshold
    best = 0.0
    for t in scores:
        flagged = scores >= t
        tp = (flagged & anomalous).sum()
        best = max(best, 2 * tp / (flagged.sum() + anomalous.sum()))
    assert m["f1"] == pytest.approx(best)
    flagged = scores >= m["threshold"]
    assert 2 * (flagged & anomalous).sum() / (flagged.sum() + anomalous.sum()) == pytest.approx(
        m["f1"]
    )
    assert 0 < m["aupr"] < 1 and m["count"] == 300 and m["anomalous"] == anomalous.sum()
    perfect = detection_metrics(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert (perfect["auroc"], perfect["aupr"], perfect["f1"]) == (1.0, 1.0, 1.0)
    assert perfect["threshold"] == 0.8


def test_detection_metrics_refuse_one_kind() -> None:
    with pytest.raises(AekitError, match="all 3 images are normal: AUROC"):
        detection_metrics(np.array([1.0, 2.0, 3.0]), np.zeros(3, bool))


def test_calibrated_threshold_flags_at_most_the_fpr() -> None:
    scores = np.random.default_rng(1).normal(size=1000)
    for fpr in (0.01, 0.05, 0.2):
        t = calibrate(scores, fpr)
        assert (scores > t).mean() <= fpr
        assert (scores >= t).mean() >= fpr  # and no higher than needed
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(AekitError, match="--fpr"):
            calibrate(scores, bad)


def test_knn_distance_is_the_mean_of_the_k_nearest() -> None:
    gen = torch.Generator().manual_seed(0)
    train, queries = torch.randn(50, 8, generator=gen), torch.randn(7, 8, generator=gen)
    expected = torch.cdist(queries, train).topk(5, largest=False).values.mean(1)
    got = knn_distance(queries.numpy(), train.numpy(), k=5)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4)
    own = knn_distance(train.numpy(), train.numpy(), k=1, exclude_self=True)
    d = torch.cdist(train, train)
    d.fill_diagonal_(float("inf"))
    np.testing.assert_allclose(own, d.min(1).values.numpy(), rtol=1e-4)


def test_combined_adds_standardised_parts() -> None:
    parts = {"recon": np.array([1.0, 3.0]), "ssim": np.array([0.5, 0.5]),
             "latent-knn": np.array([10.0, 30.0])}  # fmt: skip
    stats = {"recon": spread_stats(np.array([1.0, 3.0])), "ssim": (0.5, 0.1),
             "latent-knn": (20.0, 10.0)}  # fmt: skip
    np.testing.assert_allclose(combine(parts, stats), [-1.0, 1.0])  # ssim and latent-knn


# --- --classes ---


def test_parse_classes() -> None:
    assert parse_classes("3") == ["3"]
    assert parse_classes(" 3, cat ") == ["3", "cat"]
    assert parse_classes(None) is None
    for bad, why in (("", "separated by commas"), ("3,,5", "separated by commas"),
                     ("3,3", "names '3' twice")):  # fmt: skip
        with pytest.raises(AekitError, match=why):
            parse_classes(bad)


def test_class_names_by_name_or_number() -> None:
    ds = aekit.load_dataset("shapes", "test")
    assert class_names(ds, "circle,2") == ["circle", "triangle"]
    with pytest.raises(AekitError, match="shapes has no class 'hexagon': its classes are 0 "):
        class_names(ds, "hexagon")
    with pytest.raises(AekitError, match="names one class twice"):
        class_names(ds, "0,circle")
    kept = keep_classes(ds, ["circle", "triangle"])
    assert set(kept.labels.tolist()) == {0, 2}
    assert len(kept) == int(((ds.labels == 0) | (ds.labels == 2)).sum())


def test_load_splits_keeps_the_classes_in_both_splits() -> None:
    train, held = load_splits(DataConfig(source="shapes", classes="square", limit=100))
    assert len(train) == 100 and set(train.labels.tolist()) == {1}
    assert held.split == "test" and set(held.labels.tolist()) == {1}


def test_classes_of_a_folder_with_splits(tmp_path: Path) -> None:
    # train/ has only good/; test/ has bad/ and good/: the classes are those of every split
    rng = np.random.default_rng(0)
    for split, kinds in (("train", ["good"]), ("test", ["bad", "good"])):
        for kind in kinds:
            (tmp_path / split / kind).mkdir(parents=True)
            for i in range(4):
                value = 200 if kind == "bad" else 40
                pixels = np.clip(rng.normal(value, 5, (16, 16)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / kind / f"{i}.png")
    train, held = load_splits(DataConfig(source=f"folder:{tmp_path}", classes="good"))
    assert len(train) == 4 and len(held) == 4
    assert held.classes == train.classes == ["bad", "good"]
    assert set(held.labels.tolist()) == set(train.labels.tolist()) == {1}
    with pytest.raises(AekitError, match=r"train split of folder:.* no images of class bad"):
        load_splits(DataConfig(source=f"folder:{tmp_path}", classes="0"))


def test_classes_refused_without_labels_or_with_patches(tmp_path: Path) -> None:
    for i in range(3):
        Image.new("L", (16, 16), 10 * i).save(tmp_path / f"{i}.png")
    with pytest.raises(AekitError, match="has none: use a labelled source"):
        load_splits(DataConfig(source=f"folder:{tmp_path}", classes="0"))
    with pytest.raises(AekitError, match="--classes picks labelled images; --patch-size"):
        DataConfig(source=f"folder:{tmp_path}", classes="0", patch_size=8)


def test_train_with_unknown_class_is_one_line_and_writes_nothing(cli, tmp_path: Path) -> None:
    code, _, err = cli("train", "--data", "shapes", "--classes", "7,octagon", "--epochs", "1",
                         "--out", tmp_path / "run")  # fmt: skip
    assert code != 0 and err.count("\n") == 1
    assert "shapes has no class 'octagon'" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "config.json").exists()


# --- a one-class run: circles are normal ---


@pytest.fixture(scope="session")
def circle_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("anomaly") / "circles"
    aekit.train(out, data="shapes", classes="0", arch="resnet", base_channels=8,
                latent_dim=16, epochs=3, limit=600, progress=False)  # fmt: skip
    return out


def test_the_run_remembers_its_normal_classes_by_name(circle_run: Path) -> None:
    cfg = aekit.training.runs.load_config(circle_run)
    assert cfg.data.classes == "circle"
    rows = aekit.training.runs.read_metrics(circle_run)
    assert rows  # the held-out numbers are of the circles of the test split
    det = load_detector(circle_run, progress=False)
    assert det.normal == ["circle"]
    assert det.about == {"source": "shapes", "split": "test", "count": 125, "train_count": 600}


def test_score_a_labelled_split(cli, circle_run: Path) -> None:
    code, out, err = cli("score", circle_run, "--data", "shapes", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["count"] == 1000 and result["anomalous"] == 875
    assert result["normal"] == ["circle"] and result["split"] == "test"
    assert result["method"] == "combined"
    assert result["auroc"] > 0.6  # non-circles are less familiar than circles (0.69 on a GPU)
    assert 0 < result["aupr"] <= 1 and 0 < result["f1"] <= 1
    assert {"threshold", "verdict_threshold", "fpr", "flagged"} <= set(result)
    assert "items" not in result  # thousands of rows: those go to --out DIR's scores.csv


def test_each_method_scores_and_they_differ(circle_run: Path) -> None:
    seen = {}
    for method in ("recon", "ssim", "latent-knn", "combined"):
        r = aekit.score(circle_run, data="shapes", limit=300, method=method)
        assert r["count"] == 300 and 0 <= r["auroc"] <= 1
        seen[method] = [item["score"] for item in r["items"]]
    assert len({tuple(v) for v in seen.values()}) == 4
    assert min(seen["recon"]) >= 0 and min(seen["latent-knn"]) >= 0


def test_score_report_folder(cli, circle_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, stdout, err = cli("score", circle_run, "--data", "shapes", "--method", "ssim",
                            "--out", out)  # fmt: skip
    assert code == 0, err
    assert "AUROC" in stdout and "wrote" in err
    with open(out / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1000 and list(rows[0]) == ["item", "label", "score", "verdict"]
    threshold = float(stdout.split("threshold ")[1].split()[0])
    for row in rows:
        assert row["verdict"] == ("anomalous" if float(row["score"]) > threshold else "normal")
    assert {r["label"] for r in rows} == set(aekit.load_dataset("shapes", "test").classes)
    for name in ("roc.png", "histogram.png", "anomalous.png", "normal.png"):
        with Image.open(out / name) as img:
            assert img.width > 300 and img.height > 200, name
    # the most anomalous picture shows the highest scores, the normal one the lowest
    scores = sorted(float(r["score"]) for r in rows)
    assert scores[-1] > scores[0]


def test_fpr_calibrates_and_is_kept_in_the_run(cli, circle_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "copy"
    import shutil

    shutil.copytree(circle_run, run)
    code, out, err = cli("score", run, "--fpr", "0.2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["fpr"] == 0.2 and "count" not in result  # calibrated only
    saved = json.loads((run / ANOMALY).read_text())
    assert saved["fpr"] == 0.2
    held = load_splits(aekit.training.runs.load_config(run).data)[1]
    det = load_detector(run, progress=False)
    flagged = (det.scores(held.images, "combined") > result["verdict_threshold"]).mean()
    assert 0.1 <= flagged <= 0.2  # about the chosen share of held-out normal images
    # what the command says it flags: measured on the saved held-out scores (a GPU's numerics
    # may move an image or two across the threshold when they are scored again, as above)
    assert result["heldout_above"] <= 0.2 and abs(result["heldout_above"] - flagged) <= 0.02
    again = aekit.score(run, images=held.images[:5])
    assert again["fpr"] == 0.2 and again["verdict_threshold"] == result["verdict_threshold"]


def test_score_image_files(cli, circle_run: Path, tmp_path: Path) -> None:
    ds = aekit.load_dataset("shapes", "test")
    circle = int((ds.labels == 0).nonzero()[0])
    cross = int((ds.labels == 5).nonzero()[0])
    paths = []
    for name, i in (("circle.png", circle), ("cross.png", cross)):
        paths.append(tmp_path / name)
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(paths[-1])
    code, out, err = cli("score", circle_run, *paths, "--json")
    assert code == 0, err
    items = json.loads(out)["items"]
    assert [Path(it["item"]).name for it in items] == ["circle.png", "cross.png"]
    assert {it["verdict"] for it in items} <= {"normal", "anomalous"}
    direct = aekit.score(circle_run, images=ds.images[[circle, cross]])
    np.testing.assert_allclose([it["score"] for it in items],
                               [it["score"] for it in direct["items"]], rtol=1e-5)  # fmt: skip
    code, out, _ = cli("score", circle_run, *paths)
    assert code == 0 and f"{paths[0]}: " in out and "2 images" in out


def test_scores_are_made_again_when_the_weights_change(circle_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(circle_run, run)
    load_detector(run, progress=False)
    body = json.loads((run / ANOMALY).read_text())
    good_hash = body["model_hash"]
    body["model_hash"] = "0" * 64
    body["heldout"]["recon"] = [123.0] * len(body["heldout"]["recon"])
    (run / ANOMALY).write_text(json.dumps(body))
    det = load_detector(run, progress=False)
    assert det.heldout["recon"].max() < 1  # recomputed, not the stale numbers
    assert json.loads((run / ANOMALY).read_text())["model_hash"] == good_hash
    (run / ANOMALY).write_text("{damaged")
    assert load_detector(run, progress=False).heldout["recon"].max() < 1
    body = json.loads((run / ANOMALY).read_text())
    del body["version"]  # saved by an aekit that scored otherwise
    body["heldout"]["recon"] = [123.0] * len(body["heldout"]["recon"])
    (run / ANOMALY).write_text(json.dumps(body))
    assert load_detector(run, progress=False).heldout["recon"].max() < 1
    assert json.loads((run / ANOMALY).read_text())["version"] == SCORES_VERSION


# --- bad input: one line each, nothing written ---


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "shapes", "--normal", "0,1,2,3,4,5,6,7"], "are normal (normal: circle, "),
        (["--data", "shapes", "--normal", "heptagon"], "shapes has no class 'heptagon'"),
        (["--data", "shapes", "--split", "nope"], "shapes has no 'nope' split"),
        (["IMG", "--data", "shapes"], "either image files or --data"),
        (["missing.png"], "missing.png"),
        (["--out", "FILE", "--data", "shapes"], "is a file, not a folder"),
    ],
)
def test_bad_score_input_is_one_line(cli, circle_run, tmp_path, args, message) -> None:
    (tmp_path / "FILE").write_text("x")
    Image.new("RGB", (32, 32)).save(tmp_path / "IMG.png")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    args = [str(tmp_path / "IMG.png") if a == "IMG" else a for a in args]
    code, _, err = cli("score", circle_run, *args)
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("fpr", ["0", "1", "1.5", "-0.1", "abc", "nan"])
def test_bad_fpr_is_a_usage_error(cli, circle_run, fpr) -> None:
    code, _, err = cli("score", circle_run, "--fpr", fpr)
    assert code == 2 and "--fpr" in err and err.count("\n") == 1


def test_no_images_is_one_line(circle_run) -> None:
    for empty in ([], torch.zeros(0, 3, 32, 32, dtype=torch.uint8)):
        with pytest.raises(AekitError, match="no images to score"):
            aekit.score(circle_run, images=empty)


def test_normal_needs_labels(cli, circle_run, tmp_path) -> None:
    for i in range(3):
        Image.new("RGB", (32, 32), (10 * i, 0, 0)).save(tmp_path / f"{i}.png")
    code, _, err = cli("score", circle_run, "--data", f"folder:{tmp_path}", "--normal", "0")
    assert code != 0 and "--normal picks images by their labels" in err
    code, out, err = cli("score", circle_run, "--data", f"folder:{tmp_path}", "--json")
    assert code == 0, err  # unlabelled: scores and verdicts, no metrics
    result = json.loads(out)
    assert result["count"] == 3 and "auroc" not in result


def test_score_with_a_run_of_another_size(cli, circle_run, mnist_dir) -> None:
    code, _, err = cli("score", circle_run, "--data", "mnist", "--data-dir", mnist_dir,
                       "--limit", "50")  # fmt: skip
    assert code != 0 and err.count("\n") == 1
    assert "28" in err and "32" in err


def test_a_run_that_cannot_be_written_still_scores(circle_run, tmp_path, monkeypatch, capsys):
    import shutil

    import aekit.anomaly.detector as detector

    run = shutil.copytree(circle_run, tmp_path / "copy")
    (run / ANOMALY).unlink(missing_ok=True)

    def refuse(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(detector, "atomic_write", refuse)
    result = aekit.score(run, images=aekit.load_dataset("shapes", "test").images[:4])
    assert result["count"] == 4 and not (run / ANOMALY).exists()
    assert "could not keep the scores" in capsys.readouterr().err


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b["heldout"].update(recon=["x"] * len(b["heldout"]["recon"])),
        lambda b: b.update(about=5),
        lambda b: b["heldout"].update(ssim=b["heldout"]["ssim"][:3]),
        lambda b: b["heldout"]["ssim"].__setitem__(0, float("nan")),
        lambda b: b.update(heldout={"recon": [], "ssim": [], "latent-knn": []}),
        lambda b: b.update(fpr=2.0),
        lambda b: b["map_scale"].update(ssim=-1.0),
    ],
)
def test_any_damage_to_the_saved_scores_makes_them_again(circle_run, tmp_path, damage) -> None:
    import shutil

    run = shutil.copytree(circle_run, tmp_path / "copy")
    good = load_detector(run, progress=False)
    body = json.loads((run / ANOMALY).read_text())
    damage(body)
    (run / ANOMALY).write_text(json.dumps(body))
    det = load_detector(run, progress=False)
    np.testing.assert_allclose(det.heldout["ssim"], good.heldout["ssim"], rtol=1e-5)
    assert json.loads((run / ANOMALY).read_text())["about"] == good.about  # saved anew


@pytest.mark.parametrize("shape", [(1, 16), (0, 16), (600, 7)])
def test_training_codes_of_another_shape_are_made_again(circle_run, tmp_path, shape) -> None:
    import shutil

    from aekit.anomaly.detector import CODES

    run = shutil.copytree(circle_run, tmp_path / "copy")
    load_detector(run, progress=False)
    np.save(run / CODES, np.ones(shape, np.float32))
    det = load_detector(run, progress=False)
    assert det.train_codes.shape == (600, 16)
    assert np.load(run / CODES).shape == (600, 16)


def test_an_image_scores_the_same_alone_or_in_a_batch(circle_run, monkeypatch) -> None:
    # What this checks is that the scoring adds no batch dependence of its own, so the model runs
    # in float64. In float32 the kernels themselves differ with the batch size: torch convolves a
    # batch of 1 by im2col + GEMM and a larger one with oneDNN, so a combined score moved by up
    # to 1.5e-5 (all 40 images, AVX512 and AVX2 kernels alike; 1e-4 on an H200's). In float64
    # (no oneDNN path; 2^-29 of float32's rounding) it moved by 2.2e-14 under both ISAs. A
    # combined score is in units of the held-out spread and can be near 0, so no rtol: 1e-10 is
    # 4 decades above float64's rounding and 5 below float32's, so only what the scoring does
    # with a batch can fail it.
    load_detector(circle_run, progress=False)  # made, if it was not, by the float32 model
    real_load = aekit.anomaly.detector.load
    monkeypatch.setattr(aekit.anomaly.detector, "load", lambda *a, **k: real_load(*a, **k).double())
    images = aekit.load_dataset("shapes", "test").images[:40]
    batch = [it["score"] for it in aekit.score(circle_run, images=images, device="cpu")["items"]]
    alone = [aekit.score(circle_run, images=images[i : i + 1], device="cpu")["items"][0]["score"]
             for i in (0, 17, 39)]  # fmt: skip
    np.testing.assert_allclose(alone, [batch[0], batch[17], batch[39]], rtol=0, atol=1e-10)


def test_a_float64_model_scores_in_float64_and_float32_stays_the_default(circle_run) -> None:
    model = aekit.load(circle_run, device="cpu")
    images = aekit.load_dataset("shapes", "test").images[:40]
    single, vectors = reconstruct_scores(model, images), encode(model, images)
    double, double_vectors = reconstruct_scores(model.double(), images), encode(model, images)
    assert {v.dtype for v in single.values()} == {np.dtype(np.float32)}
    assert {v.dtype for v in double.values()} == {np.dtype(np.float64)}
    assert double_vectors.dtype == np.float32  # a store's vectors, whatever the model
    # the same numbers, to float32's rounding: at most 3.5e-6 of the largest (ssim; measured
    # under AVX512 and AVX2 kernels); a wrong value range or offset moves them by far more
    double["vectors"], single["vectors"] = double_vectors, vectors
    for name, value in double.items():
        np.testing.assert_allclose(single[name], value, rtol=0, atol=1e-4 * np.abs(value).max())


def test_a_chosen_fpr_outlives_new_weights(circle_run, tmp_path) -> None:
    import shutil

    run = shutil.copytree(circle_run, tmp_path / "copy")
    aekit.score(run, fpr=0.2)
    body = json.loads((run / ANOMALY).read_text())
    body["model_hash"] = "0" * 64  # as if the run had been trained further
    (run / ANOMALY).write_text(json.dumps(body))
    assert load_detector(run, progress=False).fpr == 0.2


def test_one_held_out_image(tmp_path, cli) -> None:
    ds = aekit.load_dataset("shapes", "train").subset(slice(0, 300))
    test = aekit.load_dataset("shapes", "test")
    one = torch.cat([test.images[test.labels == 0][:1], test.images[test.labels != 0][:20]])
    labels = torch.cat([torch.zeros(1, dtype=torch.int64), torch.ones(20, dtype=torch.int64)])
    np.savez(tmp_path / "one.npz", x_train=ds.images.permute(0, 2, 3, 1).numpy(),
             y_train=ds.labels.numpy(), x_test=one.permute(0, 2, 3, 1).numpy(),
             y_test=labels.numpy())  # fmt: skip
    source = f"npz:{tmp_path / 'one.npz'}"
    aekit.train(tmp_path / "run", data=source, classes="0", arch="resnet", base_channels=8,
                latent_dim=16, epochs=1, progress=False)  # fmt: skip
    code, _, err = cli("score", tmp_path / "run", "--data", source)
    assert code != 0 and "holds out 1 normal image: combined needs" in err
    code, out, err = cli("score", tmp_path / "run", "--data", source, "--method", "recon")
    assert code == 0 and "only 1 normal image(s)" in err and "AUROC" in out


def test_api_score_takes_one_path_and_checks_out_first(circle_run, tmp_path) -> None:
    Image.fromarray(aekit.load_dataset("shapes", "test").images[0].permute(1, 2, 0).numpy()).save(
        tmp_path / "a.png"
    )
    result = aekit.score(circle_run, images=str(tmp_path / "a.png"))
    assert [it["item"] for it in result["items"]] == [str(tmp_path / "a.png")]
    with pytest.raises(AekitError, match="is a file, not a folder"):
        aekit.score(circle_run, data="shapes", out=tmp_path / "a.png")


@pytest.mark.parametrize(("method", "computed"), [
    ("recon", set()), ("ssim", {"ssim"}), ("latent-knn", {"knn"}), ("combined", {"ssim", "knn"}),
])  # fmt: skip
def test_a_method_computes_only_the_parts_it_needs(circle_run, monkeypatch, method,
                                                   computed) -> None:  # fmt: skip
    det = load_detector(circle_run, device="cpu", progress=False)
    images = aekit.load_dataset("shapes", "test").images[:30]
    every = det.parts(images)  # all the parts, as every method once computed them
    want = method_scores(method, every, det.stats if method == "combined" else None)
    seen: set[str] = set()
    error_map, knn = aekit.anomaly.methods.error_map, aekit.anomaly.detector.knn_distance
    monkeypatch.setattr(aekit.anomaly.methods, "error_map",
                        lambda x, y, kind: seen.add(kind) or error_map(x, y, kind))  # fmt: skip
    monkeypatch.setattr(aekit.anomaly.detector, "knn_distance",
                        lambda *a, **k: seen.add("knn") or knn(*a, **k))  # fmt: skip
    got = aekit.score(circle_run, images=images, method=method, device="cpu")
    assert seen == computed
    assert [item["score"] for item in got["items"]] == want.tolist()  # the same numbers, exactly
