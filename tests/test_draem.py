"""``--arch draem``: synthetic anomalies pasted into training batches, a reconstructive and a
segmentation network trained together, and ``aekit score --method draem`` from the segmentation
(the default for such a run), its maps drawn and scored against the masks."""

from __future__ import annotations

import base64
import json
import shutil
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import aekit
from aekit.anomaly.methods import model_methods, segment_score, segment_window
from aekit.data.synthetic import finest_log2_cells, synthetic_anomalies
from aekit.models import create_model
from aekit.models.draem import focal_loss
from aekit.models.tiles import outputs, reach
from aekit.training.step import Objective, step
from formats import mvtec_run


def test_synthetic_anomalies_paste_inside_their_masks_into_about_half_the_images() -> None:
    x = torch.rand(64, 3, 32, 48) * 2 - 1  # a [-1, 1] model scale, not square
    out, masks = synthetic_anomalies(x, (-1.0, 1.0), torch.Generator().manual_seed(0))
    again, masks2 = synthetic_anomalies(x, (-1.0, 1.0), torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and torch.equal(masks, masks2)
    assert out.shape == x.shape and masks.shape == (64, 1, 32, 48)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    outside = (masks == 0).expand_as(x)
    assert torch.allclose(out[outside], x[outside], atol=1e-6)  # untouched outside the masks
    inside = (masks == 1).expand_as(x)
    assert (out[inside] - x[inside]).abs().mean() > 0.05  # a texture shows inside
    pasted = masks.flatten(1).any(1)
    assert 16 <= int(pasted.sum()) <= 40  # DRAEM trains on clean and pasted images alike
    assert out.min() >= -1 and out.max() <= 1


def test_the_focal_loss_is_the_cross_entropy_of_the_hard_pixels() -> None:
    logits = torch.randn(2, 1, 8, 8) * 3
    target = (torch.rand(2, 1, 8, 8) > 0.8).float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    assert torch.allclose(focal_loss(logits, target, gamma=0.0), bce)
    assert focal_loss(logits, target) < bce
    sure = (target * 2 - 1) * 20  # confident and right: almost nothing to learn
    assert focal_loss(sure, target) < 1e-12


def test_the_model_reconstructs_any_size_and_segments() -> None:
    torch.manual_seed(0)
    model = create_model(arch="draem", in_channels=1, image_size=32, base_channels=8)
    x = torch.rand(3, 1, 37, 50) * 2 - 1
    model.eval()
    out = model(x)
    assert torch.allclose(out.recon, x.clamp(-1, 1))  # starts as the identity
    assert out.terms == {} and out.code.shape == (3, model.config.latent_dim)
    with torch.no_grad():
        seg = model.segment(x)
    assert seg.shape == (3, 37, 50) and float(seg.min()) >= 0 and float(seg.max()) <= 1
    mask = torch.zeros(3, 1, 37, 50)
    assert set(model.train()(x, None, mask).terms) == {"focal"}


def test_a_training_step_pastes_anomalies_and_learns_their_masks() -> None:
    torch.manual_seed(0)
    model = create_model(arch="draem", in_channels=1, image_size=32, base_channels=8)
    obj = Objective("mse", anomalies=True)
    batch = torch.randint(40, 80, (8, 1, 32, 32), dtype=torch.uint8)
    out = step(model, batch, obj, torch.Generator().manual_seed(1), training=True)
    assert "focal" in out.terms and float(out.terms["focal"].detach()) > 0
    assert not torch.equal(out.inputs, out.clean)  # the model saw pasted anomalies
    plain = step(model, batch, obj, torch.Generator().manual_seed(1), False, noisy=False)
    assert plain.terms == {} and torch.equal(plain.inputs, plain.clean)
    probe = step(model, batch, obj, torch.Generator().manual_seed(1), training=False)
    assert (
        float(probe.loss.detach()) > 0
    )  # the guard's fixed batch: anomalies pasted, as in training


def test_segment_score_is_the_largest_window_mean() -> None:
    maps = torch.zeros(3, 48, 48)
    maps[1, 10:13, 10:13] = 1.0  # a 3x3 blob in a 5x5 window
    maps[2, 10:20, 10:20] = 1.0  # a large blob fills the window
    s = segment_score(maps, 5)
    assert s[0] == 0 and torch.isclose(s[1], torch.tensor(9 / 25)) and s[2] == 1


WINDOWS = [(32, 3, 5), (96, 4, 7), (128, 5, 5), (256, 6, 5), (512, 6, 9)]


@pytest.mark.parametrize(("side", "cells", "window"), WINDOWS)
def test_the_window_is_the_smallest_synthetic_anomaly(side: int, cells: int, window: int) -> None:
    assert finest_log2_cells(side) == cells
    model = create_model(arch="draem", in_channels=1, image_size=side, base_channels=8)
    assert segment_window(model) == window  # side // 2**cells, made odd


@pytest.fixture(scope="module")
def draem_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    flags = ("--arch", "draem", "--image-size", "32", "--epochs", "3", "--base-channels", "8")
    return mvtec_run(tmp_path_factory.mktemp("mvtec-draem"), *flags)


def test_score_uses_the_segmentation_and_measures_it_against_the_masks(
    cli, draem_run, tmp_path
) -> None:
    root, run = draem_run
    code, out, err = cli("score", str(run), "--data", f"folder:{root}", "--json",
                         "--out", str(tmp_path / "report"))  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["method"] == "draem"
    assert set(result["per_kind"]) == {"spot", "scratch"}
    assert 0 <= result["pixel_auroc"] <= 1 and 0 <= result["pro"] <= 1
    assert (tmp_path / "report" / "anomalous.png").is_file()
    for method in ("recon", "combined"):  # the reconstruction's methods still work
        code, out, err = cli("score", str(run), "--data", f"folder:{root}", "--json",
                             "--method", method)  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["method"] == method
    saved = json.loads((run / "anomaly.json").read_text())
    assert set(saved["thresholds"]) == set(model_methods(aekit.load(run)))
    assert "segment" in saved["heldout"] and "segment" in saved["map_scale"]


def test_method_draem_needs_a_draem_run(cli, draem_run, tmp_path) -> None:
    root, _ = draem_run
    run = tmp_path / "conv"
    flags = ("--image-size", "32", "--epochs", "1", "--base-channels", "8", "--latent-dim", "16")
    code, _, err = cli("train", "--data", f"folder:{root}", *flags, "--out", str(run))
    assert code == 0, err
    code, out, err = cli("score", str(run), "--data", f"folder:{root}", "--method", "draem")
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and "--arch draem" in err


def test_the_page_offers_draem_first_and_scores_with_it(draem_run) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from aekit.web.server import create_app

    root, run = draem_run
    client = TestClient(create_app(run))
    info = client.get("/api/info").json()
    assert info["anomaly_method"] == "draem" and "draem" in info["anomaly_methods"]
    photo = root / "test" / "spot" / "000.png"
    body = client.post("/api/anomaly", files={"image": ("a.png", photo.read_bytes())}).json()
    assert body["method"] == "draem" and body["map"] == "segmentation"
    expected = aekit.score(run, images=[photo], device="cpu")["items"][0]["score"]
    assert body["score"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_the_page_shows_a_gallery_item_s_mask(cli, draem_run, tmp_path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from aekit.web.server import create_app

    _, run = draem_run
    root = shutil.copytree(draem_run[0], tmp_path / "parts")  # a mask is taken away below
    store = tmp_path / "gallery"
    code, _, err = cli("embed", str(run), "--data", f"folder:{root}", "--split", "test",
                       "--out", str(store))  # fmt: skip
    assert code == 0, err
    client = TestClient(create_app(run, store, device="cpu"))
    items = aekit.Embeddings.load(store).items
    seen = set()
    for i, item in enumerate(items):
        body = client.post("/api/anomaly", data={"index": str(i)}).json()
        shown = np.asarray(Image.open(BytesIO(base64.b64decode(body["mask"].split(",")[1]))))
        mask = np.zeros((32, 32), bool)  # a good part's: all clear
        if item["class"] != "good":
            path = Path(item["path"])
            full = np.asarray(Image.open(root / "ground_truth" / path.parent.name
                                         / f"{path.stem}_mask.png"))  # fmt: skip
            resized = F.interpolate(torch.from_numpy(full > 127).float()[None, None],
                                    size=(32, 32), mode="nearest")  # fmt: skip
            mask = resized[0, 0].numpy() > 0.5
            assert mask.any()
        assert ((shown.reshape(32, 32, -1)[..., 0] > 127) == mask).all()
        seen.add(item["class"])
    assert seen == {"good", "spot", "scratch"}
    photo = root / "test" / "spot" / "000.png"  # an upload: no mask to show
    body = client.post("/api/anomaly", files={"image": ("a.png", photo.read_bytes())}).json()
    assert body["mask"] is None
    shutil.rmtree(root / "ground_truth" / "spot")  # a defect without its mask: none shown
    spot = next(i for i, item in enumerate(items) if item["class"] == "spot")
    assert client.post("/api/anomaly", data={"index": str(spot)}).json()["mask"] is None


def test_anomaly_source_textures_are_pasted(tmp_path) -> None:
    x = torch.zeros(32, 1, 16, 24)  # flat mid-grey on [-1, 1]
    stripes = torch.zeros((3, 1, 32, 48), dtype=torch.uint8)  # resized to 16x24 when used
    stripes[..., ::4] = 255

    def spread_inside(out: torch.Tensor, masks: torch.Tensor) -> float:
        """The largest spread of one image's pasted values."""
        return max(
            float(o[m.expand_as(o) == 1].std())
            for o, m in zip(out, masks, strict=True)
            if m.sum() > 8
        )

    own, own_masks = synthetic_anomalies(x, (-1.0, 1.0), torch.Generator().manual_seed(0))
    out, masks = synthetic_anomalies(x, (-1.0, 1.0), torch.Generator().manual_seed(0), stripes)
    assert spread_inside(own, own_masks) < 1e-5  # its own flat images: flat patches
    assert spread_inside(out, masks) > 0.1  # the stripes show


def test_anomaly_source_trains_and_is_kept_and_bad_ones_are_one_line(cli, draem_run, tmp_path):
    root, _ = draem_run
    textures = tmp_path / "textures" / "nested"
    textures.mkdir(parents=True)
    for i in range(3):
        stripes = np.zeros((20, 30, 3), np.uint8)
        stripes[:, i::3] = 255
        Image.fromarray(stripes).save(textures / f"t{i}.jpg")
    run = tmp_path / "run"
    flags = ("--arch", "draem", "--image-size", "32", "--epochs", "1", "--base-channels", "8")
    source = str(textures.parent)
    code, _, err = cli("train", "--data", f"folder:{root}", *flags, "--anomaly-source", source,
                       "--out", str(run))  # fmt: skip
    assert code == 0, err
    assert "3 images of" in err
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["anomaly_source"] == str(textures.parent.resolve())
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad, extra, said in (
        (str(empty), flags, "holds no images"),
        (str(tmp_path / "missing"), flags, "is not a folder"),
        (source, ("--image-size", "32", "--epochs", "1"), "it is for --arch draem"),
    ):
        out_dir = tmp_path / f"bad-{len(said)}"
        code, _, err = cli("train", "--data", f"folder:{root}", *extra, "--anomaly-source", bad,
                           "--out", str(out_dir))  # fmt: skip
        lines = err.strip().splitlines()  # a note on the MVTec layout, then one error line
        assert code != 0 and said in lines[-1] and sum("error" in x for x in lines) == 1, err
        assert not (out_dir / "model.safetensors").exists()


@pytest.fixture(scope="module")
def native_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    flags = ("--arch", "draem", "--patch-size", "32", "--epochs", "2", "--base-channels", "8")
    return mvtec_run(tmp_path_factory.mktemp("mvtec-native"), *flags)


def test_a_patch_run_scores_every_image_at_its_own_size(cli, native_run, tmp_path) -> None:
    root, run = native_run
    code, out, err = cli("score", str(run), "--data", f"folder:{root}", "--json",
                         "--out", str(tmp_path / "rep"), "--overlays", "all")  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    # held out: normal training photos (the test split has the defects); normal: good
    assert result["calibration"]["split"] == "train" and result["normal"] == ["good"]
    assert result["count"] == 14 and set(result["per_kind"]) == {"spot", "scratch"}
    assert 0 <= result["pixel_auroc"] <= 1 and result["pixel_images"] == 14
    for picture in (tmp_path / "rep" / "overlays").iterdir():  # image | heat | mask, own size
        name = picture.stem[5:]
        image = next(root.glob(f"test/*/{name}.png"))
        h, w = np.array(Image.open(image)).shape
        assert np.array(Image.open(picture)).shape == (h, 3 * w + 8, 3)
    by_file = aekit.score(run, images=[next(root.glob("test/spot/*.png"))])["items"][0]
    items = aekit.score(run, data=f"folder:{root}")["items"]
    same = next(r for r in items if r["item"] == by_file["item"])
    assert by_file["score"] == pytest.approx(same["score"], rel=1e-5, abs=1e-6)
    code, out, err = cli("score", str(run), "--data", "shapes")
    assert code != 0 and "at their own sizes" in err.strip().splitlines()[-1]


def test_a_patch_run_on_an_mvtec_folder_holds_out_normal_photos(native_run) -> None:
    from aekit.training.splits import load_photo_splits

    _, run = native_run
    train, held = load_photo_splits(aekit.training.runs.load_config(run).data)
    assert held.split == "train" and len(train) + len(held) == 24  # train/good alone


def test_the_page_scores_a_patch_run_at_the_uploads_own_size(native_run) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from aekit.web.server import create_app

    root, run = native_run
    client = TestClient(create_app(run))
    assert client.get("/api/info").json()["anomaly"] is True
    photo = next(root.glob("test/spot/*.png"))
    body = client.post("/api/anomaly", files={"image": ("a.png", photo.read_bytes())}).json()
    import base64
    import io

    heat = np.array(Image.open(io.BytesIO(base64.b64decode(body["heatmap"].split(",")[1]))))
    assert heat.shape[:2] == np.array(Image.open(photo)).shape  # the upload's own size
    expected = aekit.score(run, images=[photo], device="cpu")["items"][0]["score"]
    assert body["score"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("arch", ["draem", "unet"])
def test_outputs_in_tiles_equal_one_pass(arch: str) -> None:
    """Large images are scored in exact tiles: the reconstruction, the code (the mean of the
    bottleneck's cells, put together from the tiles' cores) and the segmentation of one pass."""
    torch.manual_seed(0)
    model = create_model(arch=arch, in_channels=1, image_size=32, base_channels=8).double().eval()
    tile = 4 * reach(model)
    x = torch.rand(2, 1, tile + 37, tile // 2 + 5, dtype=torch.double) * 2 - 1  # not stride-sized
    segments = arch == "draem"
    with torch.no_grad():
        whole = outputs(model, x, segments, tile=None)
        tiled = outputs(model, x, segments, tile=tile)
    assert tile < x.shape[-2]  # it was tiled
    for a, b in zip(whole, tiled, strict=True):
        if a is None:
            assert b is None and not segments
            continue
        assert a.shape == b.shape
        assert (a - b).abs().max() < 1e-9
    assert whole[1].shape == (2, model.config.latent_dim)  # (B, D) codes


def test_a_photo_larger_than_a_tile_is_encoded_in_tiles() -> None:
    from aekit.anomaly.detector import codes_each
    from aekit.models.tiles import DEFAULT_TILE
    from aekit.search.encoding import encode

    torch.manual_seed(0)
    model = create_model(arch="draem", in_channels=1, image_size=32, base_channels=8).eval()
    assert 4 * reach(model) <= DEFAULT_TILE  # tiles of the default size fit this model
    small = torch.randint(0, 256, (1, 40, 56), dtype=torch.uint8)
    large = torch.randint(0, 256, (1, DEFAULT_TILE + 70, 90), dtype=torch.uint8)
    codes = codes_each(model, [small, large])
    whole = np.concatenate([encode(model, small[None]), encode(model, large[None])])
    assert codes.shape == (2, model.config.latent_dim)
    assert np.abs(codes - whole).max() < 1e-4 * np.abs(whole).max()
