"""Pretraining and fine-tuning: features learnt on clothes, reused to read digits from few labels.

A small convnet learns Fashion-MNIST (60,000 labelled clothes). Its convolutional
blocks then become the feature extractor of a digit classifier trained on a small
labelled subset of MNIST (100 or 1,000 digits), in two phases:

1. frozen features: only the new classification layer learns, the pretrained blocks
   stay as they are;
2. fine-tuning: the top blocks are unfrozen and learn too, at a lower learning rate,
   so that the few labels adjust the features without wiping out what they hold.

Against it: the same network trained from random weights on the same digits for as
many steps. Each is run from several seeds (a different subset of digits each);
the test accuracy is on all 10,000 MNIST test digits.

Users' own images: `finetune --images DIR` (one subfolder per class) does the same
with a Keras ImageNet backbone (`--backbone mobilenet_v3_small`): its weights are
downloaded by Keras once, or `--weights random` starts from random ones. Its batch
normalisation layers stay frozen when blocks are unfrozen: their statistics come
from ImageNet, and a small set's batches would overwrite them.
"""

import re
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from common.config import option, require_at_least_one, require_fraction
from common.errors import UserError, warn
from projects.foundations import data
from projects.foundations.experiment import ExperimentConfig, Report
from projects.foundations.regularization import accuracy

BACKBONES = ("mobilenet_v3_small", "mobilenet_v3_large")
WEIGHTS = ("imagenet", "random")
# A block: the layers whose names start alike (the MNIST convnet's block1..4; MobileNetV3's
# stem "conv", its "expanded_conv", "expanded_conv_1".. and its last "conv_1").
BLOCK_NAME = re.compile(r"^(block\d+|expanded_conv(?:_\d+)?|conv_1|conv)(?:_|$)")
PRETRAIN_BATCH = 128
TINY = {"sizes": (100, 400)}  # --tiny generates 600 training digits


@dataclass(frozen=True)
class Config(ExperimentConfig):
    data_dir: str = option(None, "folder with the MNIST and Fashion-MNIST files (default: $DATA_DIR, the Keras cache, then download)")
    sizes: tuple = option((100, 1000), "labelled MNIST digits to fine-tune on, one run per size and seed", nargs="+", type=int)
    seeds: int = option(3, "seeds per size (--seed, --seed + 1, ...): each a different subset and initialisation")
    pretrain_epochs: int = option(2, "epochs on all of Fashion-MNIST")
    frozen_steps: int = option(300, "training steps with the pretrained blocks frozen (only the new classifier learns)")
    unfrozen_steps: int = option(300, "training steps with the top blocks unfrozen, at --finetune-lr")
    unfreeze: int = option(2, "top blocks unfrozen in the second phase")
    lr: float = option(1e-3, "Adam's learning rate for pretraining, the frozen phase and training from scratch")
    finetune_lr: float = option(1e-4, "Adam's learning rate once blocks are unfrozen")
    batch_size: int = option(32, "images per step on the small labelled sets")
    images: str = option(None, "your own images instead of MNIST: a folder with one subfolder of images per class")
    backbone: str = option("mobilenet_v3_small", "with --images: the Keras ImageNet network to fine-tune", choices=BACKBONES)
    weights: str = option("imagenet", "with --images: the backbone's starting weights (imagenet: Keras downloads them once)",
                          choices=WEIGHTS)
    image_size: int = option(224, "with --images: images are cropped and resized to this many pixels square (at least 32)")
    val_split: float = option(0.2, "with --images: share of the images held out to measure accuracy")

    def __post_init__(self):
        require_at_least_one(self, "seeds", "pretrain_epochs", "batch_size", "unfreeze")
        for name in ("frozen_steps", "unfrozen_steps"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if not self.sizes or min(self.sizes) < 1:
            raise UserError(f"--sizes must be at least 1, got {' '.join(map(str, self.sizes)) or 'none'}")
        for name in ("lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.backbone not in BACKBONES:
            raise UserError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.weights not in WEIGHTS:
            raise UserError(f"--weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        if self.image_size < 32:
            raise UserError(f"--image-size must be at least 32, got {self.image_size}")
        require_fraction(self, "val_split")


# --- Networks and their blocks ----------------------------------------------------------------


def mnist_features():
    """The convnet's feature extractor: raw 0-255 pixels (28, 28, 1) in, 7 x 7 x 64 features out; three blocks."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(16, 5, padding="same", activation="relu", name="block1_conv"),
        layers.MaxPooling2D(name="block1_pool"),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="block2_conv"),
        layers.MaxPooling2D(name="block2_pool"),
        layers.Conv2D(64, 3, padding="same", activation="relu", name="block3_conv"),
        layers.MaxPooling2D(name="block3_pool"),
        layers.Flatten(),
    ], name="features")


def backbone_features(name, weights, image_size):
    """A Keras ImageNet network without its classifier, averaged to one feature vector; 0-255 RGB in."""
    import keras

    make = {"mobilenet_v3_small": keras.applications.MobileNetV3Small,
            "mobilenet_v3_large": keras.applications.MobileNetV3Large}[name]
    settings = {"input_shape": (image_size, image_size, 3), "include_top": False, "pooling": "avg", "name": "features"}
    if weights == "random":
        return make(weights=None, **settings)
    try:
        with warnings.catch_warnings():
            # The convolutional weights fit any image size; Keras warns whenever it is not 224.
            warnings.filterwarnings("ignore", message=".*Weights for input shape .* will be loaded as the default")
            return make(weights="imagenet", **settings)
    except Exception as error:  # no network, a proxy, a broken download: all end the same way for the user
        reason = " ".join(str(error).split())
        raise UserError(f"could not download the ImageNet {name} weights ({type(error).__name__}: {reason}); "
                        "run once where Keras can download them (it keeps them in ~/.keras/models) or use --weights random") from None


def classifier(features, classes):
    """`features` followed by a new softmax layer over `classes`."""
    import keras
    from keras import layers

    return keras.Sequential([features, layers.Dense(classes, activation="softmax", name="classes")])


def blocks(features):
    """The feature extractor's blocks, bottom to top: [(name, [layers with weights])]."""
    grouped = {}
    for layer in features.layers:
        match = BLOCK_NAME.match(layer.name)
        if match and layer.weights:
            grouped.setdefault(match.group(1), []).append(layer)
    return list(grouped.items())


def top_blocks(features, count):
    """The top `count` of `blocks(features)`; a clear error when there are fewer."""
    found = blocks(features)
    if count > len(found):
        raise UserError(f"--unfreeze {count}: the network has only {len(found)} blocks")
    return found[len(found) - count :]


def freeze_features(model):
    """Phase 1: the whole feature extractor frozen; only the new classifier learns."""
    model.get_layer("features").trainable = False


def unfreeze_top(model, count):
    """Phase 2: the top `count` blocks learn; lower blocks, and every batch normalisation, stay frozen.
    Returns the names of the unfrozen blocks."""
    import keras

    features = model.get_layer("features")
    unfrozen = top_blocks(features, count)
    features.trainable = True
    for layer in features.layers:
        layer.trainable = False
    for _, block_layers in unfrozen:
        for layer in block_layers:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    return [name for name, _ in unfrozen]


def compiled(model, lr):
    """Compiled (again) with Adam at `lr`: Keras reads which layers are trainable when it compiles."""
    import keras

    from common import training
    from common.config import FitConfig

    settings = FitConfig(optimizer="adam", lr=lr, lr_schedule="constant", warmup=0.0)
    return training.compiled(model, optimizer=training.build_optimizer(settings, 1), loss="sparse_categorical_crossentropy",
                             metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


def batches(x, y, batch_size, seed):
    """Shuffled batches of (x, y), pass after pass; all of one size (a smaller one would compile a second step)."""
    rng, size = np.random.default_rng(seed), min(batch_size, len(x))
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x) - size + 1, size):
            yield x[order[start : start + size]], y[order[start : start + size]]


def train(model, lr, training_split, steps, config):
    """`steps` steps of Adam at `lr` on whatever part of `model` is trainable now."""
    if steps:
        compiled(model, lr).fit(batches(*training_split, config.batch_size, config.seed), steps_per_epoch=steps, epochs=1,
                                shuffle=False, verbose=0)


def train_frozen(model, config, training_split):
    """Phase 1: the classifier alone learns, at --lr."""
    freeze_features(model)
    train(model, config.lr, training_split, config.frozen_steps, config)


def train_unfrozen(model, config, training_split):
    """Phase 2: the top --unfreeze blocks learn too, at --finetune-lr; returns their names."""
    unfrozen = unfreeze_top(model, config.unfreeze)
    train(model, config.finetune_lr, training_split, config.unfrozen_steps, config)
    return unfrozen


def fresh(features, seed, classes=10):
    """A new classifier over `features` (a function building them), its random weights from `seed`."""
    import keras

    from common import backend

    keras.backend.clear_session()
    backend.set_random_seed(seed)
    return classifier(features(), classes)


# --- The experiment on MNIST -----------------------------------------------------------------


def images(pixels):
    return pixels.reshape(-1, 28, 28, 1)


def pretrain(config, clothes, clothes_test):
    """The convnet trained on Fashion-MNIST; (its feature extractor's weights, its test accuracy, seconds)."""
    started = time.time()
    model = fresh(mnist_features, config.seed)
    compiled(model, config.lr).fit(*clothes, batch_size=PRETRAIN_BATCH, epochs=config.pretrain_epochs, verbose=0)
    score, seconds = accuracy(model, *clothes_test), time.time() - started
    print(f"pretrained on {len(clothes[0]):,} Fashion-MNIST images: test accuracy {score:.4f} ({seconds:.0f} s)", flush=True)
    return model.get_layer("features").get_weights(), score, seconds


def compare(config, pretrained, digits, test, size, seed):
    """On `size` digits drawn with `seed`: the test accuracy of the frozen features, fine-tuned, and from scratch."""
    x, y = data.subset(*digits, size, seed, "--sizes")
    config = replace(config, seed=seed)  # the order of the batches too
    tuned = fresh(mnist_features, seed)
    tuned.get_layer("features").set_weights(pretrained)
    train_frozen(tuned, config, (x, y))
    frozen_score = accuracy(tuned, *test)
    train_unfrozen(tuned, config, (x, y))
    tuned_score = accuracy(tuned, *test)
    scratch = fresh(mnist_features, seed)
    train(scratch, config.lr, (x, y), config.frozen_steps + config.unfrozen_steps, config)
    scores = {"from scratch": accuracy(scratch, *test), "pretrained, frozen": frozen_score, "pretrained, fine-tuned": tuned_score}
    print(f"{size} digits, seed {seed}: " + ", ".join(f"{method} {score:.4f}" for method, score in scores.items()), flush=True)
    return [{"digits": size, "seed": seed, "method": method, "test accuracy": score} for method, score in scores.items()]


def plot(results, path):
    from common import charts

    sizes, methods = sorted(results["digits"].unique()), list(dict.fromkeys(results["method"]))
    figure, ((axes,),) = charts.figure(8, 4.5)
    width = 0.8 / len(methods)
    for number, method in enumerate(methods):
        for place, size in enumerate(sizes):
            scores = results[(results["digits"] == size) & (results["method"] == method)]["test accuracy"]
            x = place + (number - (len(methods) - 1) / 2) * width
            axes.bar(x, scores.mean(), width * 0.9, color=f"C{number}", alpha=0.6, label=method if place == 0 else None)
            axes.plot(np.full(len(scores), x), scores, "o", color=f"C{number}", markersize=4)
    axes.set_xticks(range(len(sizes)), [f"{size:,} labelled digits" for size in sizes])
    low = results["test accuracy"].min()
    axes.set(ylabel="MNIST test accuracy", ylim=(max(0.0, low - 0.05), 1.0),
             title="Features pretrained on Fashion-MNIST against training from scratch (dots: seeds)")
    axes.grid(alpha=0.3, axis="y")
    axes.legend(loc="upper left")
    return charts.save(figure, path, dpi=90)


def run(config):
    import pandas as pd

    if config.images:
        return run_on_folder(config)
    (x_clothes, y_clothes), clothes_test = data.load_pixels("fashion-mnist", config.data_dir, config.tiny, config.seed)
    (x_digits, y_digits), (x_test, y_test) = data.load_pixels("mnist", config.data_dir, config.tiny, config.seed)
    if max(config.sizes) > len(x_digits):
        raise UserError(f"--sizes {max(config.sizes)} is larger than the data set ({len(x_digits):,} training digits)")
    unfrozen = ", ".join(name for name, _ in top_blocks(mnist_features(), config.unfreeze))  # before any training
    report = Report("finetune", config)
    pretrained, clothes_score, pretrain_seconds = pretrain(config, (images(x_clothes), y_clothes), (images(clothes_test[0]), clothes_test[1]))
    seeds = range(config.seed, config.seed + config.seeds)
    results = pd.DataFrame([row for size in config.sizes for seed in seeds
                            for row in compare(config, pretrained, (images(x_digits), y_digits), (images(x_test), y_test), size, seed)])
    summary = results.groupby(["digits", "method"], sort=False)["test accuracy"].agg(["mean", "std", "min", "max"]).reset_index()
    summary.columns = ["labelled digits", "method", "mean test accuracy", "std", "lowest", "highest"]
    report.note(f"Pretraining: the convnet (blocks {', '.join(name for name, _ in blocks(mnist_features()))}) on all "
                f"{len(x_clothes):,} Fashion-MNIST images for {config.pretrain_epochs} epochs, {pretrain_seconds:.0f} s: "
                f"{clothes_score:.2%} on its test set.")
    report.table("results", summary,
                 f"MNIST test accuracy ({len(x_test):,} digits) over {config.seeds} seeds per size. *Frozen*: the pretrained "
                 f"blocks frozen, a new classifier trained for {config.frozen_steps} steps at lr {config.lr:g}; *fine-tuned*: "
                 f"then {unfrozen} unfrozen for {config.unfrozen_steps} more steps at lr {config.finetune_lr:g}; *from scratch*: "
                 f"the same network from random weights, {config.frozen_steps + config.unfrozen_steps} steps at lr {config.lr:g}.",
                 float_format="{:.4f}".format)
    report.picture(plot(results, report.picture_path("accuracy")), "test accuracy per method and number of labelled digits")
    means = results.groupby(["digits", "method"])["test accuracy"].mean()
    report.note(" ".join(f"On {size:,} digits, fine-tuned minus from scratch: "
                         f"{(means[size, 'pretrained, fine-tuned'] - means[size, 'from scratch']) * 100:+.1f} points (mean over seeds)."
                         for size in sorted(set(config.sizes))))
    return report.finish(f"Fashion-MNIST to pretrain, MNIST subsets to fine-tune; Adam, batches of {config.batch_size}")


# --- Users' own images -------------------------------------------------------------------------


def read_class_folders(folder, size):
    """(images (N, size, size, 3) uint8, labels, class names) from a folder with one subfolder of images per class.

    Files that cannot be read are skipped with one warning that counts them.
    """
    from common.images import IMAGE_SUFFIXES, fit, open_image

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--images {folder} is not a folder")
    classes = sorted(d for d in folder.iterdir()
                     if d.is_dir() and any(f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir()))
    if len(classes) < 2:
        raise UserError(f"--images {folder} holds {len(classes)} subfolder(s) with images; fine-tuning needs at least two "
                        "classes, one subfolder of images each")
    pictures, labels, skipped = [], [], []
    for label, class_folder in enumerate(classes):
        for path in sorted(f for f in class_folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES):
            try:
                pictures.append(np.asarray(fit(open_image(path), (size, size))))
                labels.append(label)
            except UserError as error:
                skipped.append(str(error))
    if skipped:
        warn(f"{len(skipped)} of {len(skipped) + len(pictures)} image files could not be read and were skipped (first: {skipped[0]})")
    empty = [d.name for number, d in enumerate(classes) if number not in labels]
    if empty:
        raise UserError(f"--images {folder}: no readable image in {', '.join(empty)}")
    return np.stack(pictures), np.array(labels), [d.name for d in classes]


def run_on_folder(config):
    """The two phases on the user's images with an ImageNet backbone; the model and a table in the run folder."""
    import pandas as pd

    from common import datasets, runs
    from projects.foundations import PROJECT

    x, y, class_names = read_class_folders(config.images, config.image_size)
    kept, held = datasets.holdout(len(x), config.val_split, config.seed)
    training_split, validation = (x[kept], y[kept]), (x[held], y[held])
    print(f"{len(x)} images in {len(class_names)} classes ({', '.join(class_names)}): {len(kept)} to train on, "
          f"{len(held)} to validate on", flush=True)
    model = fresh(lambda: backbone_features(config.backbone, config.weights, config.image_size), config.seed, len(class_names))
    top_blocks(model.get_layer("features"), config.unfreeze)  # an impossible --unfreeze stops before any training
    if config.readme:
        print("the README keeps its figures: it records the MNIST experiment, and these results stay in the run folder")
    report = Report("finetune", replace(config, readme=False))
    scores = []
    train_frozen(model, config, training_split)
    scores.append({"phase": f"frozen {config.backbone}, new classifier", "steps": config.frozen_steps, "learning rate": config.lr,
                   "validation accuracy": accuracy(model, *validation, config.batch_size) if len(held) else None})
    unfrozen = train_unfrozen(model, config, training_split)
    scores.append({"phase": f"top blocks unfrozen: {', '.join(unfrozen)}", "steps": config.unfrozen_steps,
                   "learning rate": config.finetune_lr, "validation accuracy": accuracy(model, *validation, config.batch_size) if len(held) else None})
    report.table("phases", pd.DataFrame(scores), f"{config.backbone} ({config.weights} weights) fine-tuned on {config.images}:")
    model_path = runs.save_model(model, report.folder / "model.keras", PROJECT)
    runs.write_json(report.folder / "classes.json", class_names)
    print(f"model: {model_path}")
    return report.finish(f"{len(x)} images of {config.images}")
