"""Neural style transfer on tiny pictures and a VGG with random weights: the losses by hand, the one-picture
optimisation and the fast network end to end, as a user runs them."""

import argparse
import json

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import backend, runs
from common.errors import UserError
from common.loop import CHECKPOINT
from helpers import assert_one_line_error, run_command, run_killed_at
from projects.style_transfer import PROJECT, data, losses, optimize, stylize, train
from projects.style_transfer.model import build_transform_net

# A random VGG16 cut after block 2 keeps every test cheap; the code paths are those of the real recipe.
VGG = ["--backbone", "vgg16", "--backbone-weights", "random", "--content-layers", "block2_conv2",
       "--style-layers", "block1_conv2,block2_conv2"]
# Two epochs of four steps on 32-pixel crops of the generated photos, at the default learning rate.
TRAIN = ["train", "--tiny", *VGG, "--filters", "4", "--residual-blocks", "1", "--epochs", "2",
         "--checkpoint-every", "3"]


def settings(**overrides):
    return {"backbone": "vgg16", "backbone_weights": "random", "content_layers": "block2_conv2",
            "style_layers": "block1_conv2,block2_conv2", **overrides}


def photo_file(path, size=(40, 28), mode="RGB", seed=None, **save):
    """A smooth, colourful photo-like picture saved in the mode asked for; by default each file name has its own."""
    seed = sum(map(ord, path.name)) if seed is None else seed
    picture = data.tiny_photos(1, max(48, *size), seed=seed)[0].resize(size)
    picture.convert(mode).save(path, **save)
    return path


def style_transfer(*args):
    """`python -m projects.style_transfer ARGS`, in this process."""
    return run_command("projects.style_transfer", *args)


def number(tensor):
    return float(keras.ops.convert_to_numpy(tensor))


def ycbcr(array):
    """Luma and the two chroma channels of an RGB array, as float arrays (Pillow's conversion)."""
    return np.asarray(data.to_image(array).convert("YCbCr"), np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny fast-network run of the `train` command, shared by the tests that need a trained network."""
    run_dir = tmp_path_factory.mktemp("style") / "run"
    result = style_transfer(*TRAIN, "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def network(trained):
    """The trained network, loaded once: what the tests compare the commands' pictures with."""
    return runs.load_model(trained / "model.keras", PROJECT)


def paint(net, photo):
    """The network's picture of one photo (float RGB), rounded and clipped as a saved picture is."""
    return np.clip(np.rint(net.predict_on_batch(np.asarray(photo, np.float32)[None])[0]), 0, 255)


@pytest.fixture(scope="module")
def perceptual():
    """The perceptual loss of the tests' settings, with the random VGG a run of seed 0 builds, weighted 2, 3, 5."""
    backend.set_random_seed(0)
    return losses.PerceptualLoss("vgg16", "random", "block2_conv2", "block1_conv2,block2_conv2", 2.0, 3.0, 5.0)


@pytest.fixture(scope="module")
def optimised(tmp_path_factory):
    """One `stylize --content --style` run: a photo stored sideways with an EXIF tag saying "rotate 90°"
    (64x40 as stored, 40x64 upright), shrunk to 20x32, repainted in a blend of two paintings, colours kept."""
    folder = tmp_path_factory.mktemp("optimised")
    exif = Image.Exif()
    exif[0x0112] = 6
    content = photo_file(folder / "photo.jpg", (64, 40), exif=exif, quality=95)
    styles = [photo_file(folder / "a.png", (30, 30)), folder / "b.png"]
    data.to_image(data.tiny_painting(30)).save(styles[1])
    out = folder / "out"
    result = style_transfer("stylize", "--content", content, "--style", styles[0], "--style", styles[1],
                            "--style-weights", "1,3", "--max-size", "32", "--iterations", "12", "--save-every", "4",
                            "--lr", "8", "--preserve-color", "--out", out, *VGG)
    assert result.returncode == 0, result.stderr[-3000:]
    return argparse.Namespace(content=content, styles=styles, out=out, result=result)


# --- the losses against hand-computed values ----------------------------------------------


def test_losses_match_hand_computed_values():
    # Two positions (a 1x2 image), two channels: F = [[1, 2], [3, 4]] (rows are positions).
    features = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)
    target = np.array([[[[1.0, 1.0], [1.0, 1.0]]]], np.float32)
    # (0 + 1 + 4 + 9) / (1 + 1 + 1 + 1)
    assert number(losses.content_loss(features, target)) == pytest.approx(14 / 4)

    # Its Gram matrix is F^T F / positions = [[5, 7], [7, 10]]; the error is relative to the target's.
    target_gram = np.array([[4.0, 7.0], [7.0, 12.0]], np.float32)
    # ((5 - 4)^2 + 0 + 0 + (10 - 12)^2) / (16 + 49 + 49 + 144)
    assert number(losses.style_loss(features, target_gram)) == pytest.approx(5 / 258)

    # 2x2 grey image: down differences |30 - 0|, |90 - 60| -> mean 30; across |60 - 0|, |90 - 30| -> mean 60
    image = np.repeat(np.array([[0.0, 60.0], [30.0, 90.0]], np.float32)[None, :, :, None], 3, axis=-1)
    assert number(losses.smoothness_loss(image)) == pytest.approx(90 / 255)


def test_perceptual_loss_weights_its_terms_and_blends_styles(perceptual):
    loss = perceptual
    rng = np.random.default_rng(0)
    photo, painting = (rng.uniform(0, 255, (1, 48, 48, 3)).astype(np.float32) for _ in range(2))
    styles = loss.style_targets([painting[0]])
    _, own = loss(photo, loss.content_targets(photo), styles)
    assert number(own["content"]) == pytest.approx(0.0, abs=1e-6)  # the photo has its own content

    # Against another picture's content: the three terms again in NumPy, from the VGG's feature maps.
    total, terms = loss(photo, loss.content_targets(painting), styles)
    features, targets = ({name: keras.ops.convert_to_numpy(value).astype(np.float64) for name, value in maps.items()}
                         for maps in (loss.features(photo), loss.features(painting)))

    def gram(f):
        flat = f.reshape(-1, f.shape[-1])
        return flat.T @ flat / len(flat)

    content = np.sum((features["block2_conv2"] - targets["block2_conv2"]) ** 2) / np.sum(targets["block2_conv2"] ** 2)
    style = np.mean([np.sum((gram(features[n]) - gram(targets[n])) ** 2) / np.sum(gram(targets[n]) ** 2)
                     for n in ("block1_conv2", "block2_conv2")])
    tv = (np.abs(np.diff(photo, axis=1)).mean() + np.abs(np.diff(photo, axis=2)).mean()) / 255
    assert [number(terms[name]) for name in ("content", "style", "tv")] == pytest.approx([content, style, tv], rel=1e-4)
    assert number(total) == pytest.approx(2 * content + 3 * style + 5 * tv, rel=1e-4)

    # Blending a painting with itself changes nothing; half of it with another is the mean of the Gram matrices.
    same = loss.style_targets([painting[0], painting[0]], [0.3, 0.7])
    half = loss.style_targets([painting[0], photo[0]], [0.5, 0.5])
    other = loss.style_targets([photo[0]])
    for name in loss.style_layers:
        np.testing.assert_allclose(same[name], styles[name], rtol=1e-5)
        np.testing.assert_allclose(half[name], (styles[name] + other[name]) / 2, rtol=1e-5)
    with pytest.raises(UserError, match="vgg16 has no layer block5_conv4"):
        losses.PerceptualLoss("vgg16", "random", "block5_conv4", "block1_conv1", 1, 1, 1)


# --- the optimisation ---------------------------------------------------------------------


def test_optimisation_lowers_the_loss(optimised):
    out = optimised.out
    curve = pd.read_csv(out / "losses.csv")
    assert list(curve["iteration"]) == list(range(1, 13))
    assert curve["loss"].iloc[-1] < 0.7 * curve["loss"].iloc[0], list(curve["loss"])
    # The training loop's metrics.csv holds the mean of each --save-every iterations' losses.
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["step"]) == [4, 8, 12]
    np.testing.assert_allclose(metrics["loss"], curve["loss"].to_numpy().reshape(3, 4).mean(axis=1), rtol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"] == pytest.approx(curve.iloc[-1][list(train.TERMS)].to_dict())
    assert summary["iterations"] == 12 and summary["seconds_per_iteration"] > 0
    snapshots = sorted(path.name for path in (out / "progress").iterdir())
    assert snapshots == [f"iteration_{n:05d}.jpg" for n in (0, 4, 8, 12)]
    assert Image.open(out / "progress.gif").n_frames == 4


@pytest.mark.backend_independent
def test_stylize_by_optimisation_keeps_orientation_and_aspect(optimised, tmp_path):
    out, stderr = optimised.out, optimised.result.stderr
    assert "note:" in stderr and "40x64" in stderr and "20x32" in stderr
    assert Image.open(out / "stylized.png").size == (20, 32)
    assert json.loads((out / "summary.json").read_text())["size"] == [20, 32]
    for name in ("loss_curve.png", "progress.gif"):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert not (out / CHECKPOINT).exists()  # a few iterations on one picture are not worth resuming
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["max_size"] == 32 and saved["config"]["out"] == str(out)
    assert saved["resolved"] == {"out": str(out), "max_size": 32, "style_size": 32, "blend": [0.25, 0.75]}

    # Without --max-size the result is at most 512 pixels: what was worked out is recorded, not put in the settings.
    config = stylize.StylizeConfig(content=str(optimised.content), style=[str(optimised.styles[0])], iterations=1,
                                   out=str(tmp_path / "default"), **settings())
    saved = json.loads((stylize.by_optimisation(config) / "config.json").read_text())
    assert saved["config"]["max_size"] is None and saved["resolved"]["max_size"] == 512
    assert Image.open(tmp_path / "default" / "stylized.png").size == (40, 64)


@pytest.mark.backend_independent
def test_preserve_color_keeps_the_photos_colours(optimised):
    photo = ycbcr(data.load(optimised.content, 32))
    result = ycbcr(np.asarray(Image.open(optimised.out / "stylized.png"), np.float32))
    assert np.abs(photo[..., 1:] - 128).mean() > 10  # a colourful photo, so grey or repainted colours would show
    assert np.abs(result[..., 1:] - photo[..., 1:]).mean() < 0.5  # its chroma, to rounding
    assert np.abs(result[..., 0] - photo[..., 0]).mean() > 2  # under a new luminance


@pytest.mark.backend_independent  # the shared loop's check of every loss, the same under both backends
def test_optimisation_stops_on_a_nan_loss(tmp_path):
    photo = np.asarray(data.tiny_photos(1, 32)[0].resize((20, 32)), np.float32)
    loss = losses.perceptual_loss(stylize.StylizeConfig(**settings()))
    with pytest.raises(UserError, match="loss became nan at step 2"):
        optimize.optimise(photo, [data.tiny_painting(32)], [1.0], loss, iterations=3, lr=float("nan"), out=tmp_path)


# --- the fast network ---------------------------------------------------------------------


@pytest.mark.backend_independent
def test_an_untrained_network_returns_the_photo_at_its_own_size():
    # Its last layer starts at zero, so the change it adds is nothing, whatever the (odd) size; under JAX
    # the trained network's pictures of odd sizes show the cropping.
    net = build_transform_net(filters=4, residual_blocks=1)
    photos = np.random.default_rng(0).uniform(0, 255, (2, 17, 33, 3)).astype(np.float32)
    np.testing.assert_array_equal(net.predict_on_batch(photos), photos)


def test_fast_network_trains_and_records_every_epoch(trained):
    for name in ("config.json", "metrics.csv", "model.keras", "summary.json", "samples/epoch_002.jpg"):
        assert (trained / name).exists(), name
    assert not (trained / CHECKPOINT).exists()  # the finished model replaces it
    metrics = pd.read_csv(trained / "metrics.csv")
    assert list(metrics.columns[:3]) == ["phase", "epoch", "step"]
    assert set(metrics.columns[3:]) == {*train.TERMS, "seconds", "images_per_second"}
    assert list(metrics["epoch"]) == [0, 1] and list(metrics["step"]) == [4, 8]
    # Each epoch's loss is the mean of its steps' weighted sums: content + 100 x style + tv.
    np.testing.assert_allclose(metrics["loss"], metrics["content"] + 100 * metrics["style"] + metrics["tv"], rtol=1e-5)
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["stylize_seconds"] > 0 and summary["steps"] == 2 * train.TINY["steps_per_epoch"]
    assert summary["metrics"] == pytest.approx(metrics.iloc[-1][list(train.TERMS)].to_dict())
    # --tiny shrinks the crops and the epochs to its small photos: recorded as resolved, the settings left as asked.
    saved = json.loads((trained / "config.json").read_text())
    assert saved["config"]["crop_size"] == 128 and saved["config"]["steps_per_epoch"] == 40
    tiny = {"crop_size": train.TINY["crop_size"], "steps_per_epoch": train.TINY["steps_per_epoch"]}
    assert runs.run_config(trained / "model.keras", "resolved") == {**tiny, "photos": 8, "painting_size": [48, 48]}


def test_evaluate_scores_outputs_against_the_trained_style(trained, network, perceptual, tmp_path):
    photos = [photo_file(tmp_path / f"p{n}.png", (48, 48), seed=n) for n in range(3)]
    result = style_transfer("evaluate", "--model", trained, "--input", *photos)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((trained / "evaluation.json").read_text())
    assert [row["file"] for row in evaluation["photos"]] == list(map(str, photos))

    # The same figures, worked out here with the VGG the run trained with, for the photos and the network's outputs.
    styles = perceptual.style_targets([data.tiny_painting()])
    for row, path in zip(evaluation["photos"], photos):
        photo = np.asarray(Image.open(path), np.float32)[None]
        stylized = np.clip(network.predict_on_batch(photo), 0, 255)
        for label, image in (("photo", photo), ("stylized", stylized)):
            _, terms = perceptual(image, perceptual.content_targets(photo), styles)
            for name in ("content", "style", "tv"):
                assert row[f"{label}_{name}"] == pytest.approx(number(terms[name]), rel=1e-3, abs=1e-6), (label, name)
        assert row["stylized_loss"] == pytest.approx(row["stylized_content"] + 100 * row["stylized_style"]
                                                     + row["stylized_tv"], rel=1e-5)
    mean = evaluation["mean"]
    assert mean["photo_content"] == pytest.approx(0.0, abs=1e-6)
    # Eight steps are enough to bring what the network paints closer to the striped painting than the photos were.
    assert mean["stylized_style"] < 0.9 * mean["photo_style"], mean
    assert f"{mean['stylized_style']:12.4g}" in result.stdout


def test_stylize_with_the_network_paints_any_size(trained, network, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    sizes = {"wide.png": (45, 23), "tall.png": (19, 37), "tall2.png": (19, 37)}
    for name, size in sizes.items():
        photo_file(folder / name, size)
    (folder / "notes.png").write_text("not a picture")
    out = tmp_path / "out"
    result = style_transfer("stylize", "--model", trained, "--input", folder, "--out", out, "--batch-size", "2")
    assert result.returncode == 1  # one file could not be read; the others were
    assert_one_line_error(result, "notes.png", "not a readable image")
    for name, size in sizes.items():
        painted = np.asarray(Image.open(out / name), np.int16)
        assert painted.shape == (size[1], size[0], 3)
        assert np.abs(painted - paint(network, Image.open(folder / name))).max() <= 1, name


def test_export_reloads_with_the_same_output(trained, network, tmp_path):
    # An existing file is left exactly as it was, unless --overwrite says to replace it.
    target = tmp_path / "existing.keras"
    target.write_bytes(b"the user's own file")
    refused = style_transfer("export", "--model", trained, "--out", target)
    assert assert_one_line_error(refused) == f"error: {target} exists; pass --overwrite to replace it"
    assert target.read_bytes() == b"the user's own file"
    exported = style_transfer("export", "--model", trained, "--out", target, "--overwrite")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert f"exported {target}" in exported.stdout
    reloaded = runs.load_model(target, PROJECT)
    photo = np.random.default_rng(2).uniform(0, 255, (23, 45, 3)).astype(np.float32)
    got = reloaded.predict_on_batch(photo[None])[0]
    assert got.dtype == np.uint8 and got.shape == photo.shape
    expected = paint(network, photo)
    assert np.abs(got.astype(np.int16) - expected).max() <= 1
    assert np.abs(expected - photo).mean() > 1  # a trained network, which changes the picture


def test_a_run_killed_mid_epoch_resumes_as_if_never_stopped(trained, network, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    # Checkpoints come every third step and at each epoch's end: after steps 3, 4, 6 and 8. The kill comes once
    # step 7 (the third of the second epoch) has run, before anything more is saved: the last checkpoint is step 6's.
    run_killed_at("projects.style_transfer", *TRAIN, "--out", run_dir, epoch=1, batch=2)
    assert (run_dir / CHECKPOINT).exists() and not (run_dir / "summary.json").exists()
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [0]

    original, drawn = data.Crops.batch, []

    def recorded(self, step):
        drawn.append(step)
        return original(self, step)

    monkeypatch.setattr(data.Crops, "batch", recorded)
    result = style_transfer("train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing after step 6" in result.stdout
    assert drawn == [6, 7]  # only the steps not kept, with the crops they would have had

    # Same seed, same settings: the interrupted run ends where the uninterrupted one did.
    resumed, straight = pd.read_csv(run_dir / "metrics.csv"), pd.read_csv(trained / "metrics.csv")
    assert list(resumed["epoch"]) == [0, 1] and list(resumed["step"]) == [4, 8]
    for column in train.TERMS:
        np.testing.assert_allclose(resumed[column], straight[column], rtol=1e-5, err_msg=column)
    for mine, theirs in zip(runs.load_model(run_dir / "model.keras", PROJECT).weights, network.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(mine.value), keras.ops.convert_to_numpy(theirs.value),
                                   rtol=1e-4, atol=1e-6, err_msg=mine.path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed"] is True and summary["steps"] == 2 * train.TINY["steps_per_epoch"]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(path.name for path in (run_dir / "samples").iterdir()) == ["epoch_001.jpg", "epoch_002.jpg"]
    assert not (run_dir / CHECKPOINT).exists()


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.backend_independent
@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "P", "L", "I;16"])
def test_odd_image_modes_load_as_rgb(tmp_path, mode):
    rgb = np.asarray(data.tiny_photos(1, 48, seed=3)[0].resize((24, 20)), np.float32)
    path = tmp_path / f"picture.{'jpg' if mode == 'CMYK' else 'png'}"
    if mode == "I;16":  # a ramp over the whole 16-bit range: scaled to 8 bits, not clipped to black or white
        ramp = np.linspace(0, 65535, 24 * 20).reshape(20, 24).astype(np.uint16)
        Image.fromarray(ramp).save(path)
        expected = np.repeat(np.floor(ramp / 65535 * 255 + 0.5)[..., None], 3, axis=-1)
    elif mode == "RGBA":  # half transparent: seen on white
        alpha = np.full((20, 24, 1), 128, np.uint8)
        Image.fromarray(np.concatenate([rgb.astype(np.uint8), alpha], axis=-1), "RGBA").save(path)
        expected = rgb * 128 / 255 + 255 * (1 - 128 / 255)
    elif mode == "L":
        grey = np.asarray(data.to_image(rgb).convert("L"))
        Image.fromarray(grey, "L").save(path)
        expected = np.repeat(grey[..., None], 3, axis=-1)
    elif mode == "P":  # 64 colours: close to the picture, not equal
        data.to_image(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(path)
        expected = rgb
    else:  # CMYK in a JPEG: lossy
        data.to_image(rgb).convert("CMYK").save(path, quality=95)
        expected = rgb
    array = data.load(path, 512)
    assert array.shape == (20, 24, 3) and array.dtype == np.float32
    error = np.abs(array - expected)
    if mode in ("P", "CMYK"):
        assert error.mean() < 4, error.mean()
    else:
        assert error.max() <= 1, error.max()


@pytest.mark.backend_independent
def test_a_huge_photo_is_scaled_down_with_a_note(tmp_path, capsys):
    path = tmp_path / "panorama.jpg"
    Image.new("RGB", (10000, 2000), (90, 140, 200)).save(path, quality=50)
    array = data.load(path, 512)
    assert array.shape == (102, 512, 3)
    assert np.abs(array - [90, 140, 200]).max() <= 3
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
def test_commands_fail_in_one_line(tmp_path):
    photo = photo_file(tmp_path / "p.png")
    (tmp_path / "notes.png").write_text("not a picture")
    result = run_command("projects.style_transfer", "stylize", "--content", photo, "--style",
                         tmp_path / "notes.png", "--backbone-weights", tmp_path / "nowhere.h5", "--out", tmp_path / "out")
    assert_one_line_error(result, "nowhere.h5: no such file")  # flags are checked before any image is read
    assert result.stderr.strip().startswith("error: ")  # nothing else on stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.backend_independent
def test_stylize_never_replaces_or_deletes_what_the_user_has(trained, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    mine = tmp_path / "mine"
    mine.mkdir()
    # Every input failed: exit status 1, and the empty folder the user made is still there.
    result = style_transfer("stylize", "--model", trained, "--input", notes, "--out", mine)
    assert result.returncode == 1
    assert_one_line_error(result, f"{notes}: not a readable image")
    assert mine.is_dir() and not any(mine.iterdir())
    # A folder the command made for itself, and left empty, goes again.
    new = tmp_path / "new"
    assert style_transfer("stylize", "--model", trained, "--input", notes, "--out", new).returncode == 1
    assert not new.exists()

    # Two photos with one name get two results; painting into the same folder again is refused.
    (tmp_path / "other").mkdir()
    photos = [photo_file(tmp_path / "photo.png", (24, 20)), photo_file(tmp_path / "other" / "photo.jpg", (20, 24))]
    assert style_transfer("stylize", "--model", trained, "--input", *photos, "--out", mine).returncode == 0
    results = {path.name: path.read_bytes() for path in mine.iterdir()}
    assert sorted(results) == ["photo.png", "photo_2.png"]
    assert Image.open(mine / "photo.png").size == (24, 20) and Image.open(mine / "photo_2.png").size == (20, 24)
    again = style_transfer("stylize", "--model", trained, "--input", *photos, "--out", mine)
    assert_one_line_error(again, "is a folder with other files in it; name a new or empty folder")
    assert {path.name: path.read_bytes() for path in mine.iterdir()} == results

    # --out naming a file, either way of stylizing: refused, the file unchanged.
    listing = tmp_path / "list.txt"
    listing.write_text("mine")
    for way in (["--model", trained, "--input", photos[0]], ["--content", photos[0], "--style", photos[1], *VGG]):
        refused = style_transfer("stylize", *way, "--iterations", "1", "--out", listing)
        assert assert_one_line_error(refused) == f"error: --out {listing} is a file; name a folder for the run"
    assert listing.read_text() == "mine"


@pytest.mark.backend_independent
def test_another_projects_model_is_refused_in_one_line(tmp_path):
    mnist = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    path = runs.save_model(mnist, tmp_path / "mnist.keras", "mnist_cnn")
    photo = photo_file(tmp_path / "p.png")
    out = tmp_path / "out"
    result = style_transfer("stylize", "--model", path, "--input", photo, "--out", out)
    assert_one_line_error(result, f"{path} is a mnist_cnn model, not a style_transfer one")
    assert not out.exists()
    before = sorted(tmp_path.iterdir())
    for command in (["export"], ["evaluate", "--input", photo]):
        refused = style_transfer(*command, "--model", path)
        assert_one_line_error(refused, f"{path} is a mnist_cnn model, not a style_transfer one")
    assert sorted(tmp_path.iterdir()) == before  # no stylizer.keras, no evaluation.json beside it
    # A model file that names no project is still no style-transfer network.
    mnist.save(tmp_path / "plain.keras")
    refused = style_transfer("export", "--model", tmp_path / "plain.keras")
    assert_one_line_error(refused, "plain.keras takes inputs of shape (None, 28, 28, 1), not RGB images of any size")
    assert not (tmp_path / "stylizer.keras").exists()


@pytest.mark.backend_independent
@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_count_flags_are_whole_numbers_of_at_least_one(value, tmp_path):
    result = style_transfer("stylize", "--model", tmp_path, "--input", tmp_path, "--batch-size", value)
    assert_one_line_error(result, "argument --batch-size")
