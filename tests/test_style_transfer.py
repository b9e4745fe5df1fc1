"""Neural style transfer end to end on tiny images and a VGG with random weights, as a user runs it."""

import argparse
import json
import re

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import runs
from common.cli import resolve_config
from common.errors import UserError
from common.loop import CHECKPOINT
from conftest import assert_one_line_error
from projects.style_transfer import PROJECT, data, losses, optimize, stylize, train
from projects.style_transfer.__main__ import add_export_flags, add_stylize_flags
from projects.style_transfer.model import build_transform_net

# A random VGG16 cut after block 2 keeps every test cheap; the code paths are those of the real recipe.
VGG = ["--backbone", "vgg16", "--backbone-weights", "random", "--content-layers", "block2_conv2",
       "--style-layers", "block1_conv2,block2_conv2"]
NET = ["--filters", "4", "--residual-blocks", "1"]


def settings(**overrides):
    return {"backbone": "vgg16", "backbone_weights": "random", "content_layers": "block2_conv2",
            "style_layers": "block1_conv2,block2_conv2", **overrides}


def photo_file(path, size=(40, 28), mode="RGB", **save):
    """A smooth photo-like picture saved in the mode asked for."""
    picture = data.tiny_photos(1, max(48, *size), seed=len(str(path)))[0].resize(size)
    picture.convert(mode).save(path, **save)
    return path


def parsed(add_flags, *argv):
    """A command's arguments as its own flags parse them."""
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args([str(arg) for arg in argv])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny fast-network run, shared by the tests that need a trained model."""
    from conftest import run_cli

    run_dir = tmp_path_factory.mktemp("style") / "run"
    result = run_cli("projects.style_transfer", "train", "--tiny", *VGG, *NET, "--epochs", "3", "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


# --- the losses against hand-computed values ----------------------------------------------


def test_losses_match_hand_computed_values():
    # Two positions (a 1x2 image), two channels: F = [[1, 2], [3, 4]] (rows are positions).
    features = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)
    target = np.array([[[[1.0, 1.0], [1.0, 1.0]]]], np.float32)
    # (0 + 1 + 4 + 9) / (1 + 1 + 1 + 1)
    assert float(losses.content_loss(features, target)) == pytest.approx(14 / 4)

    # Its Gram matrix is F^T F / positions = [[5, 7], [7, 10]]; the error is relative to the target's.
    target_gram = np.array([[4.0, 7.0], [7.0, 12.0]], np.float32)
    # ((5 - 4)^2 + 0 + 0 + (10 - 12)^2) / (16 + 49 + 49 + 144)
    assert float(losses.style_loss(features, target_gram)) == pytest.approx(5 / 258)

    # 2x2 grey image: down differences |30 - 0|, |90 - 60| -> mean 30; across |60 - 0|, |90 - 30| -> mean 60
    image = np.repeat(np.array([[0.0, 60.0], [30.0, 90.0]], np.float32)[None, :, :, None], 3, axis=-1)
    assert float(losses.smoothness_loss(image)) == pytest.approx(90 / 255)


def test_perceptual_loss_weights_its_terms_and_blends_styles():
    loss = losses.PerceptualLoss("vgg16", "random", "block2_conv2", "block1_conv2,block2_conv2", 2.0, 3.0, 5.0)
    rng = np.random.default_rng(0)
    photo, painting = (rng.uniform(0, 255, (1, 24, 24, 3)).astype(np.float32) for _ in range(2))
    total, terms = loss(photo, loss.content_targets(photo), loss.style_targets([painting[0]]))
    assert float(terms["content"]) == pytest.approx(0.0, abs=1e-6)  # the photo has its own content
    assert float(total) == pytest.approx(3 * float(terms["style"]) + 5 * float(terms["tv"]), rel=1e-5)
    # Blending a painting with itself changes nothing; half of it with another is the mean of the Gram matrices.
    same = loss.style_targets([painting[0], painting[0]], [0.3, 0.7])
    single = loss.style_targets([painting[0]])
    half = loss.style_targets([painting[0], photo[0]], [0.5, 0.5])
    other = loss.style_targets([photo[0]])
    for name in loss.style_layers:
        np.testing.assert_allclose(same[name], single[name], rtol=1e-5)
        np.testing.assert_allclose(half[name], (single[name] + other[name]) / 2, rtol=1e-5)
    with pytest.raises(UserError, match="vgg16 has no layer block5_conv4"):
        losses.PerceptualLoss("vgg16", "random", "block5_conv4", "block1_conv1", 1, 1, 1)


def test_optimisation_lowers_the_loss(tmp_path):
    photo = np.asarray(data.tiny_photos(1, 32)[0].resize((32, 20)), np.float32)
    config = stylize.StylizeConfig(**settings())
    result, history = optimize.optimise(photo, [data.tiny_painting(32)], [1.0], losses.perceptual_loss(config),
                                        iterations=15, lr=8.0, out=tmp_path, save_every=5)
    first, last = history.losses[0]["loss"], history.losses[-1]["loss"]
    assert last < 0.8 * first, (first, last)
    assert result.shape == photo.shape and 0 <= result.min() and result.max() <= 255
    assert [iteration for iteration, _ in history.snapshots] == [0, 5, 10, 15]
    assert [row["iteration"] for row in history.losses] == list(range(1, 16))
    assert history.compile_seconds > 0 and history.seconds_per_iteration > 0
    # The training loop's metrics.csv holds the mean of each --save-every iterations' losses.
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics["step"]) == [5, 10, 15]
    means = [np.mean([row["loss"] for row in history.losses[start : start + 5]]) for start in (0, 5, 10)]
    np.testing.assert_allclose(metrics["loss"], means, rtol=1e-6)


def test_optimisation_stops_on_a_nan_loss(tmp_path):
    photo = np.asarray(data.tiny_photos(1, 32)[0].resize((32, 20)), np.float32)
    loss = losses.perceptual_loss(stylize.StylizeConfig(**settings()))
    with pytest.raises(UserError, match="loss became nan at step 2"):
        optimize.optimise(photo, [data.tiny_painting(32)], [1.0], loss, iterations=5, lr=float("nan"), out=tmp_path)


# --- the commands -------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_stylize_by_optimisation_keeps_orientation_and_aspect(cli, tmp_path):
    # Stored 64x40 with an EXIF tag saying "rotate 90°": upright, it is 40 wide and 64 high.
    exif = Image.Exif()
    exif[0x0112] = 6
    content = photo_file(tmp_path / "photo.jpg", (64, 40), exif=exif)
    styles = [photo_file(tmp_path / "a.png", (30, 30)), tmp_path / "b.png"]
    data.to_image(data.tiny_painting(30)).save(styles[1])
    out = tmp_path / "out"
    result = cli("projects.style_transfer", "stylize", "--content", content, "--style", styles[0], "--style", styles[1],
                 "--style-weights", "1,3", "--max-size", "32", "--iterations", "4", "--save-every", "2",
                 "--preserve-color", "--out", out, *VGG)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "note:" in result.stderr and "40x64" in result.stderr and "20x32" in result.stderr
    assert Image.open(out / "stylized.png").size == (20, 32)
    for name in ("config.json", "summary.json", "losses.csv", "loss_curve.png", "progress.gif", "progress/iteration_00004.jpg"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["size"] == [20, 32] and summary["iterations"] == 4 and summary["seconds_per_iteration"] > 0
    assert len(pd.read_csv(out / "losses.csv")) == 4
    assert list(pd.read_csv(out / "metrics.csv")["step"]) == [2, 4]
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert not (out / CHECKPOINT).exists()  # a few iterations on one picture are not worth resuming
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["max_size"] == 32 and saved["config"]["out"] == str(out)
    assert saved["resolved"] == {"out": str(out), "max_size": 32, "style_size": 32, "blend": [0.25, 0.75]}

    # Without --max-size the result is at most 512 pixels: what was worked out is recorded, not written into the settings.
    out = stylize.by_optimisation(stylize.StylizeConfig(content=str(content), style=[str(styles[0])], iterations=1,
                                                        out=str(tmp_path / "default"), **settings()))
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["max_size"] is None and saved["resolved"]["max_size"] == 512


def test_fast_network_trains_and_paints_any_size(trained, cli, tmp_path):
    for name in ("config.json", "metrics.csv", "model.keras", "summary.json", "samples/epoch_003.jpg"):
        assert (trained / name).exists(), name
    assert not (trained / CHECKPOINT).exists()  # the finished model replaces it
    metrics = pd.read_csv(trained / "metrics.csv")
    assert list(metrics.columns[:3]) == ["phase", "epoch", "step"]
    assert set(metrics.columns[3:]) == {*train.TERMS, "seconds", "images_per_second"}
    assert list(metrics["epoch"]) == [0, 1, 2]
    assert np.isfinite(metrics["loss"]).all()  # a dozen steps on random crops: too few for the mean to fall reliably
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["stylize_seconds"] > 0 and summary["steps"] == 3 * train.TINY["steps_per_epoch"]
    # --tiny shrinks the crops and the epochs to its small photos: recorded as resolved, the settings left as asked.
    saved = json.loads((trained / "config.json").read_text())
    assert saved["config"]["crop_size"] == 128 and saved["config"]["steps_per_epoch"] == 40
    tiny = {"crop_size": train.TINY["crop_size"], "steps_per_epoch": train.TINY["steps_per_epoch"]}
    assert runs.run_config(trained / "model.keras", "resolved") == {**tiny, "photos": 8, "painting_size": [48, 48]}

    folder = tmp_path / "photos"
    folder.mkdir()
    sizes = {"wide.png": (45, 23), "tall.jpg": (19, 37), "tall2.jpg": (19, 37)}
    for name, size in sizes.items():
        photo_file(folder / name, size)
    (folder / "notes.png").write_text("not a picture")
    out = tmp_path / "out"
    result = cli("projects.style_transfer", "stylize", "--model", trained, "--input", folder, "--out", out, "--batch-size", "2")
    assert result.returncode == 1  # one file could not be read; the others were
    assert_one_line_error(result, "notes.png", "not a readable image")
    for name, size in sizes.items():
        assert Image.open(out / f"{name.rsplit('.', 1)[0]}.png").size == size


def test_export_reloads_with_the_same_output(trained, tmp_path):
    # An existing file is left exactly as it was, unless --overwrite says to replace it.
    target = tmp_path / "existing.keras"
    target.write_bytes(b"the user's own file")
    with pytest.raises(UserError, match=f"^{re.escape(str(target))} exists; pass --overwrite to replace it$"):
        stylize.export(parsed(add_export_flags, "--model", trained, "--out", target))
    assert target.read_bytes() == b"the user's own file"
    exported = stylize.export(parsed(add_export_flags, "--model", trained, "--out", target, "--overwrite"))
    net, reloaded = runs.load_model(trained / "model.keras", PROJECT), runs.load_model(exported, PROJECT)
    x = np.random.default_rng(2).uniform(0, 255, (1, 29, 51, 3)).astype(np.float32)
    expected = np.clip(np.rint(keras.ops.convert_to_numpy(net.predict_on_batch(x))), 0, 255)
    got = keras.ops.convert_to_numpy(reloaded.predict_on_batch(x))
    assert got.dtype == np.uint8 and got.shape == x.shape
    assert np.abs(got.astype(np.int16) - expected).max() <= 1


@pytest.mark.backend_independent
def test_evaluate_scores_outputs_against_the_trained_style(trained, tmp_path, capsys):
    photo = photo_file(tmp_path / "p.png", (32, 24))
    args = argparse.Namespace(model=str(trained), input=[str(photo)], max_size=None, style=None, backbone=None,
                              backbone_weights=None)
    assert train.evaluate(args) == 0
    evaluation = json.loads((trained / "evaluation.json").read_text())
    assert evaluation["mean"]["photo_content"] == pytest.approx(0.0, abs=1e-6)
    assert evaluation["mean"]["stylized_content"] > 0
    assert "stylized" in capsys.readouterr().out


def test_a_run_interrupted_mid_epoch_resumes_as_if_never_stopped(trained, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    flags = dict(tiny=True, epochs=3, out=str(run_dir), filters=4, residual_blocks=1, checkpoint_every=3, **settings())
    original, drawn = data.Crops.batch, []

    def interrupted(self, step):
        if step == 6:  # the third step of the second epoch; the last checkpoint is after step 6 of 12
            raise KeyboardInterrupt
        return original(self, step)

    def recorded(self, step):
        drawn.append(step)
        return original(self, step)

    monkeypatch.setattr(data.Crops, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.train(train.Config(**flags))
    assert (run_dir / CHECKPOINT).exists() and not (run_dir / "summary.json").exists()
    monkeypatch.setattr(data.Crops, "batch", recorded)
    train.train(*resolve_config(PROJECT, train.Config, argparse.Namespace(resume=str(run_dir))))
    assert "continuing after step 6" in capsys.readouterr().out
    assert drawn == list(range(6, 12))  # only the steps not taken, with the crops they would have had

    # Same seed, same settings: the interrupted run ends where the uninterrupted one did.
    resumed, straight = pd.read_csv(run_dir / "metrics.csv"), pd.read_csv(trained / "metrics.csv")
    assert list(resumed["epoch"]) == [0, 1, 2] and list(resumed["step"]) == [4, 8, 12]
    for column in train.TERMS:
        np.testing.assert_allclose(resumed[column], straight[column], rtol=1e-5, err_msg=column)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed"] is True and summary["steps"] == 3 * train.TINY["steps_per_epoch"]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(path.name for path in (run_dir / "samples").iterdir()) == [f"epoch_00{n}.jpg" for n in (1, 2, 3)]
    assert not (run_dir / CHECKPOINT).exists()


def test_network_output_has_the_input_size():
    net = build_transform_net(filters=4, residual_blocks=1)
    for shape in [(1, 16, 16, 3), (2, 17, 33, 3), (1, 30, 21, 3)]:
        out = keras.ops.convert_to_numpy(net.predict_on_batch(np.full(shape, 128, np.float32)))
        assert out.shape == shape and np.isfinite(out).all()


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.backend_independent
@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "P", "L", "I;16"])
def test_odd_image_modes_load_as_rgb(tmp_path, mode):
    if mode == "I;16":
        path = tmp_path / "deep.png"
        Image.fromarray(np.linspace(0, 65535, 24 * 20).reshape(20, 24).astype(np.uint16)).save(path)
    else:
        path = photo_file(tmp_path / f"photo.{'jpg' if mode == 'CMYK' else 'png'}", (24, 20), mode)
    array = data.load(path, 512)
    assert array.shape == (20, 24, 3) and array.dtype == np.float32 and 0 <= array.min() and array.max() <= 255
    if mode == "I;16":
        assert array.max() > 200  # 16-bit values scaled to 8 bits, not clipped to black or white


@pytest.mark.backend_independent
def test_a_huge_photo_is_scaled_down_with_a_note(tmp_path, capsys):
    path = tmp_path / "panorama.jpg"
    Image.new("RGB", (10000, 2000), (90, 140, 200)).save(path, quality=50)
    array = data.load(path, 512)
    assert array.shape == (102, 512, 3)
    assert "panorama.jpg is 10000x2000 pixels; working at 512x102" in capsys.readouterr().err


@pytest.mark.backend_independent
def test_too_small_training_photos_are_left_out_with_a_warning(tmp_path, capsys):
    photo_file(tmp_path / "photo.png", (40, 30))
    photo_file(tmp_path / "icon.png", (12, 12))
    photos = data.content_photos([tmp_path], 24)
    assert [photo.size for photo in photos] == [(32, 24)]  # the shorter side scaled down to 24
    assert "icon.png is only 12x12 pixels; left out" in capsys.readouterr().err.partition("warning: ")[2]


@pytest.mark.backend_independent
def test_bad_inputs_are_clear_messages(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(UserError, match="not a readable image"):
        data.load(tmp_path / "notes.png", 512)
    with pytest.raises(UserError, match="no such file"):
        data.load(tmp_path / "missing.png", 512)
    with pytest.raises(UserError, match="too small"):
        data.load(photo_file(tmp_path / "dot.png", (8, 8)), 512)
    with pytest.raises(UserError, match="--backbone-weights .*nowhere.h5: no such file"):
        train.train(train.Config(tiny=True, backbone_weights=str(tmp_path / "nowhere.h5"), out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="--style-weights gives 1 weights for 2"):
        stylize.StylizeConfig(content="a", style=["b", "c"], style_weights="1", **settings()).blend()
    with pytest.raises(UserError, match="--crop-size must be at least 16"):
        train.Config(crop_size=8)
    with pytest.raises(UserError, match="give --style"):
        train.load(train.Config(content_dir=[str(tmp_path)], **settings()))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        train.load(train.Config(style=str(photo_file(tmp_path / "s.png")), content_dir=[str(tmp_path / "empty")], **settings()))


@pytest.mark.backend_independent
def test_commands_fail_in_one_line(cli, tmp_path):
    photo = photo_file(tmp_path / "p.png")
    (tmp_path / "notes.png").write_text("not a picture")
    result = cli("projects.style_transfer", "stylize", "--content", photo, "--style", tmp_path / "notes.png",
                 "--backbone-weights", tmp_path / "nowhere.h5", "--out", tmp_path / "out")
    assert_one_line_error(result, "nowhere.h5: no such file")  # flags are checked before any image is read
    assert not (tmp_path / "out").exists()


@pytest.mark.backend_independent
def test_stylize_never_replaces_or_deletes_what_the_user_has(trained, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not a picture")
    mine = tmp_path / "mine"
    mine.mkdir()
    # Every input failed: exit status 1, and the empty folder the user made is still there.
    assert stylize.stylize(parsed(add_stylize_flags, "--model", trained, "--input", tmp_path / "notes.png", "--out", mine)) == 1
    assert "notes.png: not a readable image" in capsys.readouterr().err
    assert mine.is_dir() and not any(mine.iterdir())
    # A folder the command made for itself, and left empty, goes again.
    new = tmp_path / "new"
    assert stylize.stylize(parsed(add_stylize_flags, "--model", trained, "--input", tmp_path / "notes.png", "--out", new)) == 1
    assert not new.exists()

    # Two photos with one name get two results; painting into the same folder again is refused.
    (tmp_path / "other").mkdir()
    photos = [photo_file(tmp_path / "photo.png", (24, 20)), photo_file(tmp_path / "other" / "photo.jpg", (20, 24))]
    assert stylize.stylize(parsed(add_stylize_flags, "--model", trained, "--input", *photos, "--out", mine)) == 0
    results = {path.name: path.read_bytes() for path in mine.iterdir()}
    assert sorted(results) == ["photo.png", "photo_2.png"]
    with pytest.raises(UserError, match="is a folder with other files in it; name a new or empty folder"):
        stylize.stylize(parsed(add_stylize_flags, "--model", trained, "--input", *photos, "--out", mine))
    assert {path.name: path.read_bytes() for path in mine.iterdir()} == results

    # --out naming a file, either way of stylizing: refused, the file unchanged.
    listing = tmp_path / "list.txt"
    listing.write_text("mine")
    with pytest.raises(UserError, match=f"^--out {re.escape(str(listing))} is a file; name a folder for the run$"):
        stylize.stylize(parsed(add_stylize_flags, "--model", trained, "--input", photos[0], "--out", listing))
    with pytest.raises(UserError, match=f"^--out {re.escape(str(listing))} is a file; name a folder for the run$"):
        stylize.stylize(parsed(add_stylize_flags, "--content", photos[0], "--style", photos[1], "--iterations", "1",
                               "--out", listing, *VGG))
    assert listing.read_text() == "mine"


@pytest.mark.backend_independent
def test_another_projects_model_is_refused_in_one_line(cli, tmp_path):
    mnist = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    path = runs.save_model(mnist, tmp_path / "mnist.keras", "mnist_cnn")
    photo = photo_file(tmp_path / "p.png")
    out = tmp_path / "out"
    result = cli("projects.style_transfer", "stylize", "--model", path, "--input", photo, "--out", out)
    assert_one_line_error(result, f"{path} is a mnist_cnn model, not a style_transfer one")
    assert not out.exists()
    before = sorted(tmp_path.iterdir())
    with pytest.raises(UserError, match="mnist.keras is a mnist_cnn model, not a style_transfer one"):
        stylize.export(parsed(add_export_flags, "--model", path))
    with pytest.raises(UserError, match="mnist.keras is a mnist_cnn model, not a style_transfer one"):
        train.evaluate(argparse.Namespace(model=str(path), input=[str(photo)], max_size=None, style=None, backbone=None,
                                          backbone_weights=None))
    assert sorted(tmp_path.iterdir()) == before  # no stylizer.keras, no evaluation.json beside it
    # A model file that names no project is still no style-transfer network.
    mnist.save(tmp_path / "plain.keras")
    with pytest.raises(UserError, match=r"plain.keras takes inputs of shape \(None, 28, 28, 1\), not RGB images of any size"):
        stylize.export(parsed(add_export_flags, "--model", tmp_path / "plain.keras"))
    assert not (tmp_path / "stylizer.keras").exists()


@pytest.mark.backend_independent
@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_count_flags_are_whole_numbers_of_at_least_one(value, capsys):
    with pytest.raises(SystemExit):
        parsed(add_stylize_flags, "--batch-size", value)
    assert "argument --batch-size" in capsys.readouterr().err
