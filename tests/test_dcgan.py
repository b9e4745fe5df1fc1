"""The DCGAN as a user runs it, on tiny generated shapes: training (killed and resumed), its gradient
steps, generating, scoring with a classifier, and reading folders of images."""

import argparse
import json
import os
import re
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import runs
from common.errors import UserError
from helpers import assert_one_line_error, fake_mnist, file_bytes, run_command, run_killed_at
from projects.dcgan import data
from projects.dcgan.evaluate import CONFIDENCE, evaluate, frechet_distance
from projects.dcgan.gan import GAN
from projects.dcgan.generate import classes_of, draw, generate
from projects.dcgan.model import build_discriminator, build_generator, discriminator_loss, generator_loss, layout
from projects.dcgan.train import FIXED_NOISE_STREAM, Config, resolved_settings, sample_grid, train

# A conditional GAN on the tiny squares (label 0) and discs (label 1), 28 px grey like MNIST so that
# a digit classifier can read its images: 256 images in batches of 32, 8 steps an epoch.
SETTINGS = dict(tiny=True, conditional=True, image_size=28, mode="grey", width=8, discriminator_width=8, batch_size=32, epochs=2)
TINY = [f"--{name.replace('_', '-')}" + ("" if value is True else f"={value}") for name, value in SETTINGS.items()]
STEPS_PER_EPOCH = 8


def values(variables):
    return [keras.ops.convert_to_numpy(variable.value) for variable in variables]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The one training run the tests share: its run folder."""
    run_dir = tmp_path_factory.mktemp("dcgan") / "run"
    result = run_command("projects.dcgan", "train", *TINY, "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_train_writes_a_complete_run_and_the_discriminator_learns_to_tell(trained):
    for name in ("config.json", "metrics.csv", "generator.keras", "discriminator.keras", "summary.json",
                 "samples/epoch_001.png", "samples/epoch_002.png", "samples/final.png", "samples/progress.gif"):
        assert (trained / name).is_file(), name
    assert any((trained / "tensorboard").iterdir())
    assert not (trained / "checkpoint.npz").exists()  # removed once the run finished
    with Image.open(trained / "samples" / "progress.gif") as gif:
        assert gif.n_frames == 2
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow") and summary["resumed"] is False
    assert summary["training_images"] == 2 * STEPS_PER_EPOCH * 32
    assert runs.run_config(trained / "generator.keras", "resolved") == {
        "dataset": "tiny", "image_size": 28, "mode": "grey", "conditional": True, "images": 256, "classes": 2}
    metrics = pd.read_csv(trained / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1] and list(metrics["step"]) == [8, 16]
    last = metrics.iloc[-1]
    assert last["d_loss"] < metrics["d_loss"].iloc[0] - 0.1
    assert last["real_score"] > last["fake_score"] + 0.1  # real shapes are judged more real than generated ones
    assert summary["metrics"] == pytest.approx(last[["d_loss", "g_loss", "real_score", "fake_score"]].to_dict())

    generator = runs.load_model(trained / "generator.keras", "dcgan")
    assert generator.output_shape == (None, 28, 28, 1) and classes_of(generator) == 2
    # generator.keras is the generator that drew the last sample grid: the weight average.
    noise = np.random.default_rng([0, FIXED_NOISE_STREAM]).standard_normal((64, 100)).astype(np.float32)
    drawn = sample_grid(SimpleNamespace(sample=lambda noise, labels: generator.predict([noise, labels], verbose=0), classes=2), noise)
    with Image.open(trained / "samples" / "final.png") as final:
        difference = np.abs(np.asarray(final, np.int16) - np.asarray(drawn, np.int16))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3, (difference.max(), (difference > 0).mean())


def test_a_run_killed_mid_epoch_resumes_to_exactly_the_uninterrupted_run(trained, tmp_path):
    run_dir = tmp_path / "run"
    # Checkpoints every 5 steps and at each epoch's end: after steps 5, 8 and 10. The process is
    # killed right after step 12 (epoch 1, batch 3) has reached the callbacks, so the resumed run
    # starts from the mid-epoch checkpoint of step 10 and takes steps 11 and 12 again.
    run_killed_at("projects.dcgan", "train", *TINY, "--checkpoint-every", "5", "--out", run_dir, epoch=1, batch=3)
    with np.load(run_dir / "checkpoint.npz") as checkpoint:
        assert json.loads(str(checkpoint["loop_state"]))["step"] == 10
    assert not (run_dir / "summary.json").exists() and not (run_dir / "generator.keras").exists()
    assert list(pd.read_csv(run_dir / "metrics.csv")["step"]) == [8]

    result = run_command("projects.dcgan", "train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing after step 10" in result.stdout
    assert json.loads((run_dir / "summary.json").read_text())["resumed"] is True
    # Same seed, same settings: the killed run ends exactly where the uninterrupted one did.
    resumed, straight = pd.read_csv(run_dir / "metrics.csv"), pd.read_csv(trained / "metrics.csv")
    assert list(resumed["step"]) == [8, 16]
    for column in ("d_loss", "g_loss", "real_score", "fake_score"):
        assert resumed[column].to_numpy() == pytest.approx(straight[column].to_numpy(), rel=1e-5), column
    for name in ("generator.keras", "discriminator.keras"):
        ours, theirs = (values(runs.load_model(folder / name, "dcgan").weights) for folder in (run_dir, trained))
        for mine, reference in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-6, err_msg=name)

    result = run_command("projects.dcgan", "train", "--resume", run_dir)
    assert_one_line_error(result, "already finished")


def test_the_losses_are_the_non_saturating_cross_entropies():
    real, fake = np.array([[2.0], [-1.0], [0.5]], np.float32), np.array([[-3.0], [0.0], [1.5]], np.float32)
    minus_log_sigmoid = lambda x: np.log1p(np.exp(-x.astype(np.float64)))
    # The discriminator: -log D(real) - log(1 - D(fake)); the generator: -log D(fake).
    assert float(keras.ops.convert_to_numpy(discriminator_loss(real, fake))) == pytest.approx(
        minus_log_sigmoid(real).mean() + minus_log_sigmoid(-fake).mean(), rel=1e-6)
    assert float(keras.ops.convert_to_numpy(generator_loss(fake))) == pytest.approx(minus_log_sigmoid(fake).mean(), rel=1e-6)


def test_each_gradient_step_trains_its_own_network_down_its_loss():
    keras.utils.set_random_seed(0)
    gan = GAN(Config(**SETTINGS), 28, 1, classes=2)  # the shared run's networks and steps, as they start
    x, labels = data.tiny_shapes(32, 28, "L", seed=0)
    rng = np.random.default_rng(0)
    noise, fake_labels = gan.noise(rng, 32), gan.random_labels(rng, 32)
    generator_before = values(gan.generator.trainable_variables)
    # Each figure is the one before that step's update: on the same batch each time, the loss falls as
    # the discriminator's mean probability of "real" grows for real images against generated ones.
    d_steps = [gan.d_step(data.to_unit_range(x), noise, labels[:, None], fake_labels) for _ in range(3)]
    d_losses, margins = zip(*[(loss, scores["real_score"] - scores["fake_score"]) for loss, scores in d_steps])
    assert d_losses[0] > d_losses[1] > d_losses[2] and margins[0] < margins[1] < margins[2]
    assert all(np.array_equal(a, b) for a, b in zip(values(gan.generator.trainable_variables), generator_before, strict=True))

    discriminator_before = values(gan.discriminator.trainable_variables)
    g_losses = [gan.g_step(noise, fake_labels)[0] for _ in range(3)]
    assert g_losses[0] > g_losses[1] > g_losses[2]
    assert all(np.array_equal(a, b) for a, b in zip(values(gan.discriminator.trainable_variables), discriminator_before, strict=True))


def generate_args(model, out, n=3, seed=0, overwrite=False, label=None):
    return argparse.Namespace(model=str(model), n=n, out=str(out), seed=seed, overwrite=overwrite, label=label)


@pytest.mark.backend_independent
def test_generate_writes_the_seeded_images_as_pngs_or_one_array(trained, tmp_path):
    generator = runs.load_model(trained / "generator.keras", "dcgan")
    result = run_command("projects.dcgan", "generate", "--model", trained, "--n", "7", "--out", tmp_path / "many.npz", "--seed", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp_path / "many.npz") as saved:
        generated = saved["images"]
    assert generated.dtype == np.uint8 and np.array_equal(generated, draw(generator, 7, 3))
    assert not np.array_equal(generated, draw(generator, 7, 4))  # the seed fixes the images

    generate(generate_args(trained, tmp_path / "pngs", n=5))
    files = sorted((tmp_path / "pngs").iterdir())
    assert [f.name for f in files] == [f"{i}.png" for i in range(5)]
    for file, image in zip(files, draw(generator, 5, 0)):
        with Image.open(file) as png:
            assert png.mode == "L" and np.array_equal(np.asarray(png), image[..., 0])

    generate(generate_args(trained, tmp_path / "discs.npz", n=4, label=1))
    with np.load(tmp_path / "discs.npz") as saved:
        assert np.array_equal(saved["images"], draw(generator, 4, 0, label=1))


@pytest.mark.backend_independent
def test_a_conditional_generator_draws_the_class_asked_for(trained):
    generator = runs.load_model(trained / "generator.keras", "dcgan")
    noise = np.random.default_rng(0).standard_normal((4, 100)).astype(np.float32)
    squares, discs = (keras.ops.convert_to_numpy(generator([noise, np.full((4, 1), k)])) for k in (0, 1))
    assert np.abs(squares - discs).max() > 1e-3  # same noise: the label alone changes the images
    both = draw(generator, 4, 0)  # classes in turn: 0, 1, 0, 1
    assert np.array_equal(both[0::2], draw(generator, 4, 0, label=0)[0::2])
    assert np.array_equal(both[1::2], draw(generator, 4, 0, label=1)[1::2])
    for label in (2, -1):
        with pytest.raises(UserError, match=f"--label {label}: this generator draws classes 0 to 1"):
            draw(generator, 1, 0, label=label)
    with pytest.raises(UserError, match="not conditional"):
        draw(build_generator(16, 1, 4, 100), 1, 0, label=0)

    discriminator = runs.load_model(trained / "discriminator.keras", "dcgan")
    image = np.zeros((1, 28, 28, 1), np.float32)
    logits = [float(keras.ops.convert_to_numpy(discriminator([image, np.array([[k]])]))[0, 0]) for k in (0, 1)]
    assert abs(logits[0] - logits[1]) > 1e-4  # it judges an image as the class it is said to be
    with pytest.raises(UserError, match="labelled images"):
        Config(data_dir="faces", conditional=True)


@pytest.mark.backend_independent
def test_generate_never_replaces_a_file_unless_told_to(trained, tmp_path):
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "1.png").write_bytes(b"the user's picture")
    (tmp_path / "pngs" / "notes.txt").write_bytes(b"the user's notes")
    (tmp_path / "digits.npz").write_bytes(b"the user's array")
    (tmp_path / "digits").write_bytes(b"a file, not a folder")
    before = file_bytes(tmp_path)
    with pytest.raises(UserError, match=r"pngs/1\.png exists; pass --overwrite to replace it"):
        generate(generate_args(trained, tmp_path / "pngs"))
    with pytest.raises(UserError, match=r"digits\.npz exists; pass --overwrite to replace it"):
        generate(generate_args(trained, tmp_path / "digits.npz"))
    with pytest.raises(UserError, match="digits is a file; name a folder for PNG files, or a .npz file"):
        generate(generate_args(trained, tmp_path / "digits", overwrite=True))
    assert file_bytes(tmp_path) == before  # byte for byte, and nothing added

    generate(generate_args(trained, tmp_path / "pngs", overwrite=True))
    generate(generate_args(trained, tmp_path / "digits.npz", overwrite=True))
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["0.png", "1.png", "2.png", "notes.txt"]
    with Image.open(tmp_path / "pngs" / "1.png") as image:
        assert image.size == (28, 28)
    assert (tmp_path / "pngs" / "notes.txt").read_bytes() == b"the user's notes"
    with np.load(tmp_path / "digits.npz") as saved:
        assert saved["images"].shape == (3, 28, 28, 1)


@pytest.mark.backend_independent
def test_models_of_another_project_are_refused(trained, tmp_path):
    small = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    runs.save_model(small, tmp_path / "gan.keras", "dcgan")
    runs.save_model(small, tmp_path / "digits.keras", "mnist_cnn")
    before = file_bytes(tmp_path), file_bytes(trained)
    evaluate_args = dict(model=str(trained), dataset="mnist", data_dir=None, n=10, seed=0)
    for classifier in (tmp_path / "gan.keras", trained):  # a dcgan model file, a dcgan run folder
        with pytest.raises(UserError, match=f"^{re.escape(str(classifier))} is a dcgan model, not a mnist_cnn one; use it with python -m projects.dcgan$"):
            evaluate(argparse.Namespace(classifier=str(classifier), **evaluate_args))
    with pytest.raises(UserError, match="digits.keras is a mnist_cnn model, not a dcgan one; use it with python -m projects.mnist_cnn"):
        generate(generate_args(tmp_path / "digits.keras", tmp_path / "new.npz"))
    assert (file_bytes(tmp_path), file_bytes(trained)) == before


@pytest.mark.backend_independent
def test_count_flags_take_whole_numbers_of_at_least_one(tmp_path):
    result = run_command("projects.dcgan", "generate", "--n", "0", "--out", tmp_path / "x.npz")
    assert_one_line_error(result, "argument --n: must be at least 1, got 0")
    result = run_command("projects.dcgan", "evaluate", "--n", "many")
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
    assert file_bytes(tmp_path) == {existing: b"the user's notes"}


def classifier_features(images, centre):
    """What the controlled classifier's last Dense layer reads: the sums of the pixels of the top half and of
    the left half, less `centre` (whole numbers, which float32 holds exactly)."""
    x = images[..., 0].astype(np.float64)
    return np.stack([x[:, :14].sum((1, 2)), x[:, :, :14].sum((1, 2))], axis=1) - centre


def controlled_classifier(centre, sharpness):
    """A digit classifier whose every number the test knows: features as `classifier_features` computes them;
    class 0 with the logit `sharpness` x the first feature, class 1 with 0, the others never."""
    top, left = np.zeros((28, 28), np.float32), np.zeros((28, 28), np.float32)
    top[:14], left[:, :14] = 1, 1
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(2), keras.layers.Dense(10),
                              keras.layers.Activation("softmax")])
    kernel = np.zeros((2, 10), np.float32)
    kernel[0, 0] = sharpness
    model.layers[1].set_weights([np.stack([top.ravel(), left.ravel()], axis=1), -np.asarray(centre, np.float32)])
    model.layers[2].set_weights([kernel, np.array([0, 0] + [-30] * 8, np.float32)])
    return model


def frechet_by_hand(a, b):
    """||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2)), the root's trace from the eigenvalues of C_a C_b."""
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_trace = np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real.clip(0)).sum()
    return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * root_trace


@pytest.mark.backend_independent
def test_evaluate_reports_what_the_classifier_reads_in_the_generated_images(trained, tmp_path):
    n, seed = 100, 0
    fake_mnist(tmp_path / "mnist", train=40, test=40)  # as many training as test images: all of them are compared
    generated = draw(runs.load_model(trained / "generator.keras", "dcgan"), n, seed)
    top = classifier_features(generated, 0)[:, 0]
    centre = [np.median(top), 14 * 28 * 128]
    # Read with p >= 0.9 exactly when |sharpness x feature| >= ln 9: the sharpness puts that boundary in
    # the widest gap between the images' distances from the centre, with about 40% of them inside it.
    distances = np.sort(np.abs(top - centre[0]))
    gaps = np.diff(distances)[int(0.3 * n) : int(0.5 * n)]
    assert gaps.max() > 0, "the generated images hardly differ"
    widest = int(0.3 * n) + gaps.argmax()
    sharpness = np.log(9) / distances[widest : widest + 2].mean()
    runs.save_model(controlled_classifier(centre, sharpness), tmp_path / "classifier.keras", "mnist_cnn")

    result = run_command("projects.dcgan", "evaluate", "--model", trained, "--classifier", tmp_path / "classifier.keras",
                         "--data-dir", tmp_path, "--n", n, "--seed", seed)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((trained / "evaluation.json").read_text())

    features = classifier_features(generated, centre)
    logits = np.zeros((n, 10))
    logits[:, 0], logits[:, 2:] = sharpness * features[:, 0], -30
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    predicted = probabilities.argmax(1)
    confident = (probabilities.max(1) >= CONFIDENCE).mean()
    assert 0.3 < confident < 0.9 and evaluation["confident_share"] == pytest.approx(confident)
    assert evaluation["class_shares"] == pytest.approx(np.bincount(predicted, minlength=10) / n)
    assert evaluation["read_as_asked"] == pytest.approx((predicted == np.arange(n) % 2).mean())  # asked 0, 1, 0, ...
    (x_train, _), (x_test, _) = data.load_real("mnist", tmp_path)
    test_features = classifier_features(x_test, centre)
    assert evaluation["frechet_generated_test"] == pytest.approx(frechet_by_hand(features, test_features), rel=1e-6)
    assert evaluation["frechet_train_test"] == pytest.approx(frechet_by_hand(classifier_features(x_train, centre), test_features), rel=1e-6)
    assert evaluation["images"] == n and evaluation["dataset"] == "mnist"
    with Image.open(trained / "samples" / "evaluation.png") as picture:
        assert picture.size[0] > 10 * 28


@pytest.mark.backend_independent
def test_frechet_distance_of_planted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 2.0, 0.0], [0.3, 0.0, 0.5]]) + [1.0, -2.0, 0.5]
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + [2.0, 0.0, -1.0]) == pytest.approx(5.0, abs=1e-6)  # only the means differ
    # 3a: the means 2 mu apart, and tr(C + 9C - 2 (9 C^2)^(1/2)) = 4 tr(C).
    assert frechet_distance(a, 3 * a) == pytest.approx(4 * ((a.mean(0) ** 2).sum() + np.trace(np.cov(a, rowvar=False))), rel=1e-9)
    b = rng.standard_normal((3000, 3)) @ np.array([[0.5, 0.0, 0.2], [0.4, 1.0, 0.0], [0.0, -0.7, 1.5]])
    assert frechet_distance(a, b) == pytest.approx(frechet_by_hand(a, b), rel=1e-9) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    # Drawn from N(0, I) and N(m, s^2 I) in 3 dimensions: the distance nears |m|^2 + 3 (1 - s)^2.
    c, d = rng.standard_normal((20000, 3)), 2 * rng.standard_normal((20000, 3)) + [1.0, 1.0, 0.0]
    assert frechet_distance(c, d) == pytest.approx(2 + 3 * (1 - 2) ** 2, rel=0.03)


@pytest.mark.backend_independent
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
    assert list(pd.read_csv(run_dir / "metrics.csv")["step"]) == [2]  # 6 images in batches of 3
    with pytest.raises(UserError, match="learnt the images in"):  # no digits to score
        evaluate(argparse.Namespace(model=str(run_dir), classifier=None, dataset=None, data_dir=None, n=10, seed=0))
    generator = runs.load_model(run_dir / "generator.keras", "dcgan")
    assert generator.output_shape == (None, 16, 16, 3) and classes_of(generator) == 0


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
    assert sorted(x[:, 8, 8, 0].tolist()) == [0, 80, 160]  # each good image, in its own colour
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and f"{folder / 'huge.png'}: more than 2,000 pixels" in warnings[0], warnings


@pytest.mark.backend_independent
def test_folders_without_images_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_command("projects.dcgan", "train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "run")
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
