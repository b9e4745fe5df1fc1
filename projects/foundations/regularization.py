"""Regularisation: a network that overfits 1,000 MNIST digits, and what each cure does to the gap.

A multi-layer perceptron with far more weights than training images learns the
1,000 digits by heart: training accuracy reaches 100% while validation accuracy
stalls well below it. The same network, from the same seed on the same data, is then
trained once per cure, each alone and then all together:

- L2 weight decay: each step shrinks every weight by lr x decay (with plain SGD this
  is the gradient of the penalty decay/2 x ‖W‖²), so only weights the data keeps
  pushing stay large;
- dropout: each hidden unit is switched off at random in training, so no unit can
  rely on a few others;
- batch normalisation: each layer's inputs standardised per batch; the batch's noise
  regularises a little, its main gift is easier optimisation;
- early stopping: training stops once validation accuracy has not improved for a
  while, keeping the best weights;
- data augmentation: small random turns, shifts and zooms of the digits (the MNIST
  project's), so the network never sees the same image twice.

Training and validation accuracy are measured after every epoch in inference mode
(no dropout, no augmentation); the table gives the final train / validation / test
accuracy and how much of the plain network's train-validation gap each cure closes.
The optimiser, its weight decay and the compiling are `common.training`'s.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from common.config import option, require_at_least_one, require_not_negative
from common.errors import UserError
from projects.foundations import data
from projects.foundations.experiment import ExperimentConfig, Report

HIDDEN_LAYERS = (256, 256, 256, 256)
VARIANTS = ("none", "weight-decay", "dropout", "batch-norm", "early-stopping", "augmentation", "all-together")


@dataclass(frozen=True)
class Regime:
    """The regularisers a training run uses; all off is the plain network."""

    weight_decay: float = 0.0
    dropout: float = 0.0
    batch_norm: bool = False
    early_stopping: int = 0
    augment: bool = False


@dataclass(frozen=True)
class Config(ExperimentConfig):
    data_dir: str = option(None, "folder with the MNIST files (default: $DATA_DIR, the Keras cache, then download)")
    train_size: int = option(1000, "training images, a seeded random subset of MNIST's 60,000")
    validation_size: int = option(5000, "validation images, drawn from the rest of the training set")
    epochs: int = option(60, "most epochs per variant")
    batch_size: int = option(50, "images per step")
    lr: float = option(0.1, "learning rate of plain SGD")
    weight_decay: float = option(1e-2, "the L2 variant's weight decay")
    dropout: float = option(0.3, "the dropout variant's share of hidden units dropped")
    patience: int = option(10, "the early-stopping variant stops after this many epochs without a better validation accuracy")
    rotation: float = option(10.0, "the augmentation variant's largest random rotation, degrees")
    shift: float = option(0.1, "the augmentation variant's largest random shift, fraction of the image size")
    zoom: float = option(0.1, "the augmentation variant's largest random zoom, fraction")
    variants: tuple = option(VARIANTS, "the variants to train (default: all)", nargs="+", type=str, choices=VARIANTS)

    def __post_init__(self):
        require_at_least_one(self, "train_size", "validation_size", "epochs", "batch_size", "patience")
        require_not_negative(self, "weight_decay", "rotation", "shift", "zoom")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if not 0 < self.dropout < 1:
            raise UserError(f"--dropout must be between 0 and 1, got {self.dropout}")
        unknown = [name for name in self.variants if name not in VARIANTS]
        if unknown or not self.variants:
            raise UserError(f"--variants must be some of {', '.join(VARIANTS)}, got {' '.join(self.variants) or 'none'}")


def variants(config):
    """{name: Regime} for every variant of VARIANTS: the plain network, each cure alone (with `config`'s setting),
    all together."""
    alone = {
        "weight-decay": Regime(weight_decay=config.weight_decay),
        "dropout": Regime(dropout=config.dropout),
        "batch-norm": Regime(batch_norm=True),
        "early-stopping": Regime(early_stopping=config.patience),
        "augmentation": Regime(augment=True),
    }
    together = Regime(**{key: value for regime in alone.values() for key, value in asdict(regime).items() if value})
    return {"none": Regime(), **alone, "all-together": together}


def build_model(regime, config):
    """The perceptron 784-256-256-256-256-10 on raw 0-255 digits (28, 28, 1), with `regime`'s layers."""
    import keras
    from keras import layers

    from common.layers import augmentation, batch_norm

    hidden = []
    for units in HIDDEN_LAYERS:
        # Batch norm's own shift makes the layer's bias redundant.
        hidden.append(layers.Dense(units, use_bias=not regime.batch_norm, kernel_initializer="he_normal"))
        hidden += [batch_norm()] if regime.batch_norm else []
        hidden.append(layers.ReLU())
        hidden += [layers.Dropout(regime.dropout, seed=config.seed)] if regime.dropout else []
    distortions = augmentation(config.rotation, config.shift, config.zoom, seed=config.seed) if regime.augment else []
    return keras.Sequential([keras.Input((28, 28, 1)), layers.Rescaling(1.0 / 255), *distortions, layers.Flatten(), *hidden,
                             layers.Dense(10, activation="softmax")])


def optimizer_settings(regime, config):
    """common.training's settings for `regime`: plain SGD at a constant rate, with the regime's weight decay."""
    from common.config import FitConfig

    return FitConfig(optimizer="sgd", lr=config.lr, lr_schedule="constant", warmup=0.0, weight_decay=regime.weight_decay)


def callbacks(regime, training_split, history):
    """Accuracy on the training images in inference mode after each epoch, and early stopping when the regime has it."""
    import keras

    class TrainingAccuracy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            history.append(accuracy(self.model, *training_split))

    stopping = [keras.callbacks.EarlyStopping("val_accuracy", patience=regime.early_stopping, mode="max",
                                              restore_best_weights=True)] if regime.early_stopping else []
    return [TrainingAccuracy(), *stopping]


def accuracy(model, x, y, batch_size=1000):
    """Share of `x` that `model` (a Keras classifier, in inference mode) classifies as `y`."""
    from keras import ops

    # Called directly, not through predict(): predict() compiles a function for every one of the models.
    predicted = [ops.convert_to_numpy(ops.argmax(model(x[start : start + batch_size], training=False), axis=1))
                 for start in range(0, len(x), batch_size)]
    return float(np.mean(np.concatenate(predicted) == y))


def train_variant(name, regime, config, splits):
    """One variant from the shared seed: its per-epoch curves and its table row."""
    import keras

    from common import backend, training

    (x_train, y_train), validation, test = splits
    started = time.time()
    keras.backend.clear_session()
    backend.set_random_seed(config.seed)
    model = build_model(regime, config)
    steps = config.epochs * -(-len(x_train) // config.batch_size)
    training.compiled(model, optimizer=training.build_optimizer(optimizer_settings(regime, config), steps),
                      loss="sparse_categorical_crossentropy", metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    train_curve = []
    history = model.fit(x_train, y_train, batch_size=config.batch_size, epochs=config.epochs, validation_data=validation,
                        callbacks=callbacks(regime, (x_train, y_train), train_curve), verbose=0).history
    row = {"variant": name, "train accuracy": accuracy(model, x_train, y_train), "validation accuracy": accuracy(model, *validation),
           "test accuracy": accuracy(model, *test), "epochs": len(train_curve), "seconds": f"{time.time() - started:.0f}"}
    print(f"{name}: train {row['train accuracy']:.4f}, validation {row['validation accuracy']:.4f}, test {row['test accuracy']:.4f} "
          f"({row['epochs']} epochs, {row['seconds']} s)", flush=True)
    return {"train": train_curve, "validation": history["val_accuracy"]}, row


def load_splits(config):
    """(training subset, validation set, test set) as uint8 images (N, 28, 28, 1) and labels."""
    wanted = config.train_size + config.validation_size
    (x, y), (x_test, y_test) = data.load_pixels("mnist", config.data_dir, config.tiny, config.seed)
    if config.tiny:
        x, y = data.tiny_pixels(wanted, config.seed)
    x, y = data.subset(x, y, wanted, config.seed, "--train-size + --validation-size")
    images = lambda pixels: pixels.reshape(-1, 28, 28, 1)
    cut = config.train_size
    return (images(x[:cut]), y[:cut]), (images(x[cut:]), y[cut:]), (images(x_test), y_test)


def plot(curves, rows, path):
    from common import charts

    figure, grid = charts.figure(15, 6.5, rows=2, columns=4)
    panels = grid.ravel()
    for axes, (name, curve) in zip(panels, curves.items()):
        epochs = np.arange(1, len(curve["train"]) + 1)
        axes.plot(epochs, curve["train"], label="train")
        axes.plot(epochs, curve["validation"], label="validation")
        axes.set(title=name, xlabel="epoch", ylim=(0.8, 1.005))
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("accuracy")
    panels[0].legend(loc="lower right")
    gaps = [row["train accuracy"] - row["validation accuracy"] for row in rows]
    panels[-1].barh([row["variant"] for row in rows][::-1], gaps[::-1], color="tab:red")
    panels[-1].set(title="final gap: train - validation", xlabel="accuracy")
    panels[-1].grid(alpha=0.3, axis="x")
    figure.suptitle("Training and validation accuracy of the same network, plain and with each regulariser")
    return charts.save(figure, path, dpi=80)


def run(config):
    import pandas as pd

    splits = load_splits(config)
    report = Report("regularization", config)
    curves, rows = {}, []
    for name, regime in variants(config).items():
        if name not in config.variants:
            continue
        curves[name], row = train_variant(name, regime, config, splits)
        rows.append(row)
    table = pd.DataFrame(rows)
    gap = table["train accuracy"] - table["validation accuracy"]
    table.insert(4, "gap (points)", [f"{points:.1f}" for points in gap * 100])
    plain_gap = gap[table["variant"] == "none"]
    closed = 1 - gap / plain_gap.iloc[0] if len(plain_gap) and plain_gap.iloc[0] > 0 else None
    table.insert(5, "gap closed", "-" if closed is None else [f"{share:.0%}" for share in closed])
    settings = {"weight-decay": f"L2, decay {config.weight_decay:g}", "dropout": f"{config.dropout:g} of hidden units",
                "batch-norm": "after every hidden layer", "early-stopping": f"patience {config.patience} epochs",
                "augmentation": f"±{config.rotation:g}°, ±{config.shift:g} shift, ±{config.zoom:g} zoom",
                "all-together": "all of the above"}
    table.insert(1, "setting", [settings.get(name, "-") for name in table["variant"]])
    report.table("results", table, f"The perceptron {'-'.join(map(str, (784, *HIDDEN_LAYERS, 10)))} on {config.train_size:,} "
                 f"training digits; accuracy on them, on {config.validation_size:,} validation digits and on the test set:",
                 float_format="{:.4f}".format)
    report.picture(plot(curves, rows, report.picture_path("curves")), "training and validation accuracy per variant")
    best, narrowest = table.loc[table["validation accuracy"].idxmax()], table.loc[gap.idxmin()]
    report.note(f"Highest validation accuracy: {best['variant']} ({best['validation accuracy']:.2%}); narrowest gap between "
                f"training and validation accuracy: {narrowest['variant']} ({gap.min() * 100:.1f} points).")
    return report.finish(f"MNIST, {config.train_size:,} training, {config.validation_size:,} validation and "
                         f"{len(splits[2][0]):,} test images; plain SGD at lr {config.lr:g}, batches of {config.batch_size}, "
                         f"at most {config.epochs} epochs")
