"""Embedding stores and the search commands, end to end through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aekit
from aekit.search.embed import Embeddings


@pytest.fixture
def store(cli, tiny_run: Path, tmp_path: Path) -> Path:
    code, out, err = cli("embed", tiny_run, "--data", "shapes", "--split", "test", "--out",
                         tmp_path / "emb")  # fmt: skip
    assert code == 0, err
    assert "1000 images" in out
    return tmp_path / "emb"


def brute(vectors: np.ndarray, q: int, metric: str = "l2") -> np.ndarray:
    v = vectors.astype(np.float64)
    if metric == "cosine":
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        d = 1 - v @ v[q]
    else:
        d = np.linalg.norm(v - v[q], axis=1)
    d[q] = np.nan
    return d


def test_store_files(store: Path, tiny_run: Path) -> None:
    emb = Embeddings.load(store)
    assert isinstance(emb.vectors, np.memmap)
    assert emb.vectors.shape == (1000, 16) and emb.vectors.dtype == np.float32
    m = json.loads((store / "manifest.json").read_text())
    assert m["count"] == 1000 and m["dim"] == 16 and m["source"] == "shapes"
    assert (
        m["split"] == "test" and m["run"] == str(tiny_run.resolve()) and len(m["model_hash"]) == 64
    )
    first = json.loads((store / "items.jsonl").read_text().splitlines()[0])
    ds = aekit.load_dataset("shapes", "test")
    assert first == {"index": 0, "label": int(ds.labels[0]), "class": ds.classes[int(ds.labels[0])],
                     "source": "shapes", "split": "test", "item": 0, "path": None}  # fmt: skip
    model = aekit.load(tiny_run)
    want = model.encode(ds.images[:4].float() / 127.5 - 1).detach().numpy()
    np.testing.assert_allclose(emb.vectors[:4], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_search_by_index_matches_brute_force(cli, store: Path, metric: str) -> None:
    vectors = np.load(store / "embeddings.npy")
    d = brute(vectors, 5, metric)
    for flag, order in (
        ([], np.argsort(np.nan_to_num(d, nan=np.inf))),
        (["--farthest"], np.argsort(-np.nan_to_num(d, nan=-np.inf))),
    ):
        code, out, err = cli("search", store, "--index", "5", "--k", "7", "--metric", metric,
                             "--json", *flag)  # fmt: skip
        assert code == 0, err
        rows = json.loads(out)
        assert [r["rank"] for r in rows] == list(range(1, 8))
        got = [r["index"] for r in rows]  # near-ties may swap places: compare true distances
        np.testing.assert_allclose(d[got], d[order[:7]], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose([r["distance"] for r in rows], d[got], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose([r["distance"] for r in rows], d[order[:7]], rtol=1e-4,
                                   atol=1e-5)  # fmt: skip
        assert 5 not in [r["index"] for r in rows]


def test_search_both_picture_image_and_query_folder(cli, store, tiny_run, tmp_path) -> None:
    code, out, err = cli("search", store, "--index", "0", "--both", "--k", "5", "--json",
                         "--out", tmp_path / "n.png")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out.splitlines()[0])
    assert len(doc["nearest"]) == 5 and len(doc["farthest"]) == 5
    assert doc["nearest"][0]["distance"] <= doc["farthest"][-1]["distance"]
    assert Image.open(tmp_path / "n.png").size[0] > 300
    ds = aekit.load_dataset("shapes", "test")
    qdir = tmp_path / "q"
    qdir.mkdir()
    for i in (3, 4):
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(qdir / f"{i}.png")
    code, out, err = cli("search", store, "--queries", qdir, "--k", "3", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    # a stored image given as a file finds itself first, at distance ~0
    assert [ln[0]["index"] for ln in lines] == [3, 4]
    assert all(ln[0]["distance"] < 1e-3 for ln in lines)
    gray = tmp_path / "gray.png"
    Image.fromarray(ds.images[3].float().mean(0).byte().numpy()).resize((64, 64)).save(gray)
    code, out, err = cli("search", store, "--image", gray, "--k", "2")
    assert code == 0 and "gray.png" in err and "nearest 2" in out


def test_append_same_model_and_refuse_another(cli, store, tiny_run, tmp_path) -> None:
    code, _, err = cli("embed", tiny_run, "--split", "val", "--out", store, "--append")
    assert code == 0, err
    emb = Embeddings.load(store)
    assert len(emb) == 2000 and emb.items[1500]["split"] == "val"
    assert emb.items[1500]["index"] == 1500 and emb.items[1500]["item"] == 500
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    w = other / "model.safetensors"
    aekit.train(tmp_path / "o2", data="shapes", epochs=1, limit=64, base_channels=8,
                latent_dim=16, seed=3, progress=False)  # fmt: skip
    shutil.copy(tmp_path / "o2" / "model.safetensors", w)
    vectors = store / json.loads((store / "manifest.json").read_text())["files"]["vectors"]
    before = vectors.read_bytes()
    code, _, err = cli("embed", other, "--split", "val", "--out", store, "--append")
    assert code == 2 and "another model" in err
    assert vectors.read_bytes() == before


def test_flat_index_gives_exact_results(cli, store: Path) -> None:
    code, exact, _ = cli("search", store, "--index", "9", "--k", "10", "--json")
    code, out, err = cli("index", store, "--kind", "flat")
    assert code == 0, err
    # a flat index is exact up to float rounding: near-tied neighbours may swap in or out
    info = json.loads((store / "index.json").read_text())
    assert info["kind"] == "flat" and info["recall@10"] >= 0.98
    assert f"recall@10 {info['recall@10']:.3f}" in out
    code, via_index, _ = cli("search", store, "--index", "9", "--k", "10", "--json")
    got, want = json.loads(via_index), json.loads(exact)
    assert 9 not in [r["index"] for r in got]
    np.testing.assert_allclose([r["distance"] for r in got], [r["distance"] for r in want],
                               rtol=1e-4, atol=1e-4)  # fmt: skip


def test_search_eval_json(cli, store: Path) -> None:
    code, out, err = cli("search-eval", store, "--k", "5", "--queries", "200", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["k"] == 5 and doc["queries"] == 200
    assert set(doc["results"]) == {"autoencoder", "pixels", "pca"}
    for r in doc["results"].values():
        assert 0 <= r["map"] <= 1 and 0 <= r["precision"] <= 1


def test_python_api_search(tiny_run: Path, tmp_path: Path) -> None:
    model = aekit.load(tiny_run)
    emb = aekit.embed(model, aekit.load_dataset("shapes", "test").subset(slice(0, 300)))
    d, i = emb.search(emb.vectors[:4], k=3)
    assert d.shape == (4, 3) and i.shape == (4, 3)
    assert (i[:, 0] == np.arange(4)).all() and np.allclose(d[:, 0], 0, atol=1e-3)
    emb.save(tmp_path / "s")
    again = aekit.Embeddings.load(tmp_path / "s")
    assert np.array_equal(np.asarray(again.vectors), emb.vectors)


@pytest.mark.parametrize(("args", "message"), [
    (["search", "{store}", "--index", "0", "--k", "5000"], "larger than the store"),
    (["search", "{store}", "--index", "1000"], "out of range"),
    (["search", "{store}", "--index", "-1"], "out of range"),
    (["search", "{missing}", "--index", "0"], "not an embedding store"),
    (["search", "{store}", "--queries", "{missing}"], "does not exist"),
    (["search", "{store}", "--image", "{text}"], "text.png"),
    (["search-eval", "{store}", "--baselines", "sift"], "sift"),
    (["embed", "{run}", "--out", "{store}"], "already holds a store"),
    (["embed", "{missing}", "--out", "{new}"], "does not exist"),
])  # fmt: skip
def test_bad_input(cli, store, tiny_run, tmp_path, args, message) -> None:
    (tmp_path / "text.png").write_text("not an image")
    paths = {
        "store": store,
        "run": tiny_run,
        "missing": tmp_path / "missing",
        "text": tmp_path / "text.png",
        "new": tmp_path / "new",
    }
    code, _, err = cli(*(a.format(**paths) for a in args))
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


def test_damaged_stores_are_refused(cli, store: Path) -> None:
    data = (store / "embeddings.npy").read_bytes()
    (store / "embeddings.npy").write_bytes(data[: len(data) // 2])
    code, _, err = cli("search", store, "--index", "0")
    assert code == 2 and "damaged" in err
    (store / "embeddings.npy").write_bytes(data)
    m = json.loads((store / "manifest.json").read_text())
    (store / "manifest.json").write_text(json.dumps({**m, "count": 999}))
    code, _, err = cli("search", store, "--index", "0")
    assert code == 2 and "inconsistent" in err
