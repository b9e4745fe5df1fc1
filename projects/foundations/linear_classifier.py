"""A linear classifier on pixels: the score function s = Wx + b, trained with the multiclass SVM loss and with softmax.

The course's note: a linear classifier scores every class with a weighted sum of the
pixels, and a loss says how bad the scores are. The multiclass SVM (hinge) loss wants
the right class's score above every other by a margin of 1, and is content once it
is; softmax turns the scores into probabilities and always wants the right one
higher (cross-entropy). Both losses, written below with `keras.ops`, train the same
784 x 10 weights plus 10 biases with minibatch gradient descent and an L2 penalty.
Each class's column of W is a template the image is matched against: drawn as
pictures, they look like blurred average digits, with negative weights where other
classes put ink.
"""

import time
from dataclasses import dataclass

import numpy as np

from common.config import check_choice, option, require_at_least_one, require_not_negative
from common.errors import UserError
from projects.foundations import data
from projects.foundations.experiment import ExperimentConfig, Report

LOSSES = ("svm", "softmax")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    data_dir: str = option(None, "folder with the dataset files (default: $DATA_DIR, the Keras cache, then download)")
    dataset: str = option("mnist", "which dataset", choices=data.DATASETS)
    epochs: int = option(15, "passes over the 60,000 training images per loss")
    batch_size: int = option(128, "images per gradient step")
    lr: float = option(0.01, "learning rate of the gradient descent (with momentum 0.9)")
    l2: float = option(1e-4, "L2 penalty λ on the weights: λ‖W‖² is added to the loss")

    def __post_init__(self):
        require_at_least_one(self, "epochs", "batch_size")
        require_not_negative(self, "l2")
        check_choice("--dataset", self.dataset, data.DATASETS)
        if not 0 < self.lr <= 10:
            raise UserError(f"--lr must be above 0 and at most 10, got {self.lr}")


def multiclass_svm_loss(labels, scores, margin=1.0):
    """Per example: the sum over wrong classes j of max(0, s_j - s_label + margin)."""
    from keras import ops

    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    right = ops.take_along_axis(scores, labels[:, None], axis=1)
    wrong = 1.0 - ops.one_hot(labels, ops.shape(scores)[1], dtype=scores.dtype)
    return ops.sum(ops.maximum(0.0, scores - right + margin) * wrong, axis=1)


def softmax_loss(labels, scores):
    """Per example: -log of the softmax probability of the right class, log(Σ_j e^{s_j}) - s_label."""
    from keras import ops

    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    right = ops.take_along_axis(scores, labels[:, None], axis=1)[:, 0]
    return ops.logsumexp(scores, axis=1) - right


LOSS_FUNCTIONS = {"svm": multiclass_svm_loss, "softmax": softmax_loss}


def linear_model(pixels, classes, l2):
    """Scores = W x + b on pixels scaled to [0, 1]."""
    import keras

    inputs = keras.Input((pixels,))
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    scores = keras.layers.Dense(classes, kernel_initializer="zeros", kernel_regularizer=keras.regularizers.L2(l2), name="scores")(scaled)
    return keras.Model(inputs, scores)


def train(x, y, loss, config, classes=10):
    """A linear model trained on (x, y) with `loss` ("svm" or "softmax"); returns it and the loss after each epoch."""
    import keras

    from common import backend

    backend.set_random_seed(config.seed)
    model = linear_model(x.shape[1], classes, config.l2)
    model.compile(optimizer=keras.optimizers.SGD(config.lr, momentum=0.9), loss=LOSS_FUNCTIONS[loss],
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    history = model.fit(x.astype(np.float32), y, batch_size=config.batch_size, epochs=config.epochs, verbose=0)
    return model, history.history


def accuracy(model, x, y):
    return float(np.mean(model.predict(x.astype(np.float32), batch_size=4096, verbose=0).argmax(1) == y))


def run(config):
    import pandas as pd

    report = Report("linear-classifier", config)
    (x_train, y_train), (x_test, y_test) = data.load_pixels(config.dataset, config.data_dir, config.tiny, config.seed)
    rows, templates, curves = [], {}, {}
    for loss in LOSSES:
        started = time.time()
        model, history = train(x_train, y_train, loss, config)
        seconds = time.time() - started
        rows.append({"loss": loss, "training accuracy": accuracy(model, x_train, y_train),
                     "test accuracy": accuracy(model, x_test, y_test), "seconds": f"{seconds:.0f}"})
        print(f"{loss}: test accuracy {rows[-1]['test accuracy']:.4f} ({seconds:.0f} s)", flush=True)
        templates[loss] = model.get_layer("scores").get_weights()[0]
        curves[loss] = history
    report.table("accuracy", pd.DataFrame(rows), f"**{config.dataset}**: the same linear score function trained with each loss, "
                 f"scored on all {len(x_test):,} test images.", float_format="{:.4f}".format)
    report.picture(plot_templates(report.picture_path("templates"), templates, data.CLASS_NAMES[config.dataset]),
                   "the ten learned weight templates for each loss")
    report.picture(plot_curves(report.picture_path("curves"), curves), "training loss and accuracy by epoch for each loss")
    return report.finish(f"{config.epochs} epochs of batches of {config.batch_size}, SGD with momentum 0.9 at lr {config.lr:g}, "
                         f"L2 penalty {config.l2:g}")


def plot_templates(path, templates, class_names):
    """A row per loss: each class's weights as a 28 x 28 picture, red positive and blue negative."""
    from common import charts

    figure, grid = charts.figure(1.3 * len(class_names), 1.6 * len(templates), rows=len(templates), columns=len(class_names))
    for row, (loss, weights) in enumerate(templates.items()):
        scale = np.abs(weights).max()
        for column, name in enumerate(class_names):
            axes = grid[row, column]
            axes.imshow(weights[:, column].reshape(28, 28), cmap="coolwarm", vmin=-scale, vmax=scale)
            axes.set_xticks([]), axes.set_yticks([])
            axes.set_title(name, fontsize=8)
        grid[row, 0].set_ylabel(loss, fontsize=10)
    return charts.save(figure, path, dpi=90)


def plot_curves(path, curves):
    from common import charts

    figure, ((loss_axes, accuracy_axes),) = charts.figure(10, 3.8, columns=2)
    for loss, history in curves.items():
        epochs = np.arange(1, len(history["loss"]) + 1)
        loss_axes.plot(epochs, history["loss"], "o-", label=loss)
        accuracy_axes.plot(epochs, history["accuracy"], "o-", label=loss)
    loss_axes.set(xlabel="epoch", ylabel="training loss (its own scale per loss)", yscale="log", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="training accuracy", title="accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    return charts.save(figure, path, dpi=90)
