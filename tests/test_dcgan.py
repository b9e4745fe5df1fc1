"""The DCGAN end to end on tiny generated shapes, as a user runs it."""

import argparse
import json
import os
import re

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import cli, runs
from common.errors import UserError
from conftest import assert_one_line_error, run_cli
from projects.dcgan import data
from projects.dcgan.evaluate import evaluate, frechet_distance
from projects.dcgan.generate import classes_of, draw, generate
from projects.dcgan.model import build_discriminator, layout
from projects.dcgan.train import Config, resolved_settings, train
from test_datasets import fake_mnist

# 28 px grey, like MNIST, so that the classifier-based evaluation can read the samples.
TINY = ["--tiny", "--image-size", "28", "--mode", "grey", "--width", "8", "--discriminator-width", "8", "--batch-size", "32", "--epochs", "3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the tests that need a trained generator."""
    run_dir = tmp_path_factory.mktemp("dcgan") / "run"
    result = run_cli("projects.dcgan", "train", *TINY, "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_train_writes_a_complete_run_and_both_losses_move(trained):
    run_dir = trained
    for name in ("config.json", "metrics.csv", "generator.keras", "discriminator.keras", "summary.json",
                 "samples/epoch_003.png", "samples/final.png", "samples/progress.gif", "tensorboard"):
        assert (run_dir / name).exists(), name
    assert not (run_dir / "checkpoint.npz").exists()  # removed once the run finished
    with Image.open(run_dir / "samples" / "progress.gif") as gif:
        assert gif.n_frames == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow")
    assert summary["train_images_per_second"] > 0 and summary["training_images"] == 3 * 8 * 32
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1, 2]
    assert metrics["d_loss"].iloc[-1] < metrics["d_loss"].iloc[0] - 0.02  # the discriminator learns to tell
    assert abs(metrics["g_loss"].iloc[-1] - metrics["g_loss"].iloc[0]) > 0.005  # and the generator answers
    assert metrics["real_score"].iloc[-1] > metrics["fake_score"].iloc[-1]


def test_a_run_killed_mid_epoch_resumes_to_the_same_losses(trained, tmp_path, killed_at_call):
    run_dir = tmp_path / "run"
    # 8 steps an epoch; checkpoints after steps 5, 8 (the epoch's end) and 10; killed before step 14.
    killed_at_call("projects.dcgan.gan:GAN.train_step", 14, "projects.dcgan", "train", *TINY, "--checkpoint-every", "5", "--out", run_dir)
    assert (run_dir / "checkpoint.npz").exists() and not (run_dir / "summary.json").exists()
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [0]
    assert any((run_dir / "tensorboard").iterdir())

    train(*resumable(run_dir))
    resumed = pd.read_csv(run_dir / "metrics.csv")
    assert list(resumed["epoch"]) == [0, 1, 2] and list(resumed["step"]) == [8, 16, 24]
    assert json.loads((run_dir / "summary.json").read_text())["resumed"] is True
    # Same seed, same settings: the killed run ends exactly where the uninterrupted one did.
    straight = pd.read_csv(trained / "metrics.csv")
    for column in ("d_loss", "g_loss", "real_score", "fake_score"):
        assert resumed[column].to_numpy() == pytest.approx(straight[column].to_numpy(), rel=1e-6), column
    with pytest.raises(UserError, match="already finished"):
        resumable(run_dir)


def resumable(run_dir):
    """(settings, run folder) as `train --resume RUN_DIR` finds them."""
    return cli.resolve_config("dcgan", Config, argparse.Namespace(resume=str(run_dir)))


@pytest.mark.backend_independent
def test_generate_writes_pngs_or_one_array(trained, tmp_path):
    result = run_cli("projects.dcgan", "generate", "--model", trained, "--n", "7", "--out", tmp_path / "many.npz", "--seed", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp_path / "many.npz") as saved:
        generated = saved["images"]
    assert generated.shape == (7, 28, 28, 1) and generated.dtype == np.uint8 and generated.std() > 0

    generate(argparse.Namespace(model=str(trained), n=5, out=str(tmp_path / "pngs"), seed=0, overwrite=False))
    files = sorted((tmp_path / "pngs").iterdir())
    assert [f.name for f in files] == [f"{i}.png" for i in range(5)]
    with Image.open(files[0]) as image:
        assert image.size == (28, 28) and image.mode == "L"

    generator = runs.load_model(trained / "generator.keras", "dcgan")
    raw = keras.ops.convert_to_numpy(generator(np.random.default_rng(0).standard_normal((16, 100)).astype("float32")))
    assert raw.shape == (16, 28, 28, 1) and -1 <= raw.min() < raw.max() <= 1
    assert np.array_equal(draw(generator, 7, 3), generated)  # the seed fixes the images
    with pytest.raises(UserError, match="not conditional"):
        draw(generator, 1, 0, label=0)


def snapshot(folder):
    """Every file under `folder` and its bytes: what a refused command must leave as it was."""
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def generate_args(model, out, n=3, overwrite=False):
    return argparse.Namespace(model=str(model), n=n, out=str(out), seed=0, overwrite=overwrite)


@pytest.mark.backend_independent
def test_generate_never_replaces_a_file_unless_told_to(trained, tmp_path):
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "1.png").write_bytes(b"the user's picture")
    (tmp_path / "pngs" / "notes.txt").write_bytes(b"the user's notes")
    (tmp_path / "digits.npz").write_bytes(b"the user's array")
    (tmp_path / "digits").write_bytes(b"a file, not a folder")
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match=r"pngs/1\.png exists; pass --overwrite to replace it"):
        generate(generate_args(trained, tmp_path / "pngs"))
    with pytest.raises(UserError, match=r"digits\.npz exists; pass --overwrite to replace it"):
        generate(generate_args(trained, tmp_path / "digits.npz"))
    with pytest.raises(UserError, match="digits is a file; name a folder for PNG files, or a .npz file"):
        generate(generate_args(trained, tmp_path / "digits", overwrite=True))
    assert snapshot(tmp_path) == before  # byte for byte, and nothing added

    generate(generate_args(trained, tmp_path / "pngs", overwrite=True))
    generate(generate_args(trained, tmp_path / "digits.npz", overwrite=True))
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["0.png", "1.png", "2.png", "notes.txt"]
    with Image.open(tmp_path / "pngs" / "1.png") as image:
        assert image.size == (28, 28)
    assert (tmp_path / "pngs" / "notes.txt").read_bytes() == b"the user's notes"
    with np.load(tmp_path / "digits.npz") as saved:
        assert saved["images"].shape == (3, 28, 28, 1)


@pytest.mark.backend_independent
def test_models_of_another_project_are_refused_in_one_line(trained, tmp_path):
    small = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    runs.save_model(small, tmp_path / "gan.keras", "dcgan")
    runs.save_model(small, tmp_path / "digits.keras", "mnist_cnn")
    before = snapshot(tmp_path), snapshot(trained)
    evaluate_args = dict(model=str(trained), dataset="mnist", data_dir=None, n=10, seed=0)
    for classifier in (tmp_path / "gan.keras", trained):  # a dcgan model file, a dcgan run folder
        with pytest.raises(UserError, match=f"^{re.escape(str(classifier))} is a dcgan model, not a mnist_cnn one; use it with python -m projects.dcgan$"):
            evaluate(argparse.Namespace(classifier=str(classifier), **evaluate_args))
    with pytest.raises(UserError, match="digits.keras is a mnist_cnn model, not a dcgan one; use it with python -m projects.mnist_cnn"):
        generate(generate_args(tmp_path / "digits.keras", tmp_path / "new.npz"))
    assert (snapshot(tmp_path), snapshot(trained)) == before


@pytest.mark.backend_independent
def test_count_flags_take_whole_numbers_of_at_least_one(tmp_path):
    result = run_cli("projects.dcgan", "generate", "--n", "0", "--out", tmp_path / "x.npz")
    assert_one_line_error(result, "argument --n: must be at least 1, got 0")
    result = run_cli("projects.dcgan", "evaluate", "--n", "many")
    assert_one_line_error(result, "argument --n: 'many' is not a whole number")
    assert not any(tmp_path.iterdir())
    with pytest.raises(UserError, match="--n must be at least 2, got 1"):  # a covariance needs two images
        evaluate(argparse.Namespace(model=None, classifier=None, dataset=None, data_dir=None, n=1, seed=0))


@pytest.mark.backend_independent
def test_train_out_an_existing_file_is_refused_and_the_file_kept(tmp_path):
    existing = tmp_path / "notes.txt"
    existing.write_bytes(b"the user's notes")
    with pytest.raises(UserError, match=f"^--out {re.escape(str(existing))} is a file; name a folder for the run$"):
        train(Config(tiny=True, out=str(existing)))
    assert snapshot(tmp_path) == {existing: b"the user's notes"}


def test_a_conditional_gan_draws_the_class_asked_for(tmp_path):
    run_dir = tmp_path / "run"
    train(Config(tiny=True, conditional=True, image_size=16, width=8, discriminator_width=8, batch_size=32, epochs=1, out=str(run_dir)))
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["conditional"] is True and saved["resolved"]["classes"] == 2
    generator = runs.load_model(run_dir / "generator.keras", "dcgan")
    assert classes_of(generator) == 2  # the tiny set's squares and discs
    squares, discs = draw(generator, 4, 0, label=0), draw(generator, 4, 0, label=1)
    assert squares.shape == (4, 16, 16, 3) and not np.array_equal(squares, discs)  # same noise: the label alone differs
    assert np.array_equal(draw(generator, 4, 0)[1::2], draw(generator, 4, 0, label=1)[1::2])  # classes in turn
    for label in (2, -1):
        with pytest.raises(UserError, match=f"--label {label}: this generator draws classes 0 to 1"):
            draw(generator, 1, 0, label=label)
    discriminator = runs.load_model(run_dir / "discriminator.keras", "dcgan")
    image = np.zeros((1, 16, 16, 3), np.float32)
    logits = [float(keras.ops.convert_to_numpy(discriminator([image, np.array([[k]])]))[0, 0]) for k in (0, 1)]
    assert logits[0] != logits[1]  # it judges the image as the class it is said to be
    with pytest.raises(UserError, match="labelled images"):
        Config(data_dir="faces", conditional=True)


@pytest.mark.backend_independent
def test_evaluate_scores_generated_digits_with_a_classifier(trained, tmp_path):
    fake_mnist(tmp_path / "mnist", train=60, test=40)
    classifier = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
         keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10), keras.layers.Activation("softmax")]
    )
    runs.save_model(classifier, tmp_path / "classifier.keras", "mnist_cnn")
    result = run_cli("projects.dcgan", "evaluate", "--model", trained, "--classifier", tmp_path / "classifier.keras",
                     "--data-dir", tmp_path, "--n", "100")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((trained / "evaluation.json").read_text())
    assert evaluation["images"] == 100 and evaluation["dataset"] == "mnist"
    assert sum(evaluation["class_shares"]) == pytest.approx(1.0) and len(evaluation["class_shares"]) == 10
    assert 0 <= evaluation["confident_share"] <= 1
    assert evaluation["frechet_generated_test"] > 0 and evaluation["frechet_train_test"] >= 0
    assert (trained / "samples" / "evaluation.png").exists()


@pytest.mark.backend_independent
def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + [2.0, 0.0, 0.0]) == pytest.approx(4.0, abs=1e-6)  # only the means differ
    assert frechet_distance(a, 3 * a) == pytest.approx(3 * (3 - 1) ** 2, rel=0.05)  # sum over dims of (s1 - s2)^2


def test_sizes_follow_the_resolution():
    assert [layout(size) for size in (16, 28, 32, 64, 96)] == [(2, 4), (2, 7), (3, 4), (4, 4), (4, 6)]
    for bad in (30, 12, 512):
        with pytest.raises(UserError, match="--image-size"):
            Config(image_size=bad)
    # The settings stay as asked; what they leave open is resolved apart.
    config = Config(data_dir="faces")
    assert (config.dataset, config.image_size, config.mode, config.conditional) == (None, None, None, None)
    assert resolved_settings(config) == {"dataset": "folder", "image_size": 64, "mode": "rgb", "conditional": False}
    assert resolved_settings(Config()) == {"dataset": "mnist", "image_size": 28, "mode": "grey", "conditional": True}
    assert resolved_settings(Config(tiny=True)) == {"dataset": "tiny", "image_size": 16, "mode": "rgb", "conditional": False}
    with pytest.raises(UserError, match="--ema"):
        Config(ema=1.0)
    plain = build_discriminator(16, 3, 4, normalise=False, dropout=0.3)
    kinds = {type(layer).__name__ for layer in plain.layers}
    assert "BatchNormalization" not in kinds and "Dropout" in kinds and plain.output_shape == (None, 1)


def mixed_folder(folder):
    """Images as users have them: sizes and modes of every kind, and two files that are no images."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    pixels = lambda h, w, c: rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    Image.fromarray(pixels(40, 30, 3)).save(folder / "wide.jpg")
    Image.fromarray(pixels(20, 20, 1)[..., 0], "L").save(folder / "grey.png")
    Image.fromarray(pixels(32, 48, 4), "RGBA").save(folder / "alpha.png")
    Image.fromarray(pixels(24, 24, 3)).convert("P").save(folder / "palette.gif")
    Image.fromarray(pixels(16, 16, 3)).convert("CMYK").save(folder / "print.jpg")
    Image.fromarray(pixels(18, 18, 3)).save(folder / "small.bmp")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "notes.jpg").write_text("not a picture")
    return 6


@pytest.mark.backend_independent
def test_a_folder_of_mixed_images_trains_and_skips_bad_files(tmp_path, capsys):
    good = mixed_folder(tmp_path / "mine")
    x, skipped = data.read_folder(tmp_path / "mine", 16, "RGB")
    err = capsys.readouterr().err
    assert err.count("; skipped\n") == 2 and "broken.png: not a readable image" in err and "notes.jpg" in err
    assert x.shape == (good, 16, 16, 3) and x.dtype == np.uint8 and skipped == 2
    grey, _ = data.read_folder(tmp_path / "mine", 20, "L")
    assert grey.shape == (good, 20, 20, 1)

    run_dir = train(Config(data_dir=str(tmp_path / "mine"), image_size=16, width=4, discriminator_width=4, batch_size=3,
                           epochs=1, samples=4, out=str(tmp_path / "run")))
    assert "6 images as 16x16 rgb (2 skipped)" in capsys.readouterr().out
    assert runs.run_config(run_dir / "generator.keras", "resolved") == {
        "dataset": "folder", "image_size": 16, "mode": "rgb", "conditional": False, "images": 6, "classes": 0}
    with pytest.raises(UserError, match="learnt the images in"):  # no digits to score
        evaluate(argparse.Namespace(model=str(run_dir), classifier=None, dataset=None, data_dir=None, n=10, seed=0))
    generator = runs.load_model(run_dir / "generator.keras", "dcgan")
    assert generator.output_shape == (None, 16, 16, 3)


@pytest.mark.backend_independent
def test_a_huge_image_in_a_folder_is_skipped_and_the_rest_read(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    for index in range(3):
        Image.new("RGB", (20, 20), (80 * index, 0, 0)).save(folder / f"good{index}.png")
    Image.new("RGB", (100, 100)).save(folder / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so 100x100 stands for a 15000x15000 photo
    x, labels, description = data.load("folder", str(folder), 16, "rgb", seed=0)
    assert x.shape == (3, 16, 16, 3) and labels is None and "(1 skipped)" in description
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and f"{folder / 'huge.png'}: more than 2,000 pixels" in warnings[0], warnings


@pytest.mark.backend_independent
def test_folders_without_images_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("projects.dcgan", "train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "run")
    assert_one_line_error(result, "holds no images")
    assert not (tmp_path / "run").exists()  # no run folder for a run that never started

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_text("not a picture")
    (bad / "b.jpg").write_bytes(b"\xff\xd8\xff truncated")
    with pytest.raises(UserError, match="none of the 2 files is a readable image"):
        train(Config(data_dir=str(bad), out=str(tmp_path / "run")))
    fake_mnist(tmp_path / "registry" / "mnist")
    with pytest.raises(UserError, match="pass --dataset mnist"):
        train(Config(data_dir=str(tmp_path / "registry"), out=str(tmp_path / "run")))
    with pytest.raises(UserError, match="fewer than --batch-size"):
        train(Config(dataset="mnist", data_dir=str(tmp_path / "registry"), out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()
