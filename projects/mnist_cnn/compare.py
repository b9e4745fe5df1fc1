"""The course's two classic experiments on MNIST: which optimiser, and which initial weights.

Both train the same multi-layer perceptron, 784-100-100-100-100-10 without batch
normalisation (which would hide how the weights start), from the same seed on the
same sequence of batches, once per variant, and record the training loss (mean over
the last steps) and the validation accuracy some forty times along the way.

- `compare-optimizers`: SGD, SGD with momentum, AdaGrad, RMSProp and Adam (ReLU, He
  initialisation), each at the learning rate it is usually run with.
- `compare-init`: all zeros, small random N(0, 0.01²), Xavier (Glorot) and He, each
  with sigmoid and with ReLU units, trained with SGD and momentum. Zeros make every
  unit of a layer compute the same thing forever; small weights make the signal fade
  layer after layer; Xavier keeps its spread for sigmoid and tanh, He for ReLU,
  which zeroes half of it. The histograms of every hidden layer's activations on
  1,000 real digits, before any training, show why.

Each writes `curves.png` (loss and validation accuracy), `results.csv` and (for the
initialisations) `activations.png` into its run folder; `--readme` copies them
into this project's README and assets/.
"""

import shutil
import time
from dataclasses import asdict, dataclass

import numpy as np

from common import cli, runs
from common.config import OPTIMIZERS, FitConfig, option, require_at_least_one
from common.errors import UserError
from projects.mnist_cnn import FOLDER, PROJECT, data

HIDDEN_LAYERS = (100, 100, 100, 100)
POINTS = 40  # measurements along each curve
DPI = 90

# Each at the learning rate it is usually run with (the course's choices).
OPTIMIZER_RATES = {"sgd": 0.01, "momentum": 0.01, "adagrad": 0.01, "rmsprop": 0.001, "adam": 0.001}
INITIALIZER_NAMES = {"zeros": "zeros", "random_normal": "N(0, 0.01²)", "glorot_normal": "Xavier", "he_normal": "He"}
ACTIVATIONS = ("sigmoid", "relu")


@dataclass(frozen=True)
class CompareConfig:
    data_dir: str = option(None, "folder with the dataset files (default: $DATA_DIR, the Keras cache, then download)")
    dataset: str = option("mnist", "which dataset", choices=sorted(data.CLASS_NAMES))
    out: str = option(None, "folder for the pictures and the table (default: runs/mnist_cnn/<command>-<timestamp>)")
    epochs: int = option(5, "epochs per variant")
    batch_size: int = option(128, "examples per training step")
    val_split: float = option(0.1, "fraction of the training set held out to measure validation accuracy")
    seed: int = option(0, "random seed for the weights and the order of the batches, the same for every variant")
    tiny: bool = option(False, "a tiny generated data set, to try the commands in seconds")
    readme: bool = option(False, "copy the pictures and the table into this project's README")

    def __post_init__(self):
        require_at_least_one(self, "epochs", "batch_size")
        if not 0 < self.val_split < 1:
            raise UserError(f"--val-split must be in (0, 1), got {self.val_split}")


@dataclass(frozen=True)
class InitCompareConfig(CompareConfig):
    optimizer: str = option("momentum", "optimizer for every initialisation", choices=OPTIMIZERS)
    # 0.1 rather than the optimiser comparison's 0.01: at 0.01 even well-started sigmoid
    # networks sit on their first plateau for all five epochs, which hides the difference.
    lr: float = option(0.1, "learning rate")


def compare_optimizers(args):
    """The same ReLU network trained by each optimiser: curves, table (and with --readme, the README)."""
    started = time.time()
    config = cli.config_from_args(CompareConfig, args)
    train_split, validation = load_splits(config)
    run_dir = open_folder(config, "compare-optimizers")
    curves, rows = {}, []
    for name, lr in OPTIMIZER_RATES.items():
        optimizer = FitConfig(optimizer=name, lr=lr, lr_schedule="constant", warmup=0.0)
        curves[name], summary = train_variant(name, lambda: perceptron("he_normal", "relu"), optimizer, config, train_split, validation)
        rows.append({"optimizer": name, "learning rate": lr, **summary})
    curves_png = plot_curves(curves, run_dir / "curves.png", "The same ReLU network (He initialisation) trained by each optimiser")
    publish(config, "compare-optimizers", run_dir, rows, [(curves_png, "training loss and validation accuracy per optimiser")], started)
    return run_dir


def compare_init(args):
    """The same network from each initialisation, sigmoid and ReLU: curves, activation histograms, table."""
    started = time.time()
    config = cli.config_from_args(InitCompareConfig, args)
    optimizer = FitConfig(optimizer=config.optimizer, lr=config.lr, lr_schedule="constant", warmup=0.0)
    train_split, validation = load_splits(config)
    run_dir = open_folder(config, "compare-init")
    curves, rows = {}, []
    for activation in ACTIVATIONS:
        for init, shown in INITIALIZER_NAMES.items():
            name = f"{shown} / {activation}"
            build = lambda: perceptron(init, activation)
            curves[name], summary = train_variant(name, build, optimizer, config, train_split, validation)
            rows.append({"initialisation": shown, "activation": activation, **summary})
    colours = dict(zip(INITIALIZER_NAMES.values(), ("tab:grey", "tab:red", "tab:blue", "tab:green")))
    style = lambda name: {"color": colours[name.split(" / ")[0]], "linestyle": "--" if name.endswith("sigmoid") else "-"}
    curves_png = plot_curves(curves, run_dir / "curves.png",
                             f"Each initialisation with sigmoid (dashed) and ReLU (solid) units, {config.optimizer} at lr {config.lr:g}",
                             style, accuracy_range=(0, 1))
    activations_png = plot_activations(train_split[0][:1000], run_dir / "activations.png", config.seed)
    pictures = [(curves_png, "training loss and validation accuracy per initialisation"),
                (activations_png, "histograms of each hidden layer's activations at initialisation")]
    publish(config, "compare-init", run_dir, rows, pictures, started)
    return run_dir


def perceptron(initializer_name, activation):
    """784-100-100-100-100-10; every layer starts from `initializer_name`."""
    # Imported here, not above: the command line reads the configs above without loading TensorFlow.
    import keras
    from keras import layers

    from projects.mnist_cnn.model import initializer

    inputs = keras.Input((28, 28, 1))
    x = layers.Flatten()(layers.Rescaling(1.0 / 255)(inputs))
    for number, units in enumerate(HIDDEN_LAYERS, 1):
        x = layers.Dense(units, activation, kernel_initializer=initializer(initializer_name), name=f"hidden{number}")(x)
    outputs = layers.Dense(10, "softmax", kernel_initializer=initializer(initializer_name), name="classes")(x)
    return keras.Model(inputs, outputs, name=f"mlp_{initializer_name}_{activation}")


def endless_batches(x, y, batch_size, seed):
    """Shuffled batches, epoch after epoch; the same seed gives every variant the same sequence."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x) - batch_size + 1, batch_size):
            picked = order[start : start + batch_size]
            yield x[picked], y[picked]


def train_variant(name, build, optimizer_config, config, train_split, validation):
    """Train one variant from the shared seed; its curve (step, train_loss, val_accuracy) and a summary row."""
    import keras
    import pandas as pd

    from common import backend, training

    started = time.time()
    keras.backend.clear_session()
    backend.set_random_seed(config.seed)
    model = build()
    steps = config.epochs * max(1, len(train_split[0]) // config.batch_size)
    every = max(1, steps // POINTS)
    training.compiled(model, optimizer=training.build_optimizer(optimizer_config, steps), loss="sparse_categorical_crossentropy",
                     metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    # One Keras "epoch" per measurement: the loss it logs is the mean over those steps.
    history = model.fit(
        endless_batches(*train_split, config.batch_size, config.seed),
        steps_per_epoch=every,
        epochs=steps // every,
        validation_data=validation,
        validation_batch_size=1000,
        shuffle=False,  # the generator shuffles
        verbose=0,
    ).history
    curve = pd.DataFrame(
        {"step": every * np.arange(1, len(history["loss"]) + 1), "train_loss": history["loss"], "val_accuracy": history["val_accuracy"]}
    )
    seconds = time.time() - started
    print(f"{name}: training loss {curve.train_loss.iloc[-1]:.4f}, validation accuracy {curve.val_accuracy.iloc[-1]:.4f} ({seconds:.0f} s)")
    summary = {"final train loss": curve.train_loss.iloc[-1], "final val accuracy": curve.val_accuracy.iloc[-1],
               "best val accuracy": curve.val_accuracy.max(), "seconds": round(seconds, 1)}
    return curve, summary


def load_splits(config):
    (x_train, y_train), _ = data.load(config.dataset, config.data_dir, config.tiny, config.seed)  # the test set is not used here
    return data.split_validation(x_train, y_train, config.val_split, config.seed)


def plot_curves(curves, path, title, style=lambda name: {}, accuracy_range=None):
    """Two panels: training loss (log scale) and validation accuracy against training steps."""
    from common import charts

    figure, ((loss_axes, accuracy_axes),) = charts.figure(12, 4.5, rows=1, columns=2)
    for name, curve in curves.items():
        loss_axes.plot(curve.step, curve.train_loss, label=name, **style(name))
        accuracy_axes.plot(curve.step, curve.val_accuracy, label=name, **style(name))
    loss_axes.set(xlabel="training steps", ylabel="training loss (mean since the last point)", yscale="log", title="training loss")
    accuracy_axes.set(xlabel="training steps", ylabel="validation accuracy", ylim=accuracy_range, title="validation accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
    accuracy_axes.legend(loc="lower right", fontsize=8)
    figure.suptitle(title)
    return charts.save(figure, path, dpi=DPI)


def plot_activations(x, path, seed):
    """Rows: initialisation x activation; columns: hidden layers; each a histogram of that layer's outputs."""
    import keras

    from common import backend, charts

    variants = [(init, activation) for activation in ACTIVATIONS for init in INITIALIZER_NAMES]
    figure, grid = charts.figure(2.6 * len(HIDDEN_LAYERS), 1.3 * len(variants), rows=len(variants), columns=len(HIDDEN_LAYERS))
    for row, (init, activation) in enumerate(variants):
        backend.set_random_seed(seed)
        model = perceptron(init, activation)
        probe = keras.Model(model.inputs, [model.get_layer(f"hidden{n}").output for n in range(1, len(HIDDEN_LAYERS) + 1)])
        for column, values in enumerate(probe.predict(x, verbose=0)):
            values = np.asarray(values, np.float64).ravel()
            axes = grid[row, column]
            # Exact zeros (ReLU's off units) are counted in the note, not drawn: they would dwarf the rest.
            nonzero = values[values != 0]
            axes.hist(nonzero, bins=30, range=(0, 1 if activation == "sigmoid" else 1.5), weights=np.full(len(nonzero), 1 / len(values)),
                      color="tab:blue" if activation == "sigmoid" else "tab:orange")
            zero_share = 1 - len(nonzero) / len(values)
            note = f"sd {values.std():.2g}" + (f", {zero_share:.0%} zero" if zero_share >= 0.01 else "")
            axes.text(0.98, 0.92, note, transform=axes.transAxes, ha="right", va="top", fontsize=7)
            axes.set_yticks([])
            axes.tick_params(labelsize=7)
            if row == 0:
                axes.set_title(f"hidden layer {column + 1}", fontsize=9)
            if column == 0:
                axes.set_ylabel(f"{INITIALIZER_NAMES[init]}\n{activation}", fontsize=8)
    figure.suptitle(f"Activations of each hidden layer at initialisation, {len(x):,} training digits", fontsize=11)
    return charts.save(figure, path, dpi=DPI)


def open_folder(config, command):
    from common import backend

    run_dir = runs.new_run_dir(PROJECT, config.out, prefix=f"{command}-")
    runs.write_json(run_dir / "config.json", {"config": asdict(config), "backend": backend.name(), "versions": backend.versions()})
    return run_dir


def publish(config, command, run_dir, rows, pictures, started):
    """Write the table of `rows`; with --readme also into the README, the pictures into assets/."""
    import pandas as pd

    from common import backend
    from common.report import markdown_table, update_readme

    table = pd.DataFrame(rows)
    table.to_csv(run_dir / "results.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"pictures and results.csv in {run_dir}")
    if config.readme and config.tiny:
        print("the README keeps its figures: a --tiny run is no measurement")
    if not config.readme or config.tiny:
        return
    links = []
    for picture, caption in pictures:
        asset = FOLDER / "assets" / f"{command.replace('-', '_')}_{picture.name}"
        asset.parent.mkdir(exist_ok=True)
        shutil.copy(picture, asset)
        links.append(f"![{caption}](assets/{asset.name})")
    measured = (f"Measured by `make {command}` in {(time.time() - started) / 60:.1f} min on {backend.describe_device()} "
                f"({backend.name()}); {config.epochs} epochs of batches of {config.batch_size} per variant, "
                f"validation on {config.val_split:.0%} of the training set.")
    update_readme(FOLDER / "README.md", command, "\n\n".join([*links, markdown_table(table), measured]))
