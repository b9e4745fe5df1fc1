"""The dataset registry: IDX parsing, local lookup order, clear errors, safe extraction."""

import gzip
import io
import tarfile

import numpy as np
import pytest

from common import datasets
from common.errors import UserError

pytestmark = pytest.mark.backend_independent


def write_idx(path, array, compress=True):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def fake_mnist(folder, train=12, test=5):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", train), ("t10k", test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count).astype(np.uint8))


def test_idx_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(datasets.read_idx(write_idx(tmp_path / "a.gz", images)), images)
    wide = np.array([1, -2, 70000], ">i4")
    assert datasets.read_idx(write_idx(tmp_path / "b", wide, compress=False)).tolist() == [1, -2, 70000]


def test_truncated_gzip_is_a_clear_error(tmp_path):
    good = write_idx(tmp_path / "good.gz", np.zeros((10, 28, 28), np.uint8))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(UserError, match="truncated"):
        datasets.read_idx(cut)


def test_short_idx_payload_is_a_clear_error(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + np.array([100], ">u4").tobytes() + b"\0" * 50))
    with pytest.raises(UserError, match="truncated or corrupt"):
        datasets.read_idx(path)
    path.write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(UserError, match="not an IDX file"):
        datasets.read_idx(path)


def test_explicit_folder_and_canonical_layout(tmp_path, monkeypatch):
    fake_mnist(tmp_path / "flat")
    (x_train, y_train), (x_test, y_test) = datasets.load_idx_dataset("mnist", tmp_path / "flat")
    assert x_train.shape == (12, 28, 28) and y_test.shape == (5,) and x_train.dtype == np.uint8
    fake_mnist(tmp_path / "root" / "mnist")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "root"))
    assert datasets.load_idx_dataset("mnist")[1][0].shape == (5, 28, 28)


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="does not exist"):
        datasets.load_idx_dataset("mnist", tmp_path / "nowhere")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.raises(UserError, match=r"mnist/train-images-idx3-ubyte.gz not found; put it at"):
        datasets.load_idx_dataset("mnist")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="DATA_DIR"):
        datasets.load_idx_dataset("fashion-mnist")


def test_keras_cache_is_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    fake_mnist(tmp_path / "keras" / "datasets" / "fashion-mnist")
    assert datasets.load_idx_dataset("fashion-mnist")[0][0].shape == (12, 28, 28)


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def test_safe_extract(tmp_path):
    archive = make_tar(tmp_path / "ok.tar.gz", {"top/a.txt": b"a", "top/sub/b.txt": b"b"})
    out = datasets.safe_extract(archive, tmp_path / "out")
    assert (out / "top" / "sub" / "b.txt").read_bytes() == b"b"
    with pytest.raises(UserError, match="already exists"):
        datasets.safe_extract(archive, tmp_path / "out")


def test_safe_extract_refuses_paths_outside_the_target(tmp_path):
    archive = make_tar(tmp_path / "evil.tar.gz", {"../escaped.txt": b"x"})
    with pytest.raises(UserError):
        datasets.safe_extract(archive, tmp_path / "out" / "inner")
    assert not (tmp_path / "out" / "escaped.txt").exists()
    assert not (tmp_path / "out" / "inner").exists()


def test_corrupt_archive_is_a_clear_error(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", {"top/a.txt": b"a" * 5000})
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(UserError):
        datasets.safe_extract(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extracted_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setitem(
        datasets.REGISTRY, "toy", {"toy.tar.gz": datasets.RemoteFile("toy.tar.gz", "https://example.invalid/toy.tar.gz", "0" * 64)}
    )
    (tmp_path / "data").mkdir()
    make_tar(tmp_path / "data" / "toy.tar.gz", {"toy/readme.txt": b"hi"})
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    folder = datasets.extracted("toy", "toy.tar.gz", "toy")
    assert (folder / "readme.txt").read_text() == "hi"
    assert datasets.extracted("toy", "toy.tar.gz", "toy") == folder
