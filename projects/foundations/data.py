"""The experiments' data: MNIST and Fashion-MNIST as pixel rows, the diabetes table, tiny stand-ins, subsets and folds.

Pixels stay as they are stored (0-255) and are flattened to 784-long rows; each
experiment scales them as its method needs. The diabetes data (442 patients, ten
measurements, disease progression a year later) and the tables of the classical
methods (iris, breast cancer, digits) ship with scikit-learn. `--tiny`
replaces a real set by a generated one: for the pixels, ten random prototype images
plus noise, one per class, which any classifier learns in seconds; for the table,
a planted linear relation with a bend in the BMI column; for the classical methods,
scikit-learn's `make_classification`.
"""

import numpy as np

from common import datasets
from common.errors import UserError

DATASETS = ("mnist", "fashion-mnist")
CLASS_NAMES = datasets.CLASS_NAMES
TINY_SIZES = (600, 200)  # training and test examples of a tiny set


def load_pixels(dataset, data_dir=None, tiny=False, seed=0):
    """((x_train, y_train), (x_test, y_test)): uint8 pixel rows (N, 784) and int labels."""
    if tiny:
        return tiny_pixels(TINY_SIZES[0], seed), tiny_pixels(TINY_SIZES[1], seed + 1)
    return tuple((images.reshape(len(images), -1), labels) for images, labels in datasets.load_idx_dataset(dataset, data_dir))


def tiny_pixels(count, seed=0, classes=10):
    """`count` noisy copies of `classes` fixed prototype images (the same prototypes whatever `seed`)."""
    prototypes = np.random.default_rng(1234).integers(0, 256, (classes, 784))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    pixels = prototypes[labels] + rng.normal(0, 60, (count, 784))
    return np.clip(pixels, 0, 255).astype(np.uint8), labels.astype(np.int64)


def subset(x, y, size, seed, flag="--subset"):
    """A seeded random `size` examples of (x, y), in a random order; the whole set, shuffled, when `size` is its size."""
    if size > len(x):
        raise UserError(f"{flag} {size} is larger than the data set ({len(x)} examples)")
    picked = np.random.default_rng(seed).permutation(len(x))[:size]
    return x[picked], y[picked]


def diabetes(tiny=False, seed=0):
    """(x (N, 10), y (N,), feature names): scikit-learn's diabetes data, or a planted stand-in of 120 rows."""
    from sklearn.datasets import load_diabetes

    names = load_diabetes().feature_names
    if not tiny:
        x, y = load_diabetes(return_X_y=True)
        return x, y, names
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, len(names)))
    bmi = x[:, names.index("bmi")]
    y = 150 + 30 * bmi + 10 * bmi**2 + x @ rng.normal(0, 5, len(names)) + rng.normal(0, 20, len(x))
    return x, y, names


SKLEARN_TABLES = ("iris", "breast cancer", "digits")


def sklearn_table(name, tiny=False, seed=0):
    """(x, y, class names) of a data set scikit-learn ships; with `tiny`, 120 generated examples of the same shape."""
    from sklearn import datasets as shipped

    loaded = {"iris": shipped.load_iris, "breast cancer": shipped.load_breast_cancer, "digits": shipped.load_digits}[name]()
    x, y, class_names = loaded.data, loaded.target, [str(c) for c in loaded.target_names]
    if tiny:
        x, y = shipped.make_classification(120, x.shape[1], n_informative=min(x.shape[1], 4), n_redundant=0,
                                           n_classes=len(class_names), n_clusters_per_class=1, random_state=seed)
    return x, y, class_names


def folds(count, k, seed):
    """k-fold cross-validation over `count` examples: k (train, validation) index arrays.

    Each example is validated on exactly once; the folds differ in size by at most one.
    """
    if not 2 <= k <= count:
        raise UserError(f"--folds must be at least 2 and at most the number of examples ({count}), got {k}")
    parts = np.array_split(np.random.default_rng(seed).permutation(count), k)
    return [(np.concatenate(parts[:i] + parts[i + 1 :]), part) for i, part in enumerate(parts)]
