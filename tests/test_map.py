"""``aekit map``: a store's vectors in 2-D, saved beside them, drawn, and measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aekit
from aekit.search.stores import read_map


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("map")
    run = aekit.train(root / "run", "shapes", epochs=1, limit=256, base_channels=8, latent_dim=16,
                      device="cpu", amp=False, progress=False)  # fmt: skip
    emb = aekit.embed(aekit.load(run), aekit.load_dataset("shapes", "test", limit=300))
    return emb.save(root / "emb")


def test_a_pca_map_is_saved_drawn_and_measured(store: Path, cli, tmp_path: Path) -> None:
    code, out, err = cli("map", store, "--thumbnails", 5, "--out", tmp_path / "m.png", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert (got["count"], got["method"], got["fitted_on"]) == (300, "pca", 300)
    emb = aekit.Embeddings.load(store)
    points, info = read_map(store, emb.manifest)
    assert points.shape == (300, 2) and info["method"] == "pca"
    centred = np.asarray(emb.vectors) - np.asarray(emb.vectors).mean(axis=0)
    top = np.linalg.svd(centred, full_matrices=False)[2][:2]  # the first two principal axes
    assert np.allclose(np.abs(points), np.abs(centred @ top.T), atol=1e-3)
    agree = got["knn_label_agreement"]
    assert agree["k"] == 10 and 0 <= agree["map"] <= 1 and 0 <= agree["full"] <= 1
    labels = emb.labels()
    chance = sum((labels == c).mean() ** 2 for c in np.unique(labels))
    assert agree["full"] > chance  # the code knows something of the shapes
    with Image.open(tmp_path / "m.png") as picture:
        assert picture.size[0] > 500 and picture.size[1] > 500


def test_a_new_generation_drops_the_old_map_and_fit_samples(store: Path, tmp_path: Path) -> None:
    emb = aekit.Embeddings.load(store)
    done = aekit.map_embeddings(emb, fit=100)
    assert done.fitted_on == 100 and done.points.shape == (300, 2)
    copy = emb.save(tmp_path / "copy")  # a new store: no map yet
    assert read_map(copy, aekit.Embeddings.load(copy).manifest) is None
    aekit.map_embeddings(copy)
    again = aekit.Embeddings.load(copy)
    assert read_map(copy, again.manifest) is not None
    again.save(copy)  # the next generation: its vectors may differ, the map goes
    assert not (copy / "map.npy").exists()


def test_tsne_and_umap(store: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = cli("map", store, "--method", "tsne", "--out", tmp_path / "t.png")
    assert code == 0, err
    code, _, err = cli("map", store, "--method", "tsne", "--fit", 100, "--out", tmp_path / "x.png")
    assert code != 0 and err.strip() == (
        "aekit map: error: t-SNE places only the points it is fitted on, and the store holds 300 "
        "(more than --fit 100): raise --fit to 300, or use --method pca or umap"
    )
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    code, _, err = cli("map", store, "--method", "umap", "--out", tmp_path / "u.png")
    assert code != 0 and "needs umap-learn, which is not installed" in err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "u.png").exists()


def test_umap_places_the_rest_of_a_store(store: Path) -> None:
    pytest.importorskip("umap")
    done = aekit.map_embeddings(store, method="umap", fit=200, save=False)
    assert done.fitted_on == 200 and np.isfinite(done.points).all()
    assert done.points.shape == (300, 2)


def test_map_mistakes_are_one_line(store: Path, cli, tmp_path: Path) -> None:
    for args, words in [
        (["--method", "mds"], "unknown --method 'mds': use one of pca, umap, tsne"),
        (
            ["--thumbnails", 301],
            "--thumbnails 301: the store holds 300 images; draw between 0 and 300",
        ),
    ]:
        code, _, err = cli("map", store, "--out", tmp_path / "m.png", *args)
        assert code != 0 and err.strip() == f"aekit map: error: {words}"
    code, _, err = cli("map", tmp_path / "none", "--out", tmp_path / "m.png")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "m.png").exists()


def saturated(picture: Path) -> np.ndarray:
    """The coloured pixels (RGB) of a picture: points and legend, not the black and grey."""
    with Image.open(picture) as img:
        rgb = np.asarray(img.convert("RGB")).reshape(-1, 3).astype(int)
    return rgb[rgb.max(axis=1) - rgb.min(axis=1) > 60]


def test_a_store_of_one_label_is_one_colour_without_a_legend(
    store: Path, cli, tmp_path: Path
) -> None:
    ds = aekit.load_dataset("shapes", "test", limit=300)
    one = ds.subset(np.flatnonzero(ds.labels.numpy() == 0))
    run = aekit.load(store.parent / "run")
    aekit.embed(run, one).save(tmp_path / "one")
    for emb, picture in [(store, tmp_path / "many.png"), (tmp_path / "one", tmp_path / "one.png")]:
        code, _, err = cli("map", emb, "--out", picture)
        assert code == 0, err
    many, single = saturated(tmp_path / "many.png"), saturated(tmp_path / "one.png")
    orange = (many[:, 0] > 200) & (many[:, 2] < 120)  # tab:orange, the second label's colour
    assert orange.sum() > 50
    blue = (single[:, 2] > single[:, 0] + 60) & (single[:, 2] > single[:, 1])  # tab:blue only
    assert len(single) > 200 and blue.all()


def test_a_damaged_or_empty_store_is_one_line(store: Path, cli, tmp_path: Path) -> None:
    import shutil

    broken = shutil.copytree(store, tmp_path / "broken")
    kept = {f.name: f.read_bytes() for f in broken.iterdir() if f.name != "embeddings.npy"}
    (broken / "embeddings.npy").write_bytes(b"\x93NUMPY broken")
    code, _, err = cli("map", broken, "--out", tmp_path / "b.png")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "damaged" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli("map", tmp_path / "empty", "--out", tmp_path / "e.png")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "e.png").exists()
    assert {f.name: f.read_bytes() for f in broken.iterdir() if f.name in kept} == kept


@pytest.mark.parametrize("size", [3, 300])
def test_umap_maps_a_store_of_three_or_fits_on_three(store: Path, cli, tmp_path: Path,
                                                     size: int) -> None:  # fmt: skip
    pytest.importorskip("umap")
    emb = store
    if size == 3:
        run = aekit.load(store.parent / "run")
        emb = aekit.embed(run, aekit.load_dataset("shapes", "test", limit=3)).save(tmp_path / "e")
    code, out, err = cli("map", emb, "--method", "umap", "--fit", 3, "--out", tmp_path / "u.png",
                         "--json")  # fmt: skip
    assert code == 0 and "Traceback" not in err, err
    got = json.loads(out)
    assert (got["count"], got["fitted_on"]) == (size, 3)
    points, _ = read_map(emb, aekit.Embeddings.load(emb).manifest)
    assert points.shape == (size, 2) and np.isfinite(points).all()
