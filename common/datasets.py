"""Dataset registry: where each dataset's canonical files come from and how to find them.

Every dataset is a set of upstream files with a pinned sha256. A file is looked for,
in order, in an explicit folder (a `--data-dir` flag), in `$DATA_DIR` (default
`data/`) under its canonical relative path, in the Keras cache, and only then
downloaded with `keras.utils.get_file`, which checks the pinned hash. Local copies
are not hash-checked (mirrors re-compress files), but they are parsed strictly, so
a truncated or corrupt file stops with one clear message instead of a traceback.
"""

import gzip
import os
import shutil
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import UserError

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the data folder, e.g. "mnist/train-images-idx3-ubyte.gz"
    url: str
    sha256: str


# The classes of the labelled image sets in the registry, in label order.
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


def _idx_files(folder, base_url, hashes):
    return {
        name: RemoteFile(f"{folder}/{name}", f"{base_url}/{name}", sha)
        for name, sha in hashes.items()
    }


REGISTRY = {
    "mnist": _idx_files(
        "mnist",
        "https://storage.googleapis.com/cvdf-datasets/mnist",
        {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
    "fashion-mnist": _idx_files(
        "fashion-mnist",
        "https://fashion-mnist.s3.eu-central-1.amazonaws.com",
        {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ),
    "aclImdb": {
        "aclImdb_v1.tar.gz": RemoteFile(
            "aclImdb_v1.tar.gz",
            "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
            "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
        )
    },
    # The Tang poems of the chinese-poetry project (MIT), packed as chinese-poetry/quantangshi/*.json; upstream
    # publishes the JSON files (its 全唐诗 folder), not this archive, so it is found locally, never downloaded.
    "chinese-poetry-tang": {
        "chinese-poetry-tang.tar.gz": RemoteFile(
            "chinese-poetry-tang.tar.gz",
            "https://github.com/chinese-poetry/chinese-poetry",
            "269aa6ca2554860f0d337d0b4e0e15596ebe5f2b03d39093b273cb94029765ec",
        )
    },
}


def data_dir(explicit=None):
    """The data folder: `explicit` (a --data-dir flag), else `$DATA_DIR`, else the repository's `data/`."""
    folder = Path(explicit or os.environ.get("DATA_DIR") or DEFAULT_DATA_DIR)
    if not folder.is_dir():
        source = "--data-dir" if explicit else "DATA_DIR"
        raise UserError(f"{source}={folder} is not a folder; create it or point {source} at your data")
    return folder


def holdout(count, fraction, seed):
    """(kept, held out): the indices of `count` examples, a seeded random `fraction` of them held out.

    At least one example is held out when `fraction` > 0, and at least one kept; none
    is held out at 0.
    """
    order = np.random.default_rng(seed).permutation(count)
    cut = min(count - 1, max(1, int(round(count * fraction)))) if fraction > 0 else 0
    return order[cut:], order[:cut]


def keras_cache_dir():
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def fetch(dataset, filename, explicit_dir=None):
    """Return the local path of one registered file, downloading it only as a last resort."""
    try:
        remote = REGISTRY[dataset][filename]
    except KeyError:
        raise UserError(f"unknown dataset file {dataset}/{filename}; known: {', '.join(REGISTRY)}") from None
    relative = Path(remote.path)

    if explicit_dir is not None:
        explicit_dir = Path(explicit_dir)
        if not explicit_dir.is_dir():
            raise UserError(f"data folder {explicit_dir} does not exist")
        for candidate in (explicit_dir / relative, explicit_dir / relative.name):
            if candidate.is_file():
                return candidate
        raise UserError(f"{relative.name} is missing from {explicit_dir} (expected {explicit_dir / relative})")

    for candidate in (data_dir() / relative, keras_cache_dir() / relative):
        if candidate.is_file():
            return candidate

    where = data_dir() / relative
    if os.environ.get("DATASETS_OFFLINE"):
        raise UserError(f"{relative} not found; put it at {where} or set DATA_DIR to the folder holding {relative.parent}/")
    return _download(remote, where)


def _download(remote, where):
    import keras  # imported late: finding local files must not pay for it

    relative = Path(remote.path)
    try:
        path = keras.utils.get_file(
            fname=relative.name,
            origin=remote.url,
            file_hash=remote.sha256,
            cache_subdir=str(Path("datasets") / relative.parent),
            cache_dir=str(keras_cache_dir().parent),
        )
    except Exception as error:  # network errors come in many types; all mean the same to a user
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(
            f"{relative} not found locally and its download from {remote.url} failed ({reason}); "
            f"put the file at {where} or set DATA_DIR to the folder holding {relative.parent}/"
        ) from None
    return Path(path)


# --- IDX files (MNIST, Fashion-MNIST) -------------------------------------------------

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Parse an IDX file (gzipped or not) into a NumPy array, checking its header and size."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(f"{path} is truncated or not a valid gzip file ({error}); delete it and fetch it again") from None

    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise UserError(f"{path} is truncated (header cut short)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header_size != expected:
        raise UserError(
            f"{path} is truncated or corrupt: header says {shape} ({expected} bytes), "
            f"file holds {len(raw) - header_size} bytes of data"
        )
    return np.frombuffer(raw, dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))


def load_idx_dataset(name, explicit_dir=None):
    """MNIST-format dataset as ((x_train, y_train), (x_test, y_test)), images uint8 (N, 28, 28)."""
    if name not in ("mnist", "fashion-mnist"):
        raise UserError(f"unknown dataset {name!r}; choose mnist or fashion-mnist")
    splits = []
    for prefix in ("train", "t10k"):
        images = read_idx(fetch(name, f"{prefix}-images-idx3-ubyte.gz", explicit_dir))
        labels = read_idx(fetch(name, f"{prefix}-labels-idx1-ubyte.gz", explicit_dir))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"{name} {prefix} files disagree: images {images.shape}, labels {labels.shape}")
        splits.append((images.astype(np.uint8), labels.astype(np.int64)))
    return tuple(splits)


# --- Archives ---------------------------------------------------------------------------


def safe_extract(archive, target):
    """Extract a tar or zip archive into `target`; no member may land outside it.

    Extraction goes to a sibling `.partial` folder that is renamed at the end, so an
    interrupted extraction never looks like a complete one.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise UserError(f"{target} already exists; remove it to extract {archive.name} again")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tar:
                tar.extractall(partial, filter="data")
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                root = partial.resolve()
                for member in zipped.namelist():
                    if not (partial / member).resolve().is_relative_to(root):
                        raise UserError(f"{archive} holds a path outside its folder: {member!r}; refusing to extract")
                zipped.extractall(partial)
        else:
            raise UserError(f"{archive} is not a tar or zip archive")
    except tarfile.FilterError as error:  # a member that would land outside the folder, or a device file
        shutil.rmtree(partial, ignore_errors=True)
        raise UserError(f"{archive} holds a member it is not safe to extract ({error}); refusing to extract") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise UserError(f"{archive} is truncated or corrupt ({error}); delete it and fetch it again") from None
    except UserError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.replace(partial, target)
    return target


def extracted(dataset, filename, folder_name, explicit_dir=None):
    """Folder `folder_name` extracted from a registered archive, extracting it on first use.

    An already extracted folder is used where it lies; otherwise the archive is found
    (or downloaded) and extracted into the Keras cache, which is always writable.
    """
    roots = [Path(explicit_dir)] if explicit_dir else [data_dir(), keras_cache_dir()]
    for root in roots:
        if (root / folder_name).is_dir():
            return root / folder_name
    archive = fetch(dataset, filename, explicit_dir)
    unpacked = safe_extract(archive, keras_cache_dir() / (folder_name + ".unpacked"))
    inner = unpacked / folder_name
    if not inner.is_dir():
        raise UserError(f"{archive} does not contain a {folder_name}/ folder")
    os.replace(inner, keras_cache_dir() / folder_name)
    shutil.rmtree(unpacked, ignore_errors=True)
    return keras_cache_dir() / folder_name
