"""Embedding stores under attack: kill -9 mid-append, damaged files, bad index parameters,
hostile query files, NaN vectors, duplicate appends and stores moved with their run.

Every user mistake is one line on stderr and exit 2; nothing is half-written or lost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import aekit
from aekit import AekitError
from aekit.cli import main
from aekit.search.embed import Embeddings

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def pristine(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shapes test split (1000 items) embedded by the CLI; tests change copies of it."""
    out = tmp_path_factory.mktemp("pristine") / "emb"
    assert main(["embed", str(tiny_run), "--split", "test", "--out", str(out)]) == 0
    return out


@pytest.fixture
def store(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "emb"))


def one_line_error(code: int, err: str, *parts: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, err


def store_files(store: Path) -> list[str]:
    """The files the store's manifest names (what a tidy store folder holds)."""
    m = json.loads((store / "manifest.json").read_text())
    return sorted([m["files"]["vectors"], m["files"]["items"], "manifest.json"])


def vectors_file(store: Path) -> Path:
    m = json.loads((store / "manifest.json").read_text())
    return store / m.get("files", {}).get("vectors", "embeddings.npy")


def items_file(store: Path) -> Path:
    m = json.loads((store / "manifest.json").read_text())
    return store / m.get("files", {}).get("items", "items.jsonl")


def _without(*keys: str):
    return lambda m: {k: v for k, v in m.items() if k not in keys}


def edit_manifest(store: Path, change) -> None:
    m = json.loads((store / "manifest.json").read_text())
    (store / "manifest.json").write_text(json.dumps(change(m)))


def stored_png(path: Path, i: int) -> Path:
    ds = aekit.load_dataset("shapes", "test")
    Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(path)
    return path


# --- 1. kill -9 during an append ------------------------------------------------------------

# The child runs the CLI with os.replace hooked: it kills itself (SIGKILL, nothing is cleaned up)
# at the chosen moment of the save. "items": the vectors are in place and the items are still a
# temp file (the reported case); "manifest": every data file is written, the manifest is not;
# "after": the manifest is replaced, the old generation not yet removed.
CHILD = """
import os, sys
sys.path.insert(0, sys.argv[1])
moment = sys.argv[2]
real = os.replace

def replace(src, dst, *args, **kwargs):
    name = os.path.basename(dst)
    if moment == "items" and name.startswith("items"):
        os.kill(os.getpid(), 9)
    if moment == "manifest" and name == "manifest.json":
        os.kill(os.getpid(), 9)
    real(src, dst, *args, **kwargs)
    if moment == "after" and name == "manifest.json":
        os.kill(os.getpid(), 9)

os.replace = replace
from aekit.cli import main
main(sys.argv[3:])
"""


@pytest.mark.parametrize("moment", ["items", "manifest", "after"])
def test_kill_9_during_append_never_loses_the_store(cli, store, tiny_run, moment) -> None:
    before = np.array(Embeddings.load(store).vectors)
    code, _, err = cli("index", store, "--kind", "flat")
    assert code == 0, err
    _, found = Embeddings.load(store).search(before[:1], k=3)
    args = ["embed", str(tiny_run), "--split", "val", "--out", str(store), "--append"]
    child = subprocess.run([sys.executable, "-c", CHILD, str(SRC), moment, *args],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert child.returncode == -9, child.stderr
    emb = Embeddings.load(store)
    if moment == "after":  # the manifest was replaced: the append is complete
        assert len(emb) == 2000 and np.array_equal(emb.vectors[:1000], before)
        code, _, err = cli("search", store, "--index", "0")  # the old index is not used
        one_line_error(code, err, "another store", "aekit index")
        code, _, err = cli(*args)
        one_line_error(code, err, "already")  # val is in the store now
        code, _, err = cli("index", store)  # opening the store for writing tidies it
        assert code == 0, err
        assert sorted(p.name for p in store.iterdir()) == sorted(
            [*store_files(store), "index.faiss", "index.json"]
        )
        return
    assert len(emb) == 1000 and np.array_equal(np.asarray(emb.vectors), before)
    assert emb.items[999]["split"] == "test"
    assert emb.index_info() is not None  # the old store's index survives, and answers
    assert np.array_equal(emb.search(before[:1], k=3)[1], found)
    code, _, err = cli(*args)  # the append can simply be run again
    assert code == 0, err
    emb = Embeddings.load(store)
    assert len(emb) == 2000 and emb.items[1999]["split"] == "val"
    assert np.array_equal(emb.vectors[:1000], before)
    assert sorted(p.name for p in store.iterdir()) == store_files(store)  # no temp, no orphan


def test_stores_of_the_old_layout_load_and_append(cli, store, tiny_run) -> None:
    edit_manifest(store, _without("files", "run_relative"))
    assert sorted(p.name for p in store.iterdir()) == [
        "embeddings.npy", "items.jsonl", "manifest.json"]  # fmt: skip
    assert len(Embeddings.load(store)) == 1000
    code, _, err = cli("embed", tiny_run, "--split", "val", "--out", store, "--append")
    assert code == 0, err
    assert len(Embeddings.load(store)) == 2000
    assert sorted(p.name for p in store.iterdir()) == store_files(store)
    assert "embeddings.npy" not in store_files(store)  # the old generation is gone


# --- 15. damaged stores are refused when opened -----------------------------------------------


def _zero_vectors(store: Path) -> None:
    vectors_file(store).write_bytes(b"")


def _items_line(store: Path) -> None:
    path = items_file(store)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(["5", *lines[1:]]) + "\n")


def _first_item(**change):
    def damage(store: Path) -> None:
        path = items_file(store)
        lines = path.read_text().splitlines()
        path.write_text("\n".join([json.dumps({**json.loads(lines[0]), **change}), *lines[1:]]))

    return damage


def _nan_row(store: Path) -> None:
    v = np.load(vectors_file(store))
    v[3] = np.nan
    np.save(vectors_file(store), v)


DAMAGE = {
    "zero-byte vectors": (_zero_vectors, "damaged"),
    "manifest is a list": (lambda s: (s / "manifest.json").write_text("[]"), "manifest.json"),
    "items line is a number": (_items_line, "line 1"),
    "manifest without parts": (lambda s: edit_manifest(s, _without("parts")), "parts"),
    "item position out of range": (_first_item(item=5000), "5000"),
    "item source is a list": (_first_item(source=["shapes"]), "line 1"),
    "labels of two kinds": (_first_item(label=[0, 1]), "mix"),
    "NaN row": (_nan_row, "NaN"),
    "fingerprint is a number": (
        lambda s: edit_manifest(s, lambda m: {**m, "parts": [{**m["parts"][0], "fingerprint": 5}]}),
        "fingerprint",
    ),
    "id is a list": (lambda s: edit_manifest(s, lambda m: {**m, "id": [1, 2]}), "id"),
    "random bytes as vectors": (
        lambda s: vectors_file(s).write_bytes(bytes(range(256)) * 8),
        "embeddings.npy is not a .npy array",
    ),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_stores_are_one_line_errors(cli, store, case) -> None:
    damage, message = DAMAGE[case]
    damage(store)
    code, _, err = cli("search", store, "--index", "0", "--json")
    one_line_error(code, err, message)
    assert "pickle" not in err
    with pytest.raises(AekitError, match=message):
        Embeddings.load(store)


@pytest.mark.parametrize("case", ["manifest without parts", "item position out of range"])
def test_a_damaged_gallery_is_refused_at_start(store, tiny_run, case) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from aekit.web.server import create_app

    client = TestClient(create_app(tiny_run, store, device="cpu"))
    assert client.get("/api/gallery/0/image").status_code == 200
    damage, message = DAMAGE[case]
    damage(store)
    with pytest.raises(AekitError, match=message):
        create_app(tiny_run, store, device="cpu")


def test_a_gallery_whose_dataset_shrank_is_refused_at_start(store, tiny_run, tmp_path) -> None:
    pytest.importorskip("fastapi")
    from aekit.web.server import create_app

    ds = aekit.load_dataset("shapes", "test")
    npz = tmp_path / "few.npz"
    np.savez(npz, x_test=ds.images[:10].permute(0, 2, 3, 1).numpy())
    source = f"npz:{npz}"
    emb = aekit.embed(aekit.load(tiny_run), aekit.load_dataset(source, "test"), run=tiny_run)
    emb.save(tmp_path / "small")
    np.savez(npz, x_test=ds.images[:4].permute(0, 2, 3, 1).numpy())  # 6 items have no image now
    with pytest.raises(AekitError, match="4 images"):
        create_app(tiny_run, tmp_path / "small", device="cpu")


def test_a_dataset_replaced_by_one_of_the_same_size_is_noticed(cli, tiny_run, tmp_path) -> None:
    ds = aekit.load_dataset("shapes", "test")
    npz = tmp_path / "pics.npz"
    np.savez(npz, x_test=ds.images[:50].permute(0, 2, 3, 1).numpy(), y_test=ds.labels[:50])
    emb = tmp_path / "emb"
    code, _, err = cli("embed", tiny_run, "--data", f"npz:{npz}", "--out", emb)
    assert code == 0, err
    code, _, err = cli("search-eval", emb, "--baselines", "pixels", "--json")
    assert code == 0, err
    np.savez(
        npz, x_test=ds.images[50:100].permute(0, 2, 3, 1).numpy(), y_test=ds.labels[:50]
    )  # 50 other images, the same labels
    code, out, err = cli("search-eval", emb, "--baselines", "pixels", "--json")
    one_line_error(code, err, "no longer the ones embedded", "embed it again")
    assert out == ""
    code, out, err = cli("search", emb, "--index", "0", "--out", tmp_path / "r.png")
    one_line_error(code, err, "no longer the ones embedded")
    assert not (tmp_path / "r.png").exists() and out == ""  # refused before any result
    code, _, err = cli("search", emb, "--index", "0")  # the vectors alone are still searchable
    assert code == 0, err


def test_a_damaged_store_says_how_to_start_over(cli, store, tiny_run) -> None:
    (store / "manifest.json").write_text("{")
    for args in (["embed", tiny_run, "--split", "val", "--out", store],
                 ["embed", tiny_run, "--split", "val", "--out", store, "--append"],
                 ["search", store, "--index", "0"]):  # fmt: skip
        code, _, err = cli(*args)
        one_line_error(code, err, "damaged", "delete the store folder")
    shutil.rmtree(store)  # what the message says to do
    code, _, err = cli("embed", tiny_run, "--split", "val", "--out", store)
    assert code == 0, err


# --- 16, 17. damaged or foreign index files ---------------------------------------------------


@pytest.mark.parametrize("text", ["{not json", "[]", '{"kind": "hnsw"}', '{"kind": "ivf", '
                                  '"metric": "l2", "nprobe": -4}'])  # fmt: skip
def test_a_damaged_index_json_is_a_one_line_error(cli, store, text) -> None:
    code, _, err = cli("index", store, "--kind", "flat")
    assert code == 0, err
    (store / "index.json").write_text(text)
    code, _, err = cli("search", store, "--index", "0")
    one_line_error(code, err, "index.json")
    code, _, err = cli("search", store, "--index", "0", "--exact")  # exact needs no index
    assert code == 0, err


def small_store_with_the_index_of(cli, store, tiny_run, tmp_path) -> Path:
    """A 300-item store holding a copy of the index built for the 1000-item ``store``."""
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, 300))
    small = tmp_path / "small"
    aekit.embed(aekit.load(tiny_run), ds, run=tiny_run).save(small)
    code, _, err = cli("index", store, "--kind", "flat")
    assert code == 0, err
    for name in ("index.faiss", "index.json"):
        shutil.copy(store / name, small / name)
    return small


def test_an_index_of_another_store_is_refused(cli, store, tiny_run, tmp_path) -> None:
    small = small_store_with_the_index_of(cli, store, tiny_run, tmp_path)
    code, _, err = cli("search", small, "--index", "0", "--json")
    one_line_error(code, err, "another store", "aekit index")
    code, out, err = cli("search", small, "--index", "0", "--json", "--exact")
    assert code == 0 and 0 not in [r["index"] for r in json.loads(out)], err


def test_an_index_of_a_store_of_the_same_size_is_refused(cli, store, pristine, tmp_path) -> None:
    twin = Path(shutil.copytree(pristine, tmp_path / "twin"))
    vectors = vectors_file(twin)
    np.save(vectors, np.load(vectors)[::-1].copy())  # same count and dim, other rows
    edit_manifest(twin, lambda m: {**m, "id": "f" * 32})
    code, _, err = cli("index", twin, "--kind", "flat")
    assert code == 0, err
    for name in ("index.faiss", "index.json"):
        shutil.copy(twin / name, store / name)
    code, _, err = cli("search", store, "--index", "0", "--json")
    one_line_error(code, err, "another store")


def test_an_old_index_without_store_id_is_checked_by_its_count(cli, store, tiny_run,
                                                               tmp_path) -> None:  # fmt: skip
    small = small_store_with_the_index_of(cli, store, tiny_run, tmp_path)
    for folder in (store, small):  # both as made before stores had ids
        edit_manifest(folder, _without("id"))
        info = json.loads((folder / "index.json").read_text())
        (folder / "index.json").write_text(json.dumps(_without("store")(info)))
    code, _, err = cli("search", small, "--index", "0", "--json")
    one_line_error(code, err, "index.faiss", "1000", "300")


def test_index_json_without_index_faiss_says_to_run_aekit_index(cli, store) -> None:
    code, _, err = cli("index", store, "--kind", "flat")
    assert code == 0, err
    (store / "index.faiss").unlink()
    code, _, err = cli("search", store, "--index", "0")
    one_line_error(code, err, "index.faiss is missing", f"aekit index {store}")
    assert "build_index" not in err


# --- 18. index parameters are checked before faiss sees them --------------------------------

BAD_INDEX = [
    (["--kind", "hnsw", "--m", "0"], "m=0"),
    (["--kind", "hnsw", "--m", "-1"], "m=-1"),
    (["--kind", "hnsw", "--m", "1"], "m=1"),
    (["--kind", "hnsw", "--m", "100000"], "m=100000"),
    (["--kind", "hnsw", "--ef-search", "0"], "ef_search=0"),
    (["--kind", "hnsw", "--ef-construction", "0"], "ef_construction=0"),
    (["--kind", "hnsw", "--ef-construction", "-5"], "ef_construction=-5"),
    (["--kind", "ivf", "--nlist", "0"], "nlist=0"),
    (["--kind", "ivf", "--nlist", "-2"], "nlist=-2"),
    (["--kind", "ivf", "--nlist", "1001"], "nlist=1001"),
    (["--kind", "ivf", "--nprobe", "0"], "nprobe=0"),
    (["--kind", "ivf", "--nprobe", "-1"], "nprobe=-1"),
    (["--kind", "ivf", "--nlist", str(2**40)], "nlist="),
    (["--kind", "hnsw", "--ef-search", str(2**70)], "ef_search="),
    (["--kind", "hnsw", "--ef-construction", "1001"], "ef_construction=1001"),
    (["--kind", "ivf", "--nprobe", "1001"], "nprobe=1001"),
    (["--k", "0"], "--k 0"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INDEX)
def test_bad_index_parameters_are_one_line_errors(cli, store, args, message) -> None:
    code, _, err = cli("index", store, *args)
    one_line_error(code, err, message)
    assert not (store / "index.faiss").exists() and not (store / "index.json").exists()


# --- 19. hostile --queries files ----------------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    (b"", "no image paths or stored indices"),
    (b"\n  \n", "no image paths or stored indices"),
    (bytes(range(256)) * 4, "not a text file"),
    (b"3\x00\n", "not a text file"),
    ("²\n".encode(), "²"),
    (b"-1\n", "out of range"),
])  # fmt: skip
def test_hostile_query_files_are_one_line_errors(cli, store, tmp_path, content, message) -> None:
    queries = tmp_path / "queries.txt"
    queries.write_bytes(content)
    code, _, err = cli("search", store, "--queries", queries)
    one_line_error(code, err, message)


# --- 20. data the run cannot encode -------------------------------------------------------------


def test_embedding_1_channel_data_with_a_3_channel_run_says_so(cli, tiny_run, tmp_path) -> None:
    npz = tmp_path / "gray.npz"
    np.savez(npz, x_test=np.zeros((10, 32, 32), np.uint8))
    code, _, err = cli("embed", tiny_run, "--data", f"npz:{npz}", "--out", tmp_path / "new")
    one_line_error(code, err, "1x32x32", "3x32x32")
    assert not (tmp_path / "new" / "manifest.json").exists()
    _, _, eval_err = cli("eval", tiny_run, "--data", f"npz:{npz}", "--split", "test")
    assert eval_err.split("error: ", 1)[1] == err.split("error: ", 1)[1]  # one shared check


# --- non-finite vectors and JSON ------------------------------------------------------------


def test_a_model_that_yields_nan_codes_writes_no_store(cli, tiny_run, tmp_path) -> None:
    model = aekit.load(tiny_run)
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.fill_(float("nan"))
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, 20))
    with pytest.raises(AekitError, match="NaN"):
        aekit.embed(model, ds)


def test_non_finite_queries_are_refused(store) -> None:
    emb = Embeddings.load(store)
    for bad in (np.nan, np.inf):
        with pytest.raises(AekitError, match="NaN or infinite"):
            emb.search(np.full(emb.dim, bad, np.float32), k=3)


def test_distances_that_overflow_are_an_error_not_infinity_in_json(cli, store) -> None:
    v = np.load(vectors_file(store))
    # distinct huge vectors (identical ones are at an exact 0, which faiss computes as such)
    np.save(vectors_file(store), (v / np.abs(v).max() * np.float32(1e30)).astype(np.float32))
    code, out, err = cli("search", store, "--index", "0", "--json")
    one_line_error(code, err, "overflow")
    assert out == ""


# --- appending the same data twice ---------------------------------------------------------


def test_appending_the_same_split_twice_is_refused(cli, store, tiny_run) -> None:
    before = vectors_file(store).read_bytes()
    code, _, err = cli("embed", tiny_run, "--split", "test", "--out", store, "--append")
    one_line_error(code, err, "already", "shapes [test]")
    assert len(Embeddings.load(store)) == 1000 and vectors_file(store).read_bytes() == before


@pytest.mark.parametrize("extra", [
    ["--image-size", "32"],  # the native size, spelled out
    ["--data", "SHAPES"],
    ["--data-dir", "elsewhere"],
])  # fmt: skip
def test_the_same_split_spelled_otherwise_is_still_refused(cli, store, tiny_run, tmp_path,
                                                            extra) -> None:  # fmt: skip
    extra = [str(tmp_path / e) if e == "elsewhere" else e for e in extra]
    code, _, err = cli("embed", tiny_run, "--split", "test", "--out", store, "--append", *extra)
    one_line_error(code, err, "already")
    assert len(Embeddings.load(store)) == 1000


def test_a_folder_named_by_another_path_is_the_same_data(cli, tiny_run, tmp_path,
                                                         monkeypatch) -> None:  # fmt: skip
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, 20))
    pics = tmp_path / "pics" / "train"
    pics.mkdir(parents=True)
    for i in range(len(ds)):
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(pics / f"{i}.png")
    (tmp_path / "link").symlink_to(tmp_path / "pics")
    emb = tmp_path / "emb"
    code, _, err = cli("embed", tiny_run, "--data", f"folder:{tmp_path / 'pics'}", "--split",
                       "train", "--out", emb)  # fmt: skip
    assert code == 0, err
    monkeypatch.chdir(tmp_path)
    for spelling in ("folder:pics", "folder:link", "folder:./pics/"):
        code, _, err = cli("embed", tiny_run, "--data", spelling, "--split", "train", "--out",
                           emb, "--append")  # fmt: skip
        one_line_error(code, err, "already")
    assert len(Embeddings.load(emb)) == 20


# --- a run and its store moved together (the demo's case) ---------------------------------


def test_a_store_and_its_run_moved_together_still_search_by_image(cli, tiny_run, tmp_path) -> None:
    project = tmp_path / "project"
    shutil.copytree(tiny_run, project / "plain")
    code, _, err = cli("embed", project / "plain", "--split", "test", "--out",
                       project / "embeddings")  # fmt: skip
    assert code == 0, err
    moved = tmp_path / "moved"
    project.rename(moved)
    query = stored_png(tmp_path / "q.png", 5)
    code, out, err = cli("search", moved / "embeddings", "--image", query, "--k", "3", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["index"] == 5
    assert Embeddings.load(moved / "embeddings").manifest["run"] == str(moved / "plain")
    weights = moved / "plain" / "model.safetensors"
    state = {k: v + 0.01 for k, v in load_file(weights).items()}
    save_file(state, weights)  # the run trained further: its codes are another latent space
    code, _, err = cli("search", moved / "embeddings", "--image", query)
    one_line_error(code, err, "other weights")
    shutil.rmtree(moved / "plain")
    code, _, err = cli("search", moved / "embeddings", "--image", query)
    one_line_error(code, err, "run is gone", str(project / "plain"), "../plain")


def test_a_store_moved_alone_still_finds_its_run(cli, store, tiny_run, tmp_path) -> None:
    (tmp_path / "elsewhere").mkdir()
    alone = Path(shutil.move(store, tmp_path / "elsewhere" / "deeper"))
    query = stored_png(tmp_path / "q.png", 7)
    code, out, err = cli("search", alone, "--image", query, "--k", "3", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["index"] == 7
    assert Embeddings.load(alone).manifest["run"] == str(tiny_run.resolve())


def test_json_output_is_strict_json(cli, store) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in JSON output")

    code, out, err = cli("search", store, "--index", "0", "--both", "--json")
    assert code == 0, err
    json.loads(out, parse_constant=refuse)


def test_search_on_a_run_folder_says_to_embed_it(cli, tiny_run) -> None:
    code, _, err = cli("search", tiny_run, "--index", "0")
    one_line_error(code, err, "is a run folder", f"aekit embed {tiny_run} --out EMB")
    assert not (tiny_run / "manifest.json").exists()


def test_embed_at_another_size_names_the_size_to_use(cli, tiny_run, tmp_path) -> None:
    code, _, err = cli("embed", tiny_run, "--out", tmp_path / "e", "--image-size", "64")
    one_line_error(code, err, "3x64x64", "3x32x32", "--image-size 32")


def test_every_store_file_has_a_normal_files_mode(cli, store) -> None:
    import os

    code, _, err = cli("index", store, "--kind", "flat")
    assert code == 0, err
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in store.iterdir()}
    assert set(modes.values()) == {0o666 & ~mask}, modes  # index.faiss was 0600
