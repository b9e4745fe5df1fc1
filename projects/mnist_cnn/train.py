"""Training, evaluation and prediction for the MNIST convnet.

`train` fits the model with the shared callbacks (resumable, logged), scores it on
the test set once at the end (unless told not to: tune's trials are scored on
validation data only) and writes the run's summary and a picture of test digits
with their predicted labels, mistakes framed in red. `evaluate` re-scores a
saved model in depth (per-class accuracy, confusion matrix); `predict` reads
users' own image files.
"""

import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common import backend, callbacks, cli, images, runs, training
from common.cli import option
from common.errors import UserError
from projects.mnist_cnn import data
from projects.mnist_cnn.model import INITIALIZERS, build_model

PROJECT = "mnist_cnn"


@dataclass
class Config(training.TrainingConfig):
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
    initializer: str = option("glorot_uniform", "how the kernels start (random_normal: N(0, 0.01²))", choices=sorted(INITIALIZERS))
    batch_norm: bool = option(True, "batch normalisation after every convolution and the dense layer")

    def __post_init__(self):
        super().__post_init__()
        training.check_choice("--initializer", self.initializer, sorted(INITIALIZERS))
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")


# Per-dataset starting points under the flags. Clothes are centred and upright, so the
# only distortion that helps is a mirror image; shifts, turns and zooms cost accuracy.
PRESETS = {"mnist": {}, "fashion-mnist": {"flip": True, "rotation": 0.0, "shift": 0.0, "zoom": 0.0, "dropout": 0.3}}


def split_validation(x, y, fraction, seed):
    if fraction <= 0:
        return (x, y), None
    order = np.random.default_rng(seed).permutation(len(x))
    cut = max(1, int(round(len(x) * fraction)))
    held, kept = order[:cut], order[cut:]
    return (x[kept], y[kept]), (x[held], y[held])


def prediction_grid(model, x, y, class_names, path, count=100):
    probabilities = model.predict(x[:count], verbose=0)
    predicted = probabilities.argmax(1)
    captions = [class_names[p][:5] for p in predicted]
    picture = images.grid(x[:count, ..., 0], columns=10, captions=captions, marked=predicted != y[:count], scale=2)
    return images.save_image(picture, path)


def preset(chosen):
    return PRESETS.get(chosen.get("dataset", "mnist"), {})


def train(args):
    started = time.time()
    config, resume_dir = cli.resolve_config(PROJECT, Config, args, defaults=preset)
    (x_train, y_train), (x_test, y_test) = data.load(config)
    run_dir = cli.open_run(PROJECT, config, resume_dir)
    (x_train, y_train), validation = split_validation(x_train, y_train, config.val_split, config.seed)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    print(f"{config.dataset}{' (tiny)' if config.tiny else ''}: {len(x_train)} train, "
          f"{0 if validation is None else len(validation[0])} validation, {len(x_test)} test images; "
          f"backend {backend.name()}, {backend.describe_device()}")

    scope, replicas = backend.distribution_scope(config.distribute)
    with scope:
        model = build_model(config)
        model.compile(
            optimizer=training.build_optimizer(config, config.epochs * steps_per_epoch),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    if replicas > 1:
        print(f"training on {replicas} replicas")
        x_train, y_train, x_test, y_test = backend.fit_to_replicas(replicas, config.batch_size, x_train, y_train, x_test, y_test)
        if validation:
            validation = backend.fit_to_replicas(replicas, config.batch_size, *validation)
    run_callbacks, throughput = callbacks.standard(
        run_dir, steps_per_epoch, len(x_train), monitor="val_accuracy" if validation else None, patience=config.early_stopping
    )
    model.fit(
        x_train,
        y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=validation,
        callbacks=run_callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if callbacks.diverged(model, run_callbacks):
        raise UserError(f"training stopped early (loss became NaN); try a lower --lr. Run kept in {run_dir}")
    runs.save_model(model, run_dir / "model.keras")

    metrics = {}
    if config.final_test:
        test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
        metrics = {"test_accuracy": test_accuracy, "test_loss": test_loss}
        prediction_grid(model, x_test, y_test, data.CLASS_NAMES[config.dataset], run_dir / "samples" / "test_predictions.png")
        print(f"test accuracy {test_accuracy:.4f}, loss {test_loss:.4f}")
    cli.finish_run(
        run_dir,
        config,
        started,
        throughput,
        metrics,
        resumed=resume_dir is not None,
        replicas=replicas,
        parameters=model.count_params(),
    )
    print(f"run saved in {run_dir}")
    return run_dir


def evaluate(args):
    path = runs.model_path(PROJECT, args.model)
    saved = runs.run_config(path)
    config = Config(
        dataset=args.dataset or saved.get("dataset", "mnist"),
        data_dir=args.data_dir,
        tiny=args.tiny,
        seed=saved.get("seed", 0),
    )
    model = runs.load_model(path)
    _, (x_test, y_test) = data.load(config)
    probabilities = model.predict(x_test, batch_size=1000, verbose=0)
    predicted = probabilities.argmax(1)
    names = data.CLASS_NAMES[config.dataset]
    accuracy = float((predicted == y_test).mean())

    confusion = pd.crosstab(
        pd.Categorical([names[i] for i in y_test], names), pd.Categorical([names[i] for i in predicted], names),
        rownames=["true"], colnames=["predicted"], dropna=False,
    )
    per_class = pd.DataFrame(
        {"images": confusion.sum(1), "accuracy": np.diag(confusion) / confusion.sum(1).clip(lower=1)}
    )
    print(f"{config.dataset} test set, {len(y_test)} images: accuracy {accuracy:.4f} ({int((predicted != y_test).sum())} errors)")
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
        {"dataset": config.dataset, "images": len(y_test), "accuracy": accuracy,
         "per_class_accuracy": per_class["accuracy"].round(4).to_dict(), "model": str(path)},
    )
    print(f"\nsaved {out_dir / 'evaluation.json'}, {grid} and {out_dir / 'samples' / 'mistakes.png'}")


def predict(args):
    path = runs.model_path(PROJECT, args.model)
    dataset = runs.run_config(path).get("dataset", "mnist")
    names = data.CLASS_NAMES[dataset]
    prepared, kept, failures = [], [], 0
    for file in images.expand_inputs(args.inputs):
        try:
            prepared.append(data.prepare(images.open_image(file, "L"), dataset))
            kept.append(file)
        except UserError as error:
            message = str(error)
            print(f"error: {message if message.startswith(str(file)) else f'{file}: {message}'}", file=sys.stderr)
            failures += 1
    if prepared:
        model = runs.load_model(path)
        probabilities = model.predict(np.stack(prepared)[..., None], verbose=0)
        for file, row in zip(kept, probabilities):
            print(f"{file}\t{names[row.argmax()]}\t{row.max():.4f}")
    return 1 if failures else 0
