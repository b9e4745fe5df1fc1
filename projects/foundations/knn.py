"""k-nearest neighbours: k and the distance chosen by cross-validation, one test run, scikit-learn's predictions matched.

kNN keeps the whole training set and labels an image by a vote of the k training
images nearest to it: no training at all, but a distance to every training image for
every prediction. k and the distance (L1: the sum of the pixels' absolute differences;
L2: the root of the sum of their squares) are hyperparameters, and the course's note
chooses them the honest way: by 5-fold cross-validation on the training set, never on
the test set, which then scores the one setting chosen.

- cross-validation: on a seeded subset of each training set (10,000 of the 60,000
  images by default; all of them would take some 40 minutes of L1 distances per
  dataset on 2 CPU cores), k from 1 to 15, L1 and L2
- test: the chosen k and distance, every one of the 10,000 test images against all
  60,000 training images
- scikit-learn: on a smaller subset, the same predictions as `KNeighborsClassifier`
  for every k and both distances, and the time of both

The distances of a batch of images to every training image are computed with
`keras.ops` inside a small Keras model that `predict` runs compiled (XLA), batch
after batch, so a GPU helps; the k nearest come out of `ops.top_k`, and the votes are
counted in NumPy. A vote's tie goes to the smallest label, as in scikit-learn.
With `--tiny` the subsets shrink to the tiny sets' sizes.
"""

import time
from dataclasses import dataclass, replace

import numpy as np

from common.config import option, require_at_least_one
from common.errors import UserError
from projects.foundations import data
from projects.foundations.experiment import ExperimentConfig, Report

METRICS = ("l1", "l2")
SKLEARN_METRICS = {"l1": "manhattan", "l2": "euclidean"}


@dataclass(frozen=True)
class Config(ExperimentConfig):
    data_dir: str = option(None, "folder with the dataset files (default: $DATA_DIR, the Keras cache, then download)")
    datasets: tuple = option(data.DATASETS, "datasets to run on", nargs="+", type=str, choices=data.DATASETS)
    max_k: int = option(15, "the largest k tried (from 1; at most the images a fold trains on)")
    folds: int = option(5, "folds of the cross-validation (at least 2, at most --cv-subset)")
    cv_subset: int = option(10000, "training images the cross-validation runs on (a seeded subset)")
    check_train: int = option(2000, "training images of the comparison with scikit-learn (a seeded subset)")
    check_test: int = option(500, "test images of the comparison with scikit-learn (a seeded subset)")
    batch_size: int = option(64, "images whose distances are computed at once")

    def __post_init__(self):
        require_at_least_one(self, "max_k", "cv_subset", "check_train", "check_test", "batch_size")
        if not 2 <= self.folds <= self.cv_subset:
            raise UserError(f"--folds must be at least 2 and at most --cv-subset ({self.cv_subset}), got {self.folds}")
        fold_train = self.cv_subset - -(-self.cv_subset // self.folds)  # the fewest images a fold trains on
        if self.max_k > min(fold_train, self.check_train):
            raise UserError(f"--max-k must be at most the training images of a fold and of the check "
                            f"({min(fold_train, self.check_train)}), got {self.max_k}")

    def sized_for(self, training, test):
        """These settings with the subsets capped at a tiny set's sizes (a real set's must fit as they are)."""
        if not self.tiny:
            return self
        return replace(self, cv_subset=min(self.cv_subset, training), check_train=min(self.check_train, training),
                       check_test=min(self.check_test, test))


def run(config):
    import pandas as pd

    sets, summary = {}, []
    for dataset in config.datasets:  # every set loaded and its sizes checked before any work
        (x_train, y_train), (x_test, y_test) = data.load_pixels(dataset, config.data_dir, config.tiny, config.seed)
        sized = config.sized_for(len(x_train), len(x_test))
        sets[dataset] = (sized, (x_train, y_train), (x_test, y_test),
                         data.subset(x_train, y_train, sized.cv_subset, config.seed, "--cv-subset"),
                         data.subset(x_train, y_train, sized.check_train, config.seed, "--check-train"),
                         data.subset(x_test, y_test, sized.check_test, config.seed, "--check-test")[0])
    report = Report("knn", config)
    for dataset, (sized, (x_train, y_train), (x_test, y_test), (x_cv, y_cv), check_train, check_test) in sets.items():
        started = time.time()
        accuracy = cross_validate(x_cv, y_cv, sized)
        cv_seconds = time.time() - started
        metric, k = max(accuracy, key=lambda key: (accuracy[key].mean(), -key[1]))
        report.table(f"cross_validation_{dataset}", cv_table(accuracy, sized.max_k),
                     f"**{dataset}**: {sized.folds}-fold cross-validation accuracy on {len(x_cv):,} training images by k "
                     "(mean ± standard deviation over the folds).")
        report.picture(plot_accuracy(report.picture_path(f"accuracy_{dataset}"), accuracy, dataset, (metric, k)),
                       f"{dataset}: cross-validation accuracy against k, L1 and L2")
        print(f"test: {len(x_test):,} images against {len(x_train):,}, {metric.upper()}, k = {k}", flush=True)
        started = time.time()
        _, neighbours = nearest(x_test, x_train, k, metric, sized.batch_size)
        predicted = vote(y_train[neighbours])[:, -1]
        summary.append({"dataset": dataset, "distance": metric.upper(), "k": k,
                        f"{sized.folds}-fold accuracy": accuracy[(metric, k)].mean(),
                        "test accuracy": float(np.mean(predicted == y_test)),
                        "training / test images": f"{len(x_train):,} / {len(x_test):,}",
                        "seconds: cross-validation, test": f"{cv_seconds:.0f}, {time.time() - started:.0f}"})
        report.table(f"against_scikit_learn_{dataset}", against_scikit_learn(*check_train, check_test, sized),
                     f"**{dataset}**, the same predictions as scikit-learn: {len(check_test):,} test images against "
                     f"{len(check_train[0]):,} training images, every k from 1 to {sized.max_k}; ours in exact integer "
                     "arithmetic (int32) and in float32, scikit-learn's `KNeighborsClassifier` (brute force) in float64.")
    report.table("test", pd.DataFrame(summary), "**Test accuracy** of the setting cross-validation chose, "
                 "with the whole training set.", float_format="{:.4f}".format)
    return report.finish(f"cross-validation on {config.cv_subset:,} training images per dataset, "
                         f"batches of {config.batch_size} images")


def distances(queries, references, metric):
    """(queries, references) distances in `keras.ops`: L1, or the square of L2 (which orders neighbours alike)."""
    from keras import ops

    if metric == "l1":
        return ops.sum(ops.abs(queries[:, None, :] - references[None, :, :]), axis=-1)
    # ‖q - r‖² = ‖q‖² - 2 q·r + ‖r‖²: one matrix product instead of a (queries, references, pixels) tensor.
    return (ops.sum(queries * queries, axis=1)[:, None] - 2 * ops.matmul(queries, ops.transpose(references))
            + ops.sum(references * references, axis=1)[None, :])


def nearest(queries, references, k, metric, batch_size, dtype="float32"):
    """(distances, indices), each (queries, k): the k references nearest to each query, nearest first.

    Equal distances keep the reference that comes first. `dtype` int32 computes exact
    distances for pixel values (the L2 squares stay below 2³¹).
    """
    model = search_model(references.shape, k, metric, dtype)
    model.layers[-1].references.assign(np.asarray(references, dtype))
    found, indices = model.predict(np.asarray(queries, dtype), batch_size=batch_size, verbose=0)
    return found, indices


COMPILED = {}  # (reference shape, k, metric, dtype) -> model: the folds of a cross-validation share one compilation


def search_model(shape, k, metric, dtype):
    """A Keras model from a batch of queries to their k nearest references (held in its layer), compiled with XLA."""
    import keras
    from keras import ops

    class Nearest(keras.layers.Layer):
        def build(self, input_shape):
            self.references = self.add_weight(shape=shape, dtype=dtype, trainable=False, initializer="zeros")

        def call(self, batch):
            found, indices = ops.top_k(-distances(batch, self.references, metric), k)
            return -found, indices

    key = (tuple(shape), k, metric, dtype)
    if key not in COMPILED:
        inputs = keras.Input(shape[1:], dtype=dtype)
        COMPILED[key] = keras.Model(inputs, Nearest(dtype=dtype)(inputs))
        COMPILED[key].compile(jit_compile=True)
    return COMPILED[key]


def vote(neighbour_labels, classes=10):
    """(queries, K) labels of the nearest first -> (queries, K) predictions for k = 1..K; ties to the smallest label."""
    counts = np.cumsum(np.eye(classes, dtype=np.int32)[neighbour_labels], axis=1)  # (queries, K, classes)
    return counts.argmax(axis=2)


def cross_validate(x, y, config):
    """{(metric, k): accuracy on each fold}: each fold's images voted on by the other folds' images alone."""
    correct = {metric: [] for metric in METRICS}
    for number, (fit, held) in enumerate(data.folds(len(x), config.folds, config.seed), 1):
        for metric in METRICS:
            print(f"fold {number}/{config.folds}, {metric.upper()}: {len(held):,} images against {len(fit):,}", flush=True)
            _, neighbours = nearest(x[held], x[fit], config.max_k, metric, config.batch_size)
            correct[metric].append((vote(y[fit][neighbours]) == y[held][:, None]).mean(axis=0))
    return {(metric, k): np.array([fold[k - 1] for fold in correct[metric]]) for metric in METRICS
            for k in range(1, config.max_k + 1)}


def cv_table(accuracy, max_k):
    import pandas as pd

    return pd.DataFrame([{"k": k, **{f"{metric.upper()}": f"{accuracy[(metric, k)].mean():.4f} ± {accuracy[(metric, k)].std():.4f}"
                                     for metric in METRICS}} for k in range(1, max_k + 1)])


def against_scikit_learn(x_train, y_train, x_test, config):
    """Per distance: how many predictions (every k) agree with scikit-learn's, and the seconds each took."""
    import pandas as pd
    from sklearn.neighbors import KNeighborsClassifier

    rows = []
    for metric in METRICS:
        ours, seconds = {}, {}
        for dtype in ("int32", "float32"):
            started = time.time()
            ours[dtype] = vote(y_train[nearest(x_test, x_train, config.max_k, metric, config.batch_size, dtype)[1]])
            seconds[dtype] = time.time() - started
        theirs, seconds["scikit-learn"] = [], 0.0
        for k in range(1, config.max_k + 1):
            started = time.time()
            model = KNeighborsClassifier(k, algorithm="brute", metric=SKLEARN_METRICS[metric]).fit(x_train.astype(np.float64), y_train)
            theirs.append(model.predict(x_test.astype(np.float64)))
            seconds["scikit-learn"] += time.time() - started
        theirs = np.stack(theirs, axis=1)
        rows.append({"distance": metric.upper(), "predictions": theirs.size,
                     "equal, int32": int((ours["int32"] == theirs).sum()), "equal, float32": int((ours["float32"] == theirs).sum()),
                     "seconds: ours int32, float32": f"{seconds['int32']:.1f}, {seconds['float32']:.1f}",
                     f"seconds: scikit-learn ({config.max_k} predicts)": f"{seconds['scikit-learn']:.1f}"})
    return pd.DataFrame(rows)


def plot_accuracy(path, accuracy, dataset, chosen):
    from common import charts

    figure, ((axes,),) = charts.figure(7, 4.5)
    for metric in METRICS:
        ks = sorted(k for m, k in accuracy if m == metric)
        means = np.array([accuracy[(metric, k)].mean() for k in ks])
        spreads = np.array([accuracy[(metric, k)].std() for k in ks])
        axes.errorbar(ks, means, yerr=spreads, marker="o", markersize=3, capsize=2, label=metric.upper())
    axes.plot(chosen[1], accuracy[chosen].mean(), "k*", markersize=12, label=f"chosen: {chosen[0].upper()}, k = {chosen[1]}")
    axes.set(xlabel="k (neighbours voting)", ylabel="cross-validation accuracy", title=f"kNN on {dataset} pixels")
    axes.grid(alpha=0.3)
    axes.legend()
    return charts.save(figure, path, dpi=90)
