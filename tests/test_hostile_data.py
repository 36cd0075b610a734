"""Hostile data files and images: each is refused with one line naming the file and what to do
(exit 2, no traceback), before it costs the memory it asks for."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format
from PIL import EpsImagePlugin, Image, ImageFile

import aekit
from aekit.data.images import DEFAULT_MAX_PIXELS, read_image_files
from formats import rand_uint8, write_cifar_bin_dir, write_cifar_py_dir, write_image, write_npz


def refusal(result: tuple[int, str, str], *words: str) -> str:
    """The one stderr line of a refused command, checked to hold ``words``."""
    code, _, err = result
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def declared_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of ``width`` x ``height`` zeros: kilobytes on disk, width*height bytes
    once Pillow decodes it. Written row by row, so making it costs no memory."""
    row, z = b"\0" * (1 + (width + 7) // 8), zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + tag
            + payload
            + struct.pack(">I", zlib.crc32(tag + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding any image file's pixels fails the test: refusals must come from the header."""

    def refuse(self: ImageFile.ImageFile, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"decoded a {self.size[0]}x{self.size[1]} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.fixture
def ghostscript_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records every attempt by Pillow to run Ghostscript (an external interpreter)."""
    calls: list[object] = []

    def record(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise OSError("Ghostscript would run here")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", record)
    return calls


def eps_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="EPS")
    return buf.getvalue()


@pytest.fixture(scope="module")
def store(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = aekit.load_dataset("shapes", "test").subset(slice(0, 20))
    out = tmp_path_factory.mktemp("hostile") / "emb"
    aekit.embed(aekit.load(tiny_run), ds, run=tiny_run).save(out)
    return out


# 6. One pixel limit for every image read, from the header, before decoding --------------------


def test_folder_of_declared_13000_pngs_is_refused_before_decoding(
    cli, tmp_path: Path, no_decoding: None
) -> None:
    for i in range(3):
        declared_png(tmp_path / "bombs" / f"big{i}.png", 13000, 13000)
    assert (tmp_path / "bombs" / "big0.png").stat().st_size < 100_000
    line = refusal(cli("data", "describe", f"folder:{tmp_path / 'bombs'}"), "--max-pixels")
    assert "13000x13000" in line and "big" in line and ".png" in line


@pytest.mark.parametrize("command", ["reconstruct", "denoise"])
def test_cli_image_of_10000_squared_is_refused_before_decoding(
    cli, tiny_run: Path, tmp_path: Path, no_decoding: None, command: str
) -> None:
    big = declared_png(tmp_path / "huge.png", 10000, 10000)
    out = tmp_path / ("grid.png" if command == "reconstruct" else "cleaned")
    refusal(cli(command, tiny_run, big, "--out", out), str(big), "--max-pixels")


def test_search_query_image_is_refused_before_decoding(
    cli, store: Path, tmp_path: Path, no_decoding: None
) -> None:
    big = declared_png(tmp_path / "query.png", 13000, 13000)
    refusal(cli("search", store, "--image", big, "--k", "3"), str(big), "--max-pixels")


def test_a_24_megapixel_photo_passes_the_default_limit(tmp_path: Path) -> None:
    photo = declared_png(tmp_path / "camera.png", 6000, 4000)
    images, notes = read_image_files([photo], channels=1, size=(28, 28))
    assert images.shape == (1, 1, 28, 28) and "6000×4000" in notes[-1]
    assert 6000 * 4000 <= DEFAULT_MAX_PIXELS < 10000 * 10000


def small_folder(root: Path) -> Path:
    """Two classes of four 32x32 RGB images (1024 pixels each)."""
    for i in range(8):
        write_image(root / f"class{i % 2}" / f"img{i}.png", rand_uint8((32, 32, 3), i))
    return root


FLAG_CASES = {
    "train": lambda d, run, emb, t: ["train", "--data", f"folder:{d}", "--out", t / "r",
                                     "--epochs", "1", "--base-channels", "8"],
    "eval": lambda d, run, emb, t: ["eval", run, "--data", f"folder:{d}", "--split", "train"],
    "embed": lambda d, run, emb, t: ["embed", run, "--data", f"folder:{d}", "--split", "train",
                                     "--out", t / "emb"],
    "reconstruct": lambda d, run, emb, t: ["reconstruct", run, d / "class0" / "img0.png",
                                           "--out", t / "g.png"],
    "denoise": lambda d, run, emb, t: ["denoise", run, d / "class0" / "img0.png", "--out", t / "o"],
    "interpolate": lambda d, run, emb, t: ["interpolate", run, d / "class0" / "img0.png",
                                           d / "class1" / "img1.png", "--out", t / "s.png"],
    "search --image": lambda d, run, emb, t: ["search", emb, "--image", d / "class0" / "img0.png"],
    "search --queries": lambda d, run, emb, t: ["search", emb, "--queries", d / "class1"],
    "data describe": lambda d, run, emb, t: ["data", "describe", f"folder:{d}"],
    "data preview": lambda d, run, emb, t: ["data", "preview", f"folder:{d}", "--out", t / "p.png"],
}  # fmt: skip


@pytest.mark.parametrize("case", FLAG_CASES)
def test_every_command_that_reads_images_takes_max_pixels(
    cli, tiny_run: Path, store: Path, tmp_path: Path, case: str
) -> None:
    folder = small_folder(tmp_path / "imgs")
    args = FLAG_CASES[case](folder, tiny_run, store, tmp_path)
    line = refusal(cli(*args, "--max-pixels", "1000"), "32x32 = 1024 pixels", "--max-pixels")
    assert "over the limit of 1000" in line and "img" in line


def test_search_eval_of_a_folder_store_takes_max_pixels(
    cli, tiny_run: Path, tmp_path: Path
) -> None:
    folder = small_folder(tmp_path / "imgs")
    assert cli("embed", tiny_run, "--data", f"folder:{folder}", "--split", "train",
               "--out", tmp_path / "emb")[0] == 0  # fmt: skip
    refusal(
        cli("search-eval", tmp_path / "emb", "--max-pixels", "1000"), "1024 pixels", "--max-pixels"
    )


def test_max_pixels_must_be_positive(cli, tmp_path: Path) -> None:
    code, _, err = cli("data", "describe", "shapes", "--max-pixels", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--max-pixels" in err and "at least 1" in err


# 7. Labels: a sane class count, no negatives ----------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [np.array([0, 10**12]), np.array([0, -5]), np.array([0, 2**64 - 1], dtype=np.uint64)],
    ids=["10**12", "negative", "uint64-max"],
)
def test_npz_label_out_of_range_is_refused(cli, tmp_path: Path, labels: np.ndarray) -> None:
    path = write_npz(tmp_path / "d.npz", x_train=rand_uint8((2, 8, 8)), y_train=labels)
    refusal(cli("data", "describe", f"npz:{path}"), str(path), "y_train")


# 8. Damaged npz members ------------------------------------------------------------------------


def damage_member(path: Path, key: str) -> None:
    """Flip one byte in the middle of ``key``'s stored (or deflated) data."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack(
        "<HH", raw[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
@pytest.mark.parametrize("key", ["x_train", "y_train"])
def test_damaged_npz_member_is_refused(cli, tmp_path: Path, compressed: bool, key: str) -> None:
    path = write_npz(tmp_path / "d.npz", compressed, x_train=rand_uint8((64, 16, 16)),
                     y_train=np.arange(64) % 3)  # fmt: skip
    damage_member(path, key)
    line = refusal(cli("data", "describe", f"npz:{path}"), str(path), key)
    assert "damaged" in line


# 9. Sizes that overflow int64 --------------------------------------------------------------------


def test_idx_header_whose_size_overflows_int64_is_refused(cli, tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = folder / "t10k-images-idx3-ubyte"
    images.write_bytes(struct.pack(">IIII", 0x803, 2**31, 2**31, 4))  # 2**64 bytes, none there
    (folder / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 0))
    refusal(cli("data", "describe", "mnist", "--data-dir", tmp_path, "--split", "test"),
            str(images), "wrong size")  # fmt: skip


@pytest.mark.parametrize(
    ("key", "shape", "descr"),
    [("x_train", (2**31, 2**31, 4), "|u1"), ("y_train", (2, 2**62), "<i8")],
)
def test_npz_header_whose_size_overflows_int64_is_refused(
    cli, tmp_path: Path, key: str, shape: tuple[int, ...], descr: str
) -> None:
    path = tmp_path / "huge.npz"
    arrays = {"x_train": rand_uint8((2, 8, 8)), "y_train": np.array([0, 1])}
    header = io.BytesIO()
    npy_format.write_array_header_2_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in arrays.items():
            if name == key:
                zf.writestr(f"{name}.npy", header.getvalue())  # the header and no data
            else:
                with zf.open(f"{name}.npy", "w") as fp:
                    npy_format.write_array(fp, array)
    refusal(cli("data", "describe", f"npz:{path}"), str(path), key)


# 10. Empty splits --------------------------------------------------------------------------------


def test_empty_training_split_is_refused(cli, tmp_path: Path) -> None:
    path = write_npz(tmp_path / "e.npz", x_train=rand_uint8((0, 16, 16)),
                     x_test=rand_uint8((4, 16, 16)))  # fmt: skip
    refusal(cli("train", "--data", f"npz:{path}", "--out", tmp_path / "r", "--epochs", "1"),
            f"npz:{path}", "'train'", "no images")  # fmt: skip


def test_empty_heldout_split_is_refused(cli, tmp_path: Path) -> None:
    path = write_npz(tmp_path / "e.npz", x_train=rand_uint8((8, 16, 16)),
                     x_test=rand_uint8((0, 16, 16)))  # fmt: skip
    refusal(cli("train", "--data", f"npz:{path}", "--out", tmp_path / "r", "--epochs", "1",
                "--base-channels", "8"), f"npz:{path}", "'test'", "no images")  # fmt: skip


@pytest.mark.parametrize("test_shape,advice", [
    ((8, 16, 16, 3), "as many channels"),  # gray train, color test: no resize can help
    ((8, 24, 24), "--image-size"),
])  # fmt: skip
def test_splits_that_differ_get_the_advice_that_fits(cli, tmp_path: Path, test_shape,
                                                     advice) -> None:  # fmt: skip
    path = write_npz(tmp_path / "m.npz", x_train=rand_uint8((8, 16, 16)),
                     x_test=rand_uint8(test_shape))  # fmt: skip
    code, _, err = cli("train", "--data", f"npz:{path}", "--out", tmp_path / "r", "--epochs",
                       "1", "--base-channels", "8")  # fmt: skip
    refusal((code, "", err), "test", advice)
    if advice != "--image-size":
        assert "--image-size" not in err


def test_preview_of_an_empty_split_is_refused(cli, tmp_path: Path) -> None:
    path = write_npz(tmp_path / "e.npz", x_train=rand_uint8((2, 8, 8)),
                     x_test=rand_uint8((0, 8, 8)))  # fmt: skip
    refusal(cli("data", "preview", f"npz:{path}", "--split", "test", "--out", tmp_path / "p.png"),
            f"npz:{path}", "'test'", "no images")  # fmt: skip


# CIFAR-10 batches of the wrong length ------------------------------------------------------------


def ten_record_batches() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {n: (rand_uint8((10, 3, 32, 32), i), np.arange(10) % 10) for i, n in enumerate(names)}


@pytest.mark.parametrize("layout", ["bin", "py"])
def test_truncated_cifar_batches_are_refused(cli, tmp_path: Path, layout: str) -> None:
    folder = tmp_path / "cifar10" / f"cifar-10-batches-{layout}"
    write = write_cifar_bin_dir if layout == "bin" else write_cifar_py_dir
    write(folder, ten_record_batches())
    line = refusal(cli("data", "describe", "cifar10", "--data-dir", tmp_path),
                   str(folder / "data_batch_1"), "10000", "truncated")  # fmt: skip
    assert "official" in line


# EPS and other formats outside the raster allow-list --------------------------------------------


def test_eps_image_argument_never_starts_ghostscript(
    cli, tiny_run: Path, tmp_path: Path, ghostscript_calls: list[object]
) -> None:
    eps = tmp_path / "drawing.eps"
    eps.write_bytes(eps_bytes())
    line = refusal(cli("reconstruct", tiny_run, eps, "--out", tmp_path / "g.png"), str(eps))
    assert "Ghostscript" not in line and ghostscript_calls == []


def test_eps_in_a_folder_is_skipped_without_ghostscript(
    cli, tmp_path: Path, ghostscript_calls: list[object]
) -> None:
    folder = small_folder(tmp_path / "imgs")
    (folder / "class0" / "disguised.png").write_bytes(eps_bytes())
    code, out, err = cli("data", "describe", f"folder:{folder}")
    assert code == 0 and "8 images" in out
    assert "skipped 1 unreadable" in err and "disguised.png" in err
    assert ghostscript_calls == []


# Web uploads -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tiny_run: Path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from aekit.web.server import create_app

    return TestClient(create_app(tiny_run, device="cpu"))


def post(client, data: bytes, name: str = "upload.png"):
    return client.post("/api/reconstruct", files={"image": (name, data, "image/png")})


def test_serve_takes_max_pixels(cli, tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    from fastapi.testclient import TestClient

    apps: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    code, _, err = cli("serve", tiny_run, "--max-pixels", "1000")
    assert code == 0, err
    served = TestClient(apps[0])
    assert served.get("/api/info").json()["limits"]["max_pixels"] == 1000
    buf = io.BytesIO()
    Image.fromarray(rand_uint8((32, 32, 3))).save(buf, format="PNG")
    r = post(served, buf.getvalue())
    assert r.status_code == 413 and "1024 pixels" in r.json()["detail"]


def test_upload_limit_is_the_one_pixel_limit(client) -> None:
    assert client.get("/api/info").json()["limits"]["max_pixels"] == DEFAULT_MAX_PIXELS


def test_upload_of_a_declared_13000_png_is_refused_before_decoding(
    client, tmp_path: Path, no_decoding: None
) -> None:
    data = declared_png(tmp_path / "bomb.png", 13000, 13000).read_bytes()
    r = post(client, data)
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert "13000x13000" in detail and f"limit of {DEFAULT_MAX_PIXELS}" in detail


def test_eps_upload_never_starts_ghostscript(client, ghostscript_calls: list[object]) -> None:
    r = post(client, eps_bytes(), "drawing.eps")
    assert r.status_code == 400, r.text
    assert "Ghostscript" not in r.json()["detail"] and ghostscript_calls == []


@pytest.mark.parametrize(
    "data", [b"hello, I am not a picture\n" * 10, b"%!PS-Adobe-3.0 EPSF-3.0\n"], ids=["text", "ps"]
)
def test_upload_errors_hold_no_object_reprs(client, data: bytes) -> None:
    r = post(client, data)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert "object at 0x" not in detail and "<" not in detail and "the upload" in detail


def test_a_folder_of_non_images_is_one_line(cli, tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "pics" / "train").mkdir(parents=True, exist_ok=True)
        (tmp_path / "pics" / "train" / f"{i}.png").write_text("not a picture")
    line = refusal(cli("data", "describe", f"folder:{tmp_path / 'pics'}"), "no readable image",
                   "0.png")  # fmt: skip
    assert "warning" not in line
