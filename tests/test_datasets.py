"""The dataset registry: IDX parsing, where files are looked for and in which order, clear errors, safe extraction."""

import gzip
import io
import tarfile
import zipfile

import numpy as np
import pytest

from common import datasets
from common.errors import UserError
from helpers import fake_mnist, write_idx

pytestmark = pytest.mark.backend_independent


def test_idx_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(datasets.read_idx(write_idx(tmp_path / "a.gz", images)), images)
    wide = np.array([1, -2, 70000], ">i4")
    assert datasets.read_idx(write_idx(tmp_path / "b", wide, compress=False)).tolist() == [1, -2, 70000]


def test_truncated_gzip_is_a_clear_error(tmp_path):
    good = write_idx(tmp_path / "good.gz", np.zeros((10, 28, 28), np.uint8))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(UserError, match="cut.gz is truncated or not a valid gzip file"):
        datasets.read_idx(cut)


def test_short_idx_payload_is_a_clear_error(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + np.array([100], ">u4").tobytes() + b"\0" * 50))
    with pytest.raises(UserError, match=r"truncated or corrupt: header says \(100,\) \(100 bytes\), file holds 50 bytes"):
        datasets.read_idx(path)
    path.write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(UserError, match="not an IDX file"):
        datasets.read_idx(path)


def test_a_dataset_is_the_files_in_the_folder_given(tmp_path):
    rng = np.random.default_rng(1)
    written = [(rng.integers(0, 256, (count, 28, 28), dtype=np.uint8), rng.integers(0, 10, count).astype(np.uint8))
               for count in (6, 3)]
    for prefix, (images, labels) in zip(("train", "t10k"), written):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    loaded = datasets.load_idx_dataset("mnist", tmp_path)
    for (images, labels), (x, y) in zip(written, loaded):
        assert x.dtype == np.uint8 and y.dtype == np.int64
        np.testing.assert_array_equal(x, images)
        np.testing.assert_array_equal(y, labels)


def test_files_are_looked_for_in_the_folder_given_then_data_dir_then_the_keras_cache(tmp_path, monkeypatch):
    # Each place holds a different number of training images, which tells which one was read.
    fake_mnist(tmp_path / "given", train=4)
    fake_mnist(tmp_path / "data" / "fashion-mnist", train=5)
    fake_mnist(tmp_path / "keras" / "datasets" / "fashion-mnist", train=6)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    train_images = lambda *given: len(datasets.load_idx_dataset("fashion-mnist", *given)[0][0])
    assert train_images(tmp_path / "given") == 4
    assert train_images() == 5
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "given"))  # a folder without fashion-mnist/ in it
    assert train_images() == 6


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="data folder .*nowhere does not exist"):
        datasets.load_idx_dataset("mnist", tmp_path / "nowhere")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.raises(UserError, match=r"mnist/train-images-idx3-ubyte.gz not found; put it at"):
        datasets.load_idx_dataset("mnist")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="DATA_DIR=.*nowhere is not a folder"):
        datasets.load_idx_dataset("fashion-mnist")


def test_data_dir_prefers_the_flag_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert datasets.data_dir() == tmp_path
    assert datasets.data_dir(tmp_path / "..") == tmp_path / ".."
    with pytest.raises(UserError, match="--data-dir=.*missing is not a folder"):
        datasets.data_dir(tmp_path / "missing")


def test_holdout_is_seeded_and_keeps_both_sides():
    kept, held = datasets.holdout(100, 0.1, seed=3)
    assert len(held) == 10 and sorted([*kept, *held]) == list(range(100))
    assert (datasets.holdout(100, 0.1, seed=3)[1] == held).all() and not (datasets.holdout(100, 0.1, seed=4)[1] == held).all()
    assert len(datasets.holdout(5, 0.01, seed=0)[1]) == 1 and len(datasets.holdout(2, 0.9, seed=0)[0]) == 1
    assert len(datasets.holdout(5, 0.0, seed=0)[1]) == 0


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def test_safe_extract_unpacks_tar_and_zip_once(tmp_path):
    archive = make_tar(tmp_path / "ok.tar.gz", {"top/a.txt": b"a", "top/sub/b.txt": b"b"})
    out = datasets.safe_extract(archive, tmp_path / "out")
    assert (out / "top" / "a.txt").read_bytes() == b"a" and (out / "top" / "sub" / "b.txt").read_bytes() == b"b"
    with pytest.raises(UserError, match="out already exists; remove it to extract ok.tar.gz again"):
        datasets.safe_extract(archive, tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "ok.zip", "w") as zipped:
        zipped.writestr("top/c.txt", b"c")
    assert (datasets.safe_extract(tmp_path / "ok.zip", tmp_path / "zip") / "top" / "c.txt").read_bytes() == b"c"


def test_safe_extract_refuses_paths_outside_the_target(tmp_path):
    archive = make_tar(tmp_path / "evil.tar.gz", {"../escaped.txt": b"x"})
    with pytest.raises(UserError, match="holds a member it is not safe to extract .*refusing to extract"):
        datasets.safe_extract(archive, tmp_path / "out" / "inner")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zipped:
        zipped.writestr("../escaped.txt", b"x")
    with pytest.raises(UserError, match="holds a path outside its folder: '../escaped.txt'; refusing to extract"):
        datasets.safe_extract(tmp_path / "evil.zip", tmp_path / "out" / "inner")
    assert not (tmp_path / "out" / "escaped.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []  # nor anything half extracted


def test_corrupt_archive_is_a_clear_error(tmp_path):
    archive = make_tar(tmp_path / "a.tar.gz", {"top/a.txt": b"a" * 5000})
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(UserError, match="broken.tar.gz is truncated or corrupt"):
        datasets.safe_extract(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_an_archive_is_extracted_into_the_keras_cache_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setitem(
        datasets.REGISTRY, "toy", {"toy.tar.gz": datasets.RemoteFile("toy.tar.gz", "https://example.invalid/toy.tar.gz", "0" * 64)}
    )
    (tmp_path / "data").mkdir()
    archive = make_tar(tmp_path / "data" / "toy.tar.gz", {"toy/readme.txt": b"hi"})
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    folder = datasets.extracted("toy", "toy.tar.gz", "toy")
    assert folder == tmp_path / "keras" / "datasets" / "toy" and (folder / "readme.txt").read_text() == "hi"
    archive.unlink()  # the extracted folder is all a second call needs
    assert datasets.extracted("toy", "toy.tar.gz", "toy") == folder
