"""Training and evaluation of the MNIST convnet.

`train` fits the model with the shared callbacks (resumable, logged), scores it on
the test set once at the end (unless told not to: tune's trials are scored on
validation data only) and writes the run's summary and a picture of test digits
with their predicted labels, mistakes framed in red. `evaluate` re-scores a saved
model in depth (per-class accuracy, confusion matrix, the digits it gets wrong).
"""

import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from common import cli, images, runs
from common.config import FitConfig, check_choice, distribute_option, mixed_precision_option, option, require_fraction
from common.errors import UserError
from projects.mnist_cnn import PROJECT, data

# How the kernels can start (model.initializer builds them). glorot_uniform is Xavier and
# Keras' default; he_* suit ReLU; random_normal is the classic small start, N(0, 0.01²),
# whose signal fades layer after layer; zeros make every unit of a layer the same forever.
INITIALIZERS = ("glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "random_normal", "zeros")


@dataclass(frozen=True)
class Config(FitConfig):
    SEVERAL_PROCESSES = True  # --distribute spans a group of processes too (common.distributed)

    dataset: str = option("mnist", "which dataset", choices=sorted(data.CLASS_NAMES))
    epochs: int = option(20, "training epochs")
    batch_size: int = option(256, "examples per training step")
    lr: float = option(4e-3, "peak learning rate")
    val_split: float = option(0.05, "fraction of the training set held out for validation")
    augment: bool = option(True, "random rotations, shifts and zooms of training images")
    rotation: float = option(10.0, "largest random rotation, degrees")
    shift: float = option(0.1, "largest random shift, fraction of the image size")
    zoom: float = option(0.1, "largest random zoom, fraction")
    flip: bool = option(False, "random horizontal flips (clothes, not digits)")
    dropout: float = option(0.4, "dropout before the classifier (half of it after the convolutions)")
    initializer: str = option("glorot_uniform", "how the kernels start (random_normal: N(0, 0.01²))", choices=INITIALIZERS)
    batch_norm: bool = option(True, "batch normalisation after every convolution and the dense layer")
    mixed_precision: bool = mixed_precision_option()
    distribute: bool = distribute_option()

    def __post_init__(self):
        super().__post_init__()
        check_choice("--initializer", self.initializer, INITIALIZERS)
        require_fraction(self, "dropout")


# Per-dataset starting points under the flags. Clothes are centred and upright, so the
# only distortion that helps is a mirror image; shifts, turns and zooms cost accuracy.
PRESETS = {"mnist": {}, "fashion-mnist": {"flip": True, "rotation": 0.0, "shift": 0.0, "zoom": 0.0, "dropout": 0.3}}


def train(config, resume_dir=None):
    """Train the convnet `config` describes in a new run folder (or continue `resume_dir`); returns the folder."""
    # Imported here, not above: `--help` and argument errors answer without loading TensorFlow.
    from common import backend, callbacks, distributed

    started = time.time()
    (x_train, y_train), (x_test, y_test) = data.load(config.dataset, config.data_dir, config.tiny, config.seed)
    (x_train, y_train), validation = data.split_validation(x_train, y_train, config.val_split, config.seed)
    sizes = {"train_images": len(x_train), "validation_images": 0 if validation is None else len(validation[0]),
             "test_images": len(x_test)}
    run_dir = cli.open_run(PROJECT, config, resume_dir, resolved=sizes)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    print(f"{config.dataset}{' (tiny)' if config.tiny else ''}: {sizes['train_images']} train, "
          f"{sizes['validation_images']} validation, {sizes['test_images']} test images; "
          f"backend {backend.name()}, {backend.describe_device()}")

    scope, replicas = backend.distribution_scope(config.distribute)
    with scope:
        model = compiled_model(config, config.epochs * steps_per_epoch)
    if replicas > 1:
        print(f"training on {replicas} replicas")
        x_train, y_train, x_test, y_test = backend.fit_to_replicas(replicas, config.batch_size, x_train, y_train, x_test, y_test)
        if validation:
            validation = backend.fit_to_replicas(replicas, config.batch_size, *validation)
    run_callbacks, throughput = callbacks.standard(
        run_dir, steps_per_epoch, len(x_train), monitor="val_accuracy" if validation else None, patience=config.early_stopping
    )
    training_data = {"x": x_train, "y": y_train, "batch_size": config.batch_size}
    if config.distribute:  # each process reads its share of every global batch, in one seeded order
        shares, steps, feeding = distributed.fit_input((x_train, y_train), config.batch_size, config.epochs, config.seed, model)
        training_data = {"x": shares, "steps_per_epoch": steps, "shuffle": False}
        run_callbacks = feeding + run_callbacks
    model.fit(**training_data, epochs=config.epochs, validation_data=validation,
              callbacks=run_callbacks, verbose=1 if sys.stdout.isatty() else 2)
    if callbacks.diverged(model, run_callbacks):
        raise UserError(f"training stopped early (loss became NaN); try a lower --lr. Run kept in {run_dir}")
    backend.localize(model)
    runs.save_model(model, run_dir / "model.keras", PROJECT)

    metrics = score_test_set(model, x_test, y_test, config.dataset, run_dir) if config.final_test else {}
    cli.finish_run(run_dir, config, started, throughput, metrics, resumed=resume_dir is not None, replicas=replicas,
                   parameters=model.count_params())
    print(f"run saved in {run_dir}")
    return run_dir


def preset(chosen):
    """The dataset's settings under the flags (`chosen`: the settings typed or read so far)."""
    return PRESETS.get(chosen.get("dataset", "mnist"), {})


def compiled_model(config, total_steps):
    """The convnet, compiled with the optimiser and schedule the config names (common/training.py)."""
    import keras

    from common import training
    from projects.mnist_cnn.model import build_model

    model = build_model(config)
    return training.compiled(model, optimizer=training.build_optimizer(config, total_steps), loss="sparse_categorical_crossentropy",
                            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


def score_test_set(model, x_test, y_test, dataset, run_dir):
    """Score the test set once, draw its first digits with their predictions; the metrics for summary.json."""
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    prediction_grid(model, x_test, y_test, data.CLASS_NAMES[dataset], run_dir / "samples" / "test_predictions.png")
    print(f"test accuracy {test_accuracy:.4f}, loss {test_loss:.4f}")
    return {"test_accuracy": test_accuracy, "test_loss": test_loss}


def prediction_grid(model, x, y, class_names, path, count=100):
    """The first `count` images captioned with their predicted class, mistakes framed in red."""
    predicted = model.predict(x[:count], verbose=0).argmax(1)
    captions = [class_names[p][:5] for p in predicted]
    picture = images.grid(x[:count, ..., 0], columns=10, captions=captions, marked=predicted != y[:count], scale=2)
    return images.save_image(picture, path)


def evaluate(args):
    """Accuracy, per-class accuracy and confusion matrix of a saved model on the test set, and pictures of its mistakes."""
    import pandas as pd

    path = runs.model_path(PROJECT, args.model)
    model = runs.load_model(path, PROJECT)  # first: another project's model is refused before its config is read
    saved = runs.run_config(path)
    dataset = args.dataset or saved.get("dataset", "mnist")
    _, (x_test, y_test) = data.load(dataset, args.data_dir, args.tiny, saved.get("seed", 0))
    predicted = model.predict(x_test, batch_size=1000, verbose=0).argmax(1)
    names = data.CLASS_NAMES[dataset]
    accuracy = float((predicted == y_test).mean())

    confusion = pd.crosstab(
        pd.Categorical([names[i] for i in y_test], names), pd.Categorical([names[i] for i in predicted], names),
        rownames=["true"], colnames=["predicted"], dropna=False,
    )
    per_class = pd.DataFrame({"images": confusion.sum(axis=1), "accuracy": np.diag(confusion) / confusion.sum(axis=1).clip(lower=1)})
    print(f"{dataset} test set, {len(y_test)} images: accuracy {accuracy:.4f} ({int((predicted != y_test).sum())} errors)")
    print("\nper class:\n" + per_class.to_string(float_format=lambda v: f"{v:.4f}"))
    print("\nconfusion matrix:\n" + confusion.to_string())

    out_dir = path.parent
    grid = prediction_grid(model, x_test, y_test, names, out_dir / "samples" / "evaluation.png")
    wrong = np.flatnonzero(predicted != y_test)[:60]
    if len(wrong):
        captions = [f"{names[y_test[i]][:3]}>{names[predicted[i]][:3]}" for i in wrong]
        mistakes = images.grid(x_test[wrong, ..., 0], columns=12, captions=captions, scale=2)
        images.save_image(mistakes, out_dir / "samples" / "mistakes.png")
    runs.write_json(
        out_dir / "evaluation.json",
        {"dataset": dataset, "images": len(y_test), "accuracy": accuracy,
         "per_class_accuracy": per_class["accuracy"].round(4).to_dict(), "model": str(path)},
    )
    print(f"\nsaved {out_dir / 'evaluation.json'}, {grid} and {out_dir / 'samples' / 'mistakes.png'}")
