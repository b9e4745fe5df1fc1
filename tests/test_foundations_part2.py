"""The foundations' network experiments on tiny data: scratch, regularization and finetune.

The hand-written network's gradients against central differences (and a deliberately
broken backward pass caught), the course's optimisers against Keras', the
regularisation variants each changing only its own setting, the fine-tuning schedule
freezing and unfreezing exactly its blocks, and every experiment end to end.
"""

from dataclasses import asdict

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import assert_one_line_error, fake_mnist, run_command, run_subprocess
from projects.foundations import finetune, regularization, scratch

FOUNDATIONS = "projects.foundations"
ON_JAX = keras.backend.backend() == "jax"
# What only TensorFlow runs end to end: under JAX, XLA compiles every network for minutes on two
# cores, and the Keras steps in these runs are the ones the tests above run under JAX as well.
TENSORFLOW_ONLY = pytest.mark.skipif(ON_JAX, reason="its Keras steps are tested under JAX above; compiling all of it takes minutes")


# --- scratch -------------------------------------------------------------------------------


def small_problem(seed=0, count=200, inputs=20, classes=4):
    """A small net and inputs it can learn: the label is the argmax of a random projection."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, inputs))
    labels = np.argmax(x @ rng.normal(size=(inputs, classes)), axis=1)
    return scratch.TwoLayerNet(inputs, 8, classes, seed), x, labels


@pytest.mark.backend_independent
def test_the_gradient_check_passes_on_the_network():
    net, x, labels = small_problem()
    errors = scratch.gradient_check(net, x[:5], labels[:5])
    assert set(errors) == {"W1", "b1", "W2", "b2"}
    assert max(errors.values()) < scratch.GRADIENT_TOLERANCE, errors


@pytest.mark.backend_independent
@pytest.mark.parametrize("broken", ["relu passes every gradient", "softmax forgets the batch mean"])
def test_the_gradient_check_fails_when_a_backward_pass_is_broken(broken, monkeypatch):
    if broken == "relu passes every gradient":
        monkeypatch.setattr(scratch.Relu, "backward", lambda self, upstream: upstream)
    else:
        backward = scratch.SoftmaxWithLoss.backward
        monkeypatch.setattr(scratch.SoftmaxWithLoss, "backward", lambda self: backward(self) * len(self.labels))
    net, x, labels = small_problem()
    assert max(scratch.gradient_check(net, x[:5], labels[:5]).values()) > 1e-3


@pytest.mark.parametrize("name", list(scratch.OPTIMIZERS))
def test_each_optimizer_matches_keras_for_ten_steps(name):
    gap = scratch.compare_with_keras(name, scratch.BOWL_RATES[name], {"xy": np.array(scratch.BOWL_START)}, scratch.bowl_gradients, 10)
    assert gap < scratch.KERAS_TOLERANCE
    # Keras' Adagrad puts ε elsewhere: on a network's small gradients that matters unless ε is far below them.
    overrides = {"epsilon": scratch.SMALL_ADAGRAD_EPSILON} if name == "adagrad" else {}
    net, x, labels = small_problem()
    batches = [(x[i : i + 20], labels[i : i + 20]) for i in range(0, 200, 20)]
    start = {key: value.copy() for key, value in net.params.items()}
    assert scratch.compare_with_keras(name, scratch.LEARNING_RATES[name], start, scratch.network_gradients(net, batches), 10,
                                      **overrides) < scratch.KERAS_TOLERANCE


@TENSORFLOW_ONLY
def test_scratch_runs_end_to_end(tmp_path):
    result = run_command(FOUNDATIONS, "scratch", "--tiny", "--hidden", "8", "--epochs", "2", "--batch-size", "20",
                         "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("gradient_check.csv", "keras_agreement.csv", "training.csv", "curves.png", "bowl.png"):
        assert (tmp_path / "run" / name).is_file(), name
    training = (tmp_path / "run" / "training.csv").read_text().splitlines()
    assert len(training) == 1 + len(scratch.OPTIMIZERS)
    assert max(float(line.split(",")[3]) for line in training[1:]) > 0.9  # final test accuracy on the tiny set


# --- regularization ------------------------------------------------------------------------

NAMED = {"weight-decay": "weight_decay", "dropout": "dropout", "batch-norm": "batch_norm",
         "early-stopping": "early_stopping", "augmentation": "augment"}


@pytest.mark.backend_independent
def test_each_regularization_variant_changes_only_the_setting_it_names():
    config = regularization.Config()
    variants = regularization.variants(config)
    plain = asdict(variants["none"])
    assert not any(plain.values())
    for name, setting in NAMED.items():
        changed = {key for key, value in asdict(variants[name]).items() if value != plain[key]}
        assert changed == {setting}, name
    assert list(variants) == list(regularization.VARIANTS)
    assert asdict(variants["all-together"]) == {setting: asdict(variants[name])[setting] for name, setting in NAMED.items()}


@pytest.mark.backend_independent
def test_each_regularization_variant_builds_the_plain_network_plus_its_own_layers():
    config = regularization.Config()
    variants = regularization.variants(config)
    kinds = lambda regime: [type(layer).__name__ for layer in regularization.build_model(regime, config).layers]
    plain = kinds(variants["none"])
    added = {"dropout": {"Dropout"}, "batch-norm": {"BatchNormalization"},
             "augmentation": {"RandomRotation", "RandomTranslation", "RandomZoom"}}
    added["all-together"] = set().union(*added.values())
    for name, regime in variants.items():
        layers = kinds(regime)
        assert [kind for kind in layers if kind not in added.get(name, set())] == plain, name
        assert set(layers) - set(plain) == added.get(name, set()), name
        decay = regularization.optimizer_settings(regime, config).weight_decay
        assert decay == (config.weight_decay if name in ("weight-decay", "all-together") else 0.0), name
        stopping = [c for c in regularization.callbacks(regime, None, []) if isinstance(c, keras.callbacks.EarlyStopping)]
        assert len(stopping) == (1 if name in ("early-stopping", "all-together") else 0), name


def test_regularization_runs_end_to_end(tmp_path):
    result = run_command(FOUNDATIONS, "regularization", "--tiny", "--train-size", "100", "--validation-size", "50",
                         "--epochs", "1", "--batch-size", "50", "--variants", "dropout", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "run" / "results.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in table[1:]] == ["dropout"]
    assert (tmp_path / "run" / "curves.png").is_file()


# --- finetune ------------------------------------------------------------------------------


def weights_of(model):
    return {variable.path: keras.ops.convert_to_numpy(variable).copy() for variable in model.weights}


def changed(before, after):
    return {path for path in before if not np.array_equal(before[path], after[path])}


def test_fine_tuning_freezes_exactly_its_blocks_and_unfreezes_them_on_schedule():
    config = finetune.Config(frozen_steps=2, unfrozen_steps=2, unfreeze=2, batch_size=16, lr=0.01, finetune_lr=0.01)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 28, 28, 1)).astype("uint8"), rng.integers(0, 10, 32)
    model = finetune.fresh(finetune.mnist_features, 0)
    names = [name for name, _ in finetune.blocks(model.get_layer("features"))]
    assert names == ["block1", "block2", "block3"]
    block_of = {variable.path: name for name, block in finetune.blocks(model.get_layer("features")) for layer in block
                for variable in layer.weights}

    start = weights_of(model)
    finetune.train_frozen(model, config, (x, y))
    assert not any(layer.trainable for layer in model.get_layer("features").layers)
    after_frozen = weights_of(model)
    moved = changed(start, after_frozen)
    assert moved and not moved & set(block_of)  # only the classifier learnt

    assert finetune.train_unfrozen(model, config, (x, y)) == ["block2", "block3"]
    moved = changed(after_frozen, weights_of(model))
    assert {block_of[path] for path in moved & set(block_of)} == {"block2", "block3"}
    assert moved - set(block_of)  # the classifier goes on learning


def class_folders(root, classes=2, per_class=4, size=40):
    rng = np.random.default_rng(0)
    for number in range(classes):
        folder = root / f"class{number}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return root


@TENSORFLOW_ONLY
def test_finetune_on_a_folder_with_a_random_weights_backbone(tmp_path):
    folder = class_folders(tmp_path / "images")
    (folder / "class0" / "broken.png").write_bytes(b"not an image")
    (folder / "class1" / "empty.jpg").write_bytes(b"")
    result = run_command(FOUNDATIONS, "finetune", "--images", folder, "--weights", "random", "--image-size", "32",
                         "--frozen-steps", "0", "--unfrozen-steps", "1", "--unfreeze", "1", "--batch-size", "8",
                         "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "2 of 10 image files could not be read" in warnings[0], result.stderr
    assert (tmp_path / "run" / "model.keras").is_file() and (tmp_path / "run" / "phases.csv").is_file()


@pytest.mark.backend_independent
def test_backbone_blocks_keep_batch_norm_frozen():
    model = finetune.fresh(lambda: finetune.backbone_features("mobilenet_v3_small", "random", 32), 0, classes=3)
    features = model.get_layer("features")
    top = finetune.unfreeze_top(model, 2)
    assert top == ["expanded_conv_10", "conv_1"]
    trainable = {layer.name for layer in features.layers if layer.trainable and layer.weights}
    assert trainable and all(name.startswith(tuple(top)) and not name.endswith("_bn") for name in trainable)
    assert "expanded_conv_10_project" in trainable and "conv_1_bn" not in trainable


@TENSORFLOW_ONLY
def test_finetune_mnist_experiment_end_to_end(tmp_path):
    # --tiny alone picks sizes its 600 generated digits hold (the real data's 1,000 would not fit).
    result = run_command(FOUNDATIONS, "finetune", "--tiny", "--seeds", "1", "--pretrain-epochs", "1",
                         "--frozen-steps", "1", "--unfrozen-steps", "1", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "run" / "results.csv")
    assert sorted(table["labelled digits"].unique()) == [100, 400] and len(table) == 2 * 3  # three methods for each size
    assert (tmp_path / "run" / "accuracy.png").is_file()


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.backend_independent
@pytest.mark.parametrize("flags, fragment", [
    (["regularization", "--weight-decay", "-0.1"], "--weight-decay must not be negative"),
    (["regularization", "--dropout", "1.5"], "--dropout must be between 0 and 1"),
    (["finetune", "--sizes", "0"], "--sizes must be at least 1"),
    (["finetune", "--tiny", "--sizes", "100", "700"], "--sizes 700 is larger than the data set (600 training digits)"),
    (["finetune", "--tiny", "--sizes", "100", "--unfreeze", "5"], "--unfreeze 5: the network has only 3 blocks"),
    (["regularization", "--variants", "none", "mixup"], "argument --variants: invalid choice: 'mixup'"),
    (["scratch", "--hidden", "0"], "--hidden must be at least 1"),
])
def test_bad_flags_give_one_error_line(flags, fragment):
    assert_one_line_error(run_command(FOUNDATIONS, *flags), fragment)


@pytest.mark.backend_independent
def test_a_training_subset_larger_than_the_data_set_is_one_error_line(tmp_path):
    fake_mnist(tmp_path / "mnist", train=12)
    result = run_command(FOUNDATIONS, "regularization", "--data-dir", tmp_path, "--train-size", "10", "--validation-size", "5")
    assert_one_line_error(result, "--train-size + --validation-size 15 is larger than the data set (12 examples)")


@pytest.mark.backend_independent
def test_a_folder_with_fewer_than_two_classes_is_one_error_line(tmp_path):
    folder = class_folders(tmp_path / "images", classes=1)
    (folder / "notes").mkdir()  # a subfolder without images is no class
    result = run_command(FOUNDATIONS, "finetune", "--images", folder, "--weights", "random")
    assert_one_line_error(result, "holds 1 subfolder(s) with images; fine-tuning needs at least two classes")


@pytest.mark.backend_independent
def test_an_unknown_backbone_is_one_error_line_in_a_new_process():
    result = run_subprocess("-m", FOUNDATIONS, "finetune", "--backbone", "resnet")
    assert_one_line_error(result, "argument --backbone: invalid choice: 'resnet'")


@pytest.mark.backend_independent
def test_imagenet_weights_that_cannot_be_downloaded_are_one_error_line(tmp_path, monkeypatch):
    from keras.src.applications import mobilenet_v3

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(mobilenet_v3.file_utils, "get_file", offline)
    folder = class_folders(tmp_path / "images")
    result = run_command(FOUNDATIONS, "finetune", "--images", folder, "--image-size", "32", "--out", tmp_path / "run")
    assert_one_line_error(result, "could not download the ImageNet mobilenet_v3_small weights", "--weights random")
    assert not (tmp_path / "run").exists()
