"""The MNIST CNN end to end on tiny generated digits, as a user runs it: train, evaluate, predict, resume.

One tiny run is trained per module and shared by the tests that need a model; the
figures the commands report are checked against predictions computed here from the
model it saved.
"""

import json
import os

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import images, runs
from common.launch import thread_variables
from helpers import (WITHOUT_TENSORFLOW, assert_one_line_error, fake_mnist, file_bytes, read_events, run_command, run_killed_at,
                     run_subprocess, write_idx)
from projects.mnist_cnn import data

MNIST = "projects.mnist_cnn"
# 960 generated digits to train on (no partial batch, which would compile a second training step), 64 to
# validate on, 256 to test on. Augmentation, slow under JAX, is left to the resumed run (TensorFlow only).
TINY = ["--tiny", "--val-split", "0.0625"]
FAST = [*TINY, "--batch-size", "32", "--no-augment"]
ON_JAX = keras.backend.backend() == "jax"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run, shared by the tests that need a trained model: (its run folder, what the command printed)."""
    run_dir = tmp_path_factory.mktemp("mnist") / "run"
    result = run_command(MNIST, "train", *FAST, "--epochs", "3", "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.fixture(scope="module")
def model(trained):
    """The trained model, loaded here to compute what the commands should report."""
    return keras.saving.load_model(trained[0] / "model.keras")


def predicted_digits(model, digits):
    return model.predict(digits[..., None], verbose=0).argmax(1)


def test_train_writes_a_complete_run_and_learns(trained, model):
    run_dir, result = trained
    assert f"run saved in {run_dir}" in result.stdout
    for name in ("config.json", "metrics.csv", "model.keras", "best.keras", "summary.json"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    assert not (run_dir / "backup").exists()  # removed once the run finished
    config = json.loads((run_dir / "config.json").read_text())
    assert config["resolved"] == {"train_images": 960, "validation_images": 64, "test_images": 256}
    assert config["project"] == "mnist_cnn" and config["precision"] == "float32"

    test_digits, test_labels = data.tiny_digits(256, seed=1)  # --tiny's test set for seed 0
    accuracy = float((predicted_digits(model, test_digits) == test_labels).mean())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert accuracy >= 0.9  # chance is 0.1
    assert summary["backend"] == keras.backend.backend() and summary["epochs"] == 3

    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1, 2]
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0] / 2
    assert summary["epoch_seconds"] == pytest.approx(list(metrics["epoch_seconds"]), abs=0.006)
    # Throughput leaves out the first epoch, which includes compiling the model.
    assert summary["train_samples_per_second"] == pytest.approx(960 * 2 / sum(summary["epoch_seconds"][1:]), rel=0.01)
    with Image.open(run_dir / "samples" / "test_predictions.png") as picture:
        assert picture.size == (600, 720)  # 10 x 10 captioned digits


# A tiny run under JAX as on a machine without TensorFlow (a GPU machine with JAX's CUDA build).
FIT_WITHOUT_TENSORFLOW = WITHOUT_TENSORFLOW + """
import runpy
sys.argv = ["mnist_cnn", "train", *sys.argv[2:]]
runpy.run_module("projects.mnist_cnn", run_name="__main__")
"""


@pytest.mark.backend_independent  # it runs JAX itself, in a process of its own
def test_under_jax_a_fit_run_needs_no_tensorflow_and_still_logs_its_curves(tmp_path):
    run_dir = tmp_path / "run"
    result = run_subprocess("-c", FIT_WITHOUT_TENSORFLOW, "--", *FAST, "--epochs", "2", "--out", run_dir, env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]  # Keras only asks whether TensorFlow is there
    metrics = pd.read_csv(run_dir / "metrics.csv")
    for side, prefix in (("train", ""), ("validation", "val_")):
        logged = {(value.tag, event.step): value.simple_value
                  for event in read_events(run_dir / "tensorboard" / side) for value in event.summary.value}
        for epoch in (0, 1):
            for name in ("loss", "accuracy"):
                assert logged[f"epoch_{name}", epoch] == pytest.approx(metrics.loc[epoch, prefix + name], rel=1e-6)


def test_evaluate_reports_accuracy_per_class_and_confusion(trained, model, tmp_path):
    # A test set whose first 12 labels are planted wrong: the model reads those digits as what they show,
    # so the report must count them as mistakes, in the row of the label and the column of the digit read.
    run_dir, _ = trained
    digits, shown = data.tiny_digits(60, seed=7)
    labels = shown.copy()
    labels[:12] = (shown[:12] + 1) % 10
    fake_mnist(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", digits)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    predicted = predicted_digits(model, digits)
    assert (predicted == shown).mean() >= 0.9  # the model reads (nearly) every digit as what it shows

    result = run_command(MNIST, "evaluate", "--model", run_dir, "--data-dir", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    errors = int((predicted != labels).sum())
    assert f"mnist test set, 60 images: accuracy {1 - errors / 60:.4f} ({errors} errors)" in result.stdout
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (labels, predicted), 1)
    printed = result.stdout.split("confusion matrix:\n")[1].splitlines()[2:12]  # under "predicted 0 1 ..." and "true"
    assert [[int(count) for count in line.split()[1:]] for line in printed] == confusion.tolist()
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["images"] == 60 and evaluation["accuracy"] == pytest.approx(1 - errors / 60, abs=1e-12)
    per_class = {str(d): np.sum((labels == d) & (predicted == d)) / max(1, np.sum(labels == d)) for d in range(10)}
    assert evaluation["per_class_accuracy"] == pytest.approx(per_class, abs=5e-5)  # rounded to 4 places
    assert (run_dir / "samples" / "mistakes.png").is_file()


def user_files(folder):
    """One rendered digit of each class, saved the ways users have them; {file name: digit}."""
    rendered, labels = data.tiny_digits(60, seed=123)
    first = [int(np.flatnonzero(labels == digit)[0]) for digit in range(10)]
    savers = {
        "paper.png": lambda digit: Image.fromarray(255 - digit).resize((200, 200)),  # dark on light, big
        "transparent.png": lambda digit: Image.fromarray(np.dstack([np.zeros((28, 28, 3), np.uint8), digit]), "RGBA"),
        "sixteen_bit.png": lambda digit: Image.fromarray(digit.astype(np.uint16) * 257),
        "wide.jpg": lambda digit: Image.fromarray(digit).convert("RGB").resize((90, 60)),
    }
    folder.mkdir()
    expected = {}
    for digit, index in enumerate(first):
        name = list(savers)[digit % len(savers)]
        file = f"{digit}_{name}"
        savers[name](rendered[index]).save(folder / file)
        expected[file] = str(digit)
    return expected


@pytest.mark.backend_independent
def test_predict_reads_every_digit_in_users_image_files(trained, model, tmp_path):
    run_dir, _ = trained
    expected = user_files(tmp_path / "digits")
    result = run_command(MNIST, "predict", "--model", run_dir, tmp_path / "digits")
    assert result.returncode == 0 and result.stderr == "", result.stderr[-3000:]
    paths, digits, probabilities = zip(*(line.split("\t") for line in result.stdout.splitlines()))
    assert dict(zip(map(os.path.basename, paths), digits)) == expected
    prepared = np.stack([data.prepare(images.open_image(path, "L"), "mnist") for path in paths])
    expected_probabilities = model.predict(prepared[..., None], verbose=0).max(1)
    assert [float(p) for p in probabilities] == pytest.approx(expected_probabilities.tolist(), abs=1e-4)  # printed to 4 places


@pytest.mark.backend_independent
def test_predict_non_image_or_blank_image_is_one_line_error(trained, tmp_path):
    run_dir, _ = trained
    (tmp_path / "notes.png").write_text("hello")
    result = run_command(MNIST, "predict", "--model", run_dir, tmp_path / "notes.png")
    assert_one_line_error(result, "notes.png", "not a readable image")
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / "blank.png")
    result = run_command(MNIST, "predict", "--model", run_dir, tmp_path / "blank.png")
    assert_one_line_error(result, "blank.png", "no digit found")


@pytest.mark.backend_independent
def test_predict_skips_a_huge_image_and_a_folder_without_images(trained, tmp_path, monkeypatch):
    run_dir, _ = trained
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so that 100x100 stands for 15000x15000
    good = tmp_path / "good"
    good.mkdir()
    digits, labels = data.tiny_digits(2, seed=5)
    for index, digit in enumerate(digits):
        Image.fromarray(digit).save(good / f"digit{index}.png")
    Image.new("L", (100, 100), 255).save(good / "huge.png")
    (tmp_path / "empty").mkdir()
    result = run_command(MNIST, "predict", "--model", run_dir, tmp_path / "empty", good)
    assert result.returncode == 1  # one file failed; the rest were read
    read = [(os.path.basename(line.split("\t")[0]), line.split("\t")[1]) for line in result.stdout.splitlines()]
    assert read == [("digit0.png", str(labels[0])), ("digit1.png", str(labels[1]))]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {good / 'huge.png'}: more than 2,000 pixels, too many to open safely; shrink it first"]
    assert f"warning: {tmp_path / 'empty'} holds no images" in result.stderr
    result = run_command(MNIST, "predict", "--model", run_dir, tmp_path / "empty")
    assert result.returncode == 2 and result.stdout == ""  # nothing at all to read
    assert result.stderr.splitlines()[-1] == f"error: no image files in {tmp_path / 'empty'}"


@pytest.mark.backend_independent
def test_predict_refuses_another_projects_model(tmp_path):
    digit = tmp_path / "digit.png"
    Image.fromarray(data.tiny_digits(1)[0][0]).save(digit)
    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    generator_file = runs.save_model(generator, tmp_path / "generator.keras", "dcgan")
    dcgan_run = tmp_path / "dcgan_run"  # its config names no MNIST dataset: read first, it was a KeyError
    runs.write_json(dcgan_run / "config.json", {"project": "dcgan", "config": {"dataset": None}})
    generator.save(dcgan_run / "model.keras")
    before = file_bytes(tmp_path)
    message = "is a dcgan model, not a mnist_cnn one; use it with python -m projects.dcgan"
    for model in (generator_file, dcgan_run, dcgan_run / "model.keras"):
        result = run_command(MNIST, "predict", "--model", model, digit)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.splitlines() == [f"error: {model} {message}"]
    assert file_bytes(tmp_path) == before


@pytest.mark.backend_independent
def test_existing_run_is_never_overwritten(trained):
    run_dir, _ = trained
    before = file_bytes(run_dir)
    result = run_command(MNIST, "train", *FAST, "--epochs", "1", "--out", run_dir)
    assert_one_line_error(result, str(run_dir), "already holds a run")
    assert file_bytes(run_dir) == before


@pytest.mark.backend_independent
def test_bad_input_is_one_line_and_starts_no_run(tmp_path):
    def train(*args):
        return run_command(MNIST, "train", *args, "--out", tmp_path / "run")

    assert_one_line_error(train("--data-dir", tmp_path / "nowhere"), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(train("--data-dir", tmp_path / "empty"), "train-images-idx3-ubyte.gz is missing")
    # As a user sees it, in a process of its own: the one line and nothing else, not even TensorFlow's start-up lines.
    result = run_subprocess("-m", MNIST, "train", *TINY, "--lr", "-0.1", "--out", tmp_path / "run")
    assert (result.returncode, result.stdout, result.stderr) == (2, "", "error: --lr must be positive, got -0.1\n")
    fake_mnist(tmp_path / "cut" / "mnist")
    images_file = tmp_path / "cut" / "mnist" / "train-images-idx3-ubyte.gz"
    images_file.write_bytes(images_file.read_bytes()[:-30])
    assert_one_line_error(train("--data-dir", tmp_path / "cut"), "train-images-idx3-ubyte.gz", "truncated")
    assert not (tmp_path / "run").exists()  # no run folder for a run that never started

    result = run_command(MNIST, "predict", "--model", tmp_path / "none.keras", "x.png")
    assert_one_line_error(result, "none.keras does not exist")
    (tmp_path / "fake.keras").write_text("not a model")
    result = run_command(MNIST, "predict", "--model", tmp_path / "fake.keras", tmp_path)
    assert_one_line_error(result, "fake.keras is not a Keras model file")


@pytest.mark.backend_independent
def test_resume_after_sigkill_continues_from_the_last_checkpoint(tmp_path):
    # The default recipe (with augmentation) in batches of 64: 15 steps an epoch. The run backs up after
    # steps 2, 5, 8, 11 and 14 of each epoch (counted from 0) and at its end. The kill lands right after
    # the callbacks have seen step 4 of epoch 1, a step with no backup: epoch 0 is logged and the newest
    # backup is that of step 2 of epoch 1, 18 steps in. Resumed, the run restarts epoch 1 from those
    # weights and optimizer state and runs its 15 steps: 33 in all. From scratch, or from the end of
    # epoch 0, it would count 30.
    run_dir = tmp_path / "run"
    run_killed_at(MNIST, "train", *TINY, "--batch-size", "64", "--epochs", "2", "--out", run_dir, epoch=1, batch=4)
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [0]
    assert json.loads((run_dir / "backup" / "training_metadata.json").read_text()) == {"epoch": 1, "batch": 2}
    assert not (run_dir / "summary.json").exists()

    result = run_command(MNIST, "train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {run_dir}" in result.stdout
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [0, 1]
    assert int(keras.saving.load_model(run_dir / "model.keras").optimizer.iterations) == 33
    assert json.loads((run_dir / "summary.json").read_text())["resumed"] is True
    assert not (run_dir / "backup").exists()


def test_distribute_trains_on_two_logical_cpus(tmp_path):
    # A new process: the CPU is split into devices when the backend starts. Few, large steps:
    # collectives between logical devices that share two cores are slow.
    result = run_subprocess(
        "-m", MNIST, "train", "--tiny", "--val-split", "0", "--no-augment", "--batch-size", "256", "--epochs", "1",
        "--no-final-test", "--distribute", "--out", tmp_path / "run", env={"CPU_DEVICES": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training on 2 replicas" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["replicas"] == 2 and len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 1


REPLICATE_ON_TWO_DEVICES = """
import common  # splits the CPU before JAX starts
import numpy as np
from common import backend
from projects.mnist_cnn.model import build_model
from projects.mnist_cnn.train import Config
scope, replicas = backend.distribution_scope(True)
with scope:
    model = build_model(Config(tiny=True, augment=False))
kernel = next(layer for layer in model.layers if hasattr(layer, "kernel")).kernel
probabilities = model.predict(np.zeros((8, 28, 28, 1), np.float32), batch_size=8, verbose=0)
print(replicas, len(kernel.value.sharding.device_set), probabilities.shape)
"""


@pytest.mark.skipif(not ON_JAX, reason="the JAX half of the distribute test")
def test_distribute_replicates_the_model_over_two_logical_cpus_on_jax():
    # DataParallel is set up and the weights live on both devices (the test above trains on them).
    result = run_subprocess("-c", REPLICATE_ON_TWO_DEVICES, env={"CPU_DEVICES": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["2", "2", "(8,", "10)"]


EVALUATE_ON_TWO_DEVICES = """
import common  # splits the CPU before JAX starts
import numpy as np
from common import backend
from projects.mnist_cnn.train import Config, compiled_model
scope, replicas = backend.distribution_scope(True)
with scope:
    model = compiled_model(Config(augment=False), 10)
images, labels = np.random.default_rng(0).random((3008, 28, 28, 1), np.float32), np.arange(3008) % 10
for _ in range(30):
    model.evaluate(images, labels, batch_size=64, verbose=0)
print("evaluated on", replicas, "devices")
"""


@pytest.mark.skipif(not ON_JAX, reason="XLA's CPU client under JAX")
def test_evaluation_on_two_logical_cpus_does_not_stall_on_jax():
    # Keras reads evaluation steps' results in background threads; XLA's CPU client could then start
    # two steps' programs out of order on one device, and their all-reduces waited on each other for
    # good, here within seconds (common.backend keeps one step in flight on logical CPU devices).
    env = {"CPU_DEVICES": "2", **thread_variables(1, os.environ)}
    result = run_subprocess("-c", EVALUATE_ON_TWO_DEVICES, env=env, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-4:] == ["evaluated", "on", "2", "devices"]


@pytest.mark.backend_independent
def test_mixed_precision_trains_and_saves_a_bfloat16_model(tmp_path):
    run_dir = tmp_path / "run"
    result = run_command(
        MNIST, "train", "--tiny", "--val-split", "0", "--no-augment", "--batch-size", "512", "--epochs", "1",
        "--no-final-test", "--mixed-precision", "--out", run_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "config.json").read_text())["precision"] == "mixed_bfloat16"
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 1
    saved = keras.saving.load_model(run_dir / "model.keras", compile=False)
    weighted = [layer for layer in saved.layers if hasattr(layer, "kernel")]
    assert {layer.dtype_policy.name for layer in weighted} == {"mixed_bfloat16"}
    assert saved.layers[-1].dtype_policy.name == "float32"  # probabilities in float32
    assert all(layer.kernel.dtype == "float32" for layer in weighted)  # the weights themselves stay float32


@pytest.mark.backend_independent
def test_mnist_style_preparation_centres_by_mass():
    canvas = Image.new("L", (100, 60), 255)
    canvas.paste(0, (70, 10, 80, 50))  # a dark bar far right of centre, on white paper
    prepared = data.mnist_style(canvas)
    rows, cols = np.nonzero(prepared > 64)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (20, 5)  # 40x10, its longer side scaled to 20
    centre = (np.indices(prepared.shape) * prepared).reshape(2, -1).sum(1) / prepared.sum()
    assert np.allclose(centre, 14, atol=0.5)
