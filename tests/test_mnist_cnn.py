"""The MNIST CNN end to end on tiny generated digits, as a user runs it."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import runs
from common.cli import run_commands
from conftest import ROOT, assert_one_line_error
from projects.mnist_cnn import __main__ as mnist_cli
from projects.mnist_cnn import data

TINY = ["--tiny", "--batch-size", "64"]


def run_mnist(*argv):
    """`python -m projects.mnist_cnn ...` in this process (no second start-up); returns the exit status."""
    with pytest.raises(SystemExit) as exit:
        run_commands("python -m projects.mnist_cnn", "", mnist_cli.COMMANDS, [str(a) for a in argv])
    return exit.value.code


def file_bytes(folder):
    """Every file under `folder` and its bytes, to show that a command changed none of them."""
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the tests that need a trained model."""
    from conftest import run_cli

    run_dir = tmp_path_factory.mktemp("mnist") / "run"
    result = run_cli("projects.mnist_cnn", "train", *TINY, "--epochs", "6", "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_train_writes_a_complete_run_and_learns(trained):
    run_dir, result = trained
    for name in ("config.json", "metrics.csv", "model.keras", "summary.json", "samples/test_predictions.png"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["test_accuracy"] > 0.5, summary  # chance is 0.1
    resolved = json.loads((run_dir / "config.json").read_text())["resolved"]
    assert resolved == {"train_images": 973, "validation_images": 51, "test_images": 256}  # 5% of 1,024 held out
    assert summary["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow")
    assert summary["train_samples_per_second"] > 0 and summary["wall_seconds"] > 0
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == list(range(6))
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    assert not (run_dir / "backup").exists()  # removed once the run finished


@pytest.mark.backend_independent
def test_evaluate_reports_accuracy_and_confusion(trained, cli):
    run_dir, _ = trained
    result = cli("projects.mnist_cnn", "evaluate", "--model", run_dir, "--tiny")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy" in result.stdout and "confusion matrix" in result.stdout
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"], abs=1e-6)


def digit_files(folder):
    """Rendered digits saved the ways users have them: dark on light, RGBA, 16-bit, big."""
    folder.mkdir()
    digits, labels = data.tiny_digits(4, seed=123)
    light = 255 - digits
    Image.fromarray(light[0]).resize((200, 200)).save(folder / "paper.png")
    alpha = np.zeros((28, 28, 4), np.uint8)
    alpha[..., 3] = digits[1]
    Image.fromarray(alpha, "RGBA").save(folder / "transparent.png")
    Image.fromarray(digits[2].astype(np.uint16) * 257).save(folder / "sixteen_bit.png")
    Image.fromarray(digits[3]).convert("RGB").resize((90, 60)).save(folder / "wide.jpg")
    return labels


@pytest.mark.backend_independent
def test_predict_reads_user_images(trained, cli, tmp_path):
    run_dir, _ = trained
    labels = digit_files(tmp_path / "digits")
    result = cli("projects.mnist_cnn", "predict", "--model", run_dir, tmp_path / "digits")
    assert result.returncode == 0, result.stderr[-3000:]
    read = {os.path.basename(path): (digit, float(probability)) for path, digit, probability in
            (line.split("\t") for line in result.stdout.strip().splitlines())}
    expected = dict(zip(["paper.png", "transparent.png", "sixteen_bit.png", "wide.jpg"], map(str, labels)))
    assert sorted(read) == sorted(expected)
    assert all(0 <= probability <= 1 for _, probability in read.values())
    right = [name for name in expected if read[name][0] == expected[name]]
    assert len(right) >= 3, (read, expected)  # chance would read one in ten


@pytest.mark.backend_independent
def test_predict_non_image_is_one_line_error(trained, cli, tmp_path):
    run_dir, _ = trained
    (tmp_path / "notes.png").write_text("hello")
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / "blank.png")
    result = cli("projects.mnist_cnn", "predict", "--model", run_dir, tmp_path / "notes.png")
    assert_one_line_error(result, "notes.png", "not a readable image")
    result = cli("projects.mnist_cnn", "predict", "--model", run_dir, tmp_path / "blank.png")
    assert_one_line_error(result, "blank.png", "no digit found")


@pytest.mark.backend_independent
def test_predict_skips_a_huge_image_and_a_folder_without_images(trained, tmp_path, monkeypatch, capsys):
    run_dir, _ = trained
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so that 100x100 stands for 15000x15000
    good = tmp_path / "good"
    good.mkdir()
    for index, digit in enumerate(data.tiny_digits(2, seed=5)[0]):
        Image.fromarray(digit).save(good / f"digit{index}.png")
    Image.new("L", (100, 100), 255).save(good / "huge.png")
    (tmp_path / "empty").mkdir()
    assert run_mnist("predict", "--model", run_dir, tmp_path / "empty", good) == 1  # one file failed; the rest were read
    out, err = capsys.readouterr()
    assert [os.path.basename(line.split("\t")[0]) for line in out.splitlines()] == ["digit0.png", "digit1.png"]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {good / 'huge.png'}: more than 2,000 pixels, too many to open safely; shrink it first"]
    assert f"warning: {tmp_path / 'empty'} holds no images" in err
    assert run_mnist("predict", "--model", run_dir, tmp_path / "empty") == 2  # nothing at all to read
    assert capsys.readouterr().err.splitlines()[-1] == f"error: no image files in {tmp_path / 'empty'}"


@pytest.mark.backend_independent
def test_predict_refuses_another_projects_model(tmp_path, capsys):
    import keras

    digit = tmp_path / "digit.png"
    Image.fromarray(data.tiny_digits(1)[0][0]).save(digit)
    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    generator_file = runs.save_model(generator, tmp_path / "generator.keras", "dcgan")
    dcgan_run = tmp_path / "dcgan_run"  # its config names no MNIST dataset: read first, it was a KeyError
    runs.write_json(dcgan_run / "config.json", {"project": "dcgan", "config": {"dataset": None}})
    generator.save(dcgan_run / "model.keras")
    before = file_bytes(tmp_path)
    for model in (generator_file, dcgan_run, dcgan_run / "model.keras"):
        assert run_mnist("predict", "--model", model, digit) == 2
        message = "is a dcgan model, not a mnist_cnn one; use it with python -m projects.dcgan"
        assert capsys.readouterr().err.splitlines() == [f"error: {dcgan_run if model == dcgan_run else model} {message}"]
    assert file_bytes(tmp_path) == before


@pytest.mark.backend_independent
def test_existing_run_is_never_overwritten(trained, cli):
    run_dir, _ = trained
    before = (run_dir / "model.keras").read_bytes()
    result = cli("projects.mnist_cnn", "train", *TINY, "--epochs", "1", "--out", run_dir)
    assert_one_line_error(result, "already holds a run")
    assert (run_dir / "model.keras").read_bytes() == before


@pytest.mark.backend_independent
def test_bad_input_is_one_line(cli, tmp_path):
    assert_one_line_error(cli("projects.mnist_cnn", "train", "--data-dir", tmp_path / "nowhere"), "does not exist")
    (tmp_path / "empty").mkdir()
    result = cli("projects.mnist_cnn", "train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "run")
    assert_one_line_error(result, "train-images-idx3-ubyte.gz is missing")
    assert not (tmp_path / "run").exists()  # no run folder for a run that never started
    assert_one_line_error(cli("projects.mnist_cnn", "train", *TINY, "--lr", "-0.1"), "--lr must be positive")
    assert_one_line_error(cli("projects.mnist_cnn", "predict", "--model", tmp_path / "none.keras", "x.png"), "does not exist")
    (tmp_path / "fake.keras").write_text("not a model")
    result = cli("projects.mnist_cnn", "predict", "--model", tmp_path / "fake.keras", tmp_path)
    assert_one_line_error(result, "fake.keras is not a Keras model file")


@pytest.mark.backend_independent
def test_truncated_dataset_file_is_one_line(cli, tmp_path):
    from test_datasets import fake_mnist

    fake_mnist(tmp_path / "mnist")
    images = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:-30])
    result = cli("projects.mnist_cnn", "train", "--data-dir", tmp_path, "--epochs", "1")
    assert_one_line_error(result, "train-images-idx3-ubyte.gz", "truncated")


@pytest.mark.backend_independent
def test_resume_after_sigkill_continues_from_checkpoint(cli, tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "projects.mnist_cnn", "train", *TINY, "--epochs", "12", "--out", str(run_dir)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metadata = run_dir / "backup" / "training_metadata.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and process.poll() is None:
            if metadata.exists() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "training ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    killed_at = len(pd.read_csv(run_dir / "metrics.csv"))
    assert not (run_dir / "summary.json").exists() and killed_at >= 2

    result = cli("projects.mnist_cnn", "train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {run_dir}" in result.stdout
    epochs = list(pd.read_csv(run_dir / "metrics.csv")["epoch"])
    assert epochs[-1] == 11
    resumed_from = epochs[killed_at]
    assert resumed_from >= 2 and resumed_from >= killed_at - 1, epochs  # not from scratch
    assert json.loads((run_dir / "summary.json").read_text())["resumed"] is True


ON_JAX = os.environ.get("KERAS_BACKEND") == "jax"


@pytest.mark.skipif(ON_JAX, reason="JAX's CPU collectives can deadlock when logical devices share two cores")
def test_distribute_trains_on_two_logical_cpus(cli, tmp_path):
    # Few, large steps: collectives between logical devices that share two cores are slow.
    result = cli(
        "projects.mnist_cnn", "train", "--tiny", "--batch-size", "256", "--epochs", "1", "--distribute",
        "--out", tmp_path / "run", env={"CPU_DEVICES": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training on 2 replicas" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["replicas"] == 2 and 0 <= summary["metrics"]["test_accuracy"] <= 1


REPLICATE_ON_TWO_DEVICES = """
import common  # splits the CPU before JAX starts
import numpy as np
from common import backend
from projects.mnist_cnn.model import build_model
from projects.mnist_cnn.train import Config
scope, replicas = backend.distribution_scope(True)
with scope:
    model = build_model(Config(tiny=True))
kernel = next(layer for layer in model.layers if hasattr(layer, "kernel")).kernel
probabilities = model.predict(np.zeros((8, 28, 28, 1), np.float32), batch_size=8, verbose=0)
print(replicas, len(kernel.value.sharding.device_set), probabilities.shape)
"""


@pytest.mark.skipif(not ON_JAX, reason="the JAX half of the distribute test")
def test_distribute_replicates_the_model_over_two_logical_cpus_on_jax(tmp_path):
    # DataParallel is set up and the weights live on both devices; training across them is
    # left to real accelerators (see the TensorFlow test above for a run).
    result = subprocess.run(
        [sys.executable, "-c", REPLICATE_ON_TWO_DEVICES], cwd=ROOT, env={**os.environ, "CPU_DEVICES": "2"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[:2] == ["2", "2"] and "(8, 10)" in result.stdout


@pytest.mark.backend_independent
def test_mixed_precision_runs(cli, tmp_path):
    result = cli("projects.mnist_cnn", "train", *TINY, "--epochs", "1", "--mixed-precision", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "mixed_bfloat16"


@pytest.mark.backend_independent
def test_mnist_style_preparation_centres_by_mass():
    canvas = Image.new("L", (100, 60), 255)
    canvas.paste(0, (70, 10, 80, 50))  # a dark bar far right of centre, on white paper
    prepared = data.mnist_style(canvas)
    rows, cols = np.nonzero(prepared > 64)
    assert rows.max() - rows.min() + 1 <= 21 and cols.max() - cols.min() + 1 <= 21
    centre = (np.indices(prepared.shape) * prepared).reshape(2, -1).sum(1) / prepared.sum()
    assert np.allclose(centre, 14, atol=1.0)
