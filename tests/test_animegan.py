"""AnimeGAN on tiny generated pictures and random VGG weights: losses by hand, edge smoothing, training, convert."""

import argparse
import dataclasses
import json
import os
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import cli, runs, vgg
from common.errors import UserError
from common.loop import TrainingLoop
from conftest import assert_one_line_error, run_cli, run_killed_at_call as killed_at_call
from projects.animegan import PROJECT, convert, data, model
from projects.animegan import train as animegan
from projects.animegan.gan import AnimeGAN

# The cheapest setting that still trains every piece: VGG16 with random weights, 32-px crops.
TINY = dict(tiny=True, backbone="vgg16", backbone_weights="random", epochs=2, init_epochs=1, steps_per_epoch=2)


def numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), np.float64)


def picture(path, size=(40, 32), mode="RGB", seed=0):
    """A random picture saved in `mode` (the 16-bit one as a ramp)."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        Image.fromarray(np.linspace(0, 65535, size[0] * size[1]).reshape(size[1], size[0]).astype(np.uint16)).save(path)
        return path
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    image.convert(mode).save(path)
    return path


# Three phases of 3 steps an epoch: initialisation (steps 1-3), a discriminator warm-up (4-5) and
# one adversarial epoch (6-8), with the averaged generator kept.
THREE_PHASES = [f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}"
                for k, v in {**TINY, "steps_per_epoch": 3, "d_warmup_steps": 2, "ema": 0.5}.items()]


def resume(run_dir):
    """`train --resume RUN_DIR`, in this process."""
    return animegan.train(*cli.resolve_config(PROJECT, animegan.Config, argparse.Namespace(resume=str(run_dir))))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run, SIGKILLed in its adversarial epoch and resumed: shared by the tests that need a generator."""
    run_dir = tmp_path_factory.mktemp("animegan") / "run"
    # Checkpoints after steps 3 and 5 (ends of phases) and 6; killed before step 8 (the adversarial epoch's second).
    killed_at_call("projects.animegan.train:adversarial_step", 2, "projects.animegan", "train", *THREE_PHASES,
                   "--checkpoint-every", "6", "--out", run_dir)
    assert (run_dir / "checkpoint.npz").exists() and not (run_dir / "summary.json").exists()
    assert list(pd.read_csv(run_dir / "metrics.csv")["phase"]) == ["init", "d_warmup"]
    resume(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def converter(trained):
    return convert.Converter(trained / "model.keras")


# --- losses against hand-computed values ----------------------------------------------------


def test_yuv_conversion_of_known_colours():
    pixels = np.array([[[[1, 1, 1], [-1, -1, -1], [1, -1, -1], [-1, -1, 1]]]], np.float32)  # white, black, red, blue
    yuv = numpy(model.rgb_to_yuv(pixels))[0, 0]
    assert yuv[0] == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)
    assert yuv[1] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert yuv[2] == pytest.approx([0.299, -0.14714119, 0.61497538], abs=1e-6)
    assert yuv[3] == pytest.approx([0.114, 0.43601035, -0.10001026], abs=1e-6)


def test_colour_loss_is_l1_on_y_and_huber_on_u_and_v():
    grey = np.zeros((1, 2, 2, 3), np.float32)  # RGB 0.5: Y 0.5, U = V = 0
    red = np.tile(np.array([1, -1, -1], np.float32), (1, 2, 2, 1))
    expected = abs(0.299 - 0.5) + 0.5 * 0.14714119**2 + 0.5 * 0.61497538**2  # differences below 1: quadratic Huber
    assert float(numpy(model.color_loss(grey, red))) == pytest.approx(expected, rel=1e-5)
    assert float(numpy(model.color_loss(grey, np.ones_like(grey)))) == pytest.approx(0.5, rel=1e-6)  # white: Y only
    assert float(numpy(model.huber(np.float32([0.0]), np.float32([2.5])))) == pytest.approx(2.0)  # linear beyond 1


def test_gram_style_content_and_adversarial_losses():
    features = np.array([[[[1, 2], [3, 4]]]], np.float32)  # 1 x 2 positions x 2 channels
    gram = np.array([[5, 7], [7, 10]])  # (1*1 + 3*3) / 2, (1*2 + 3*4) / 2, (2*2 + 4*4) / 2
    assert float(numpy(model.style_loss(features, np.zeros_like(features)))) == pytest.approx(gram.mean() / 2)
    assert float(numpy(model.content_loss(features, features + 0.5))) == pytest.approx(0.5)
    ones, zeros = np.ones((2, 3, 3, 1), np.float32), np.zeros((2, 3, 3, 1), np.float32)
    assert float(numpy(model.generator_adversarial_loss(zeros))) == pytest.approx(1.0)
    terms = {k: float(numpy(v)) for k, v in model.discriminator_losses(ones, zeros, ones * 0.5, -ones).items()}
    assert terms == pytest.approx({"real": 0.0, "grey": 0.0, "fake": 0.25, "smooth": 1.0})


def test_grey_keeps_three_channels_of_luma():
    image = np.array([[[[1, -1, -1]]]], np.float32)
    assert numpy(model.to_grey(image))[0, 0, 0] == pytest.approx([0.299 - 0.701] * 3, abs=1e-6)


# --- edge smoothing -------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_edge_smoothing_blurs_only_near_edges():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255  # one vertical edge between columns 15 and 16
    image[:, :, 2] = 40
    edges = data.canny(np.asarray(Image.fromarray(image).convert("L")))
    assert edges[4:-4].any(axis=0).nonzero()[0].tolist() in ([15], [16], [15, 16])  # one thin line
    smoothed = data.edge_smooth(image)
    changed = (smoothed != image).any(axis=-1).any(axis=0).nonzero()[0]
    assert changed.min() >= 12 and changed.max() <= 19 and len(changed) >= 2  # within the 5x5 dilation
    assert 0 < smoothed[10, 15, 0] < 255 and 0 < smoothed[10, 16, 0] < 255  # the step became a ramp
    assert np.array_equal(smoothed[:, :10], image[:, :10]) and np.array_equal(smoothed[:, 22:], image[:, 22:])
    flat = np.full((16, 16, 3), 90, np.uint8)
    assert np.array_equal(data.edge_smooth(flat), flat)
    assert data.gaussian_kernel().sum() == pytest.approx(1.0)


@pytest.mark.backend_independent
def test_prepare_writes_smoothed_copies_and_keeps_existing_ones(tmp_path, capsys):
    style = tmp_path / "style"
    style.mkdir()
    _, anime = data.tiny_images(3, 32, seed=1)
    for index, array in enumerate(anime):
        Image.fromarray(array).save(style / f"{index}.jpg")
    (style / "notes.png").write_text("not a picture")
    out = data.prepare(argparse.Namespace(style=str(style), out=None))
    assert "notes.png: not a readable image" in capsys.readouterr().err
    assert out == tmp_path / "style_smooth" and sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]
    stamp = (out / "0.png").stat().st_mtime_ns
    data.smooth_folder(style)
    assert "notes.png: not a readable image" in capsys.readouterr().err
    assert (out / "0.png").stat().st_mtime_ns == stamp  # never overwritten


@pytest.mark.backend_independent
def test_prepare_with_no_readable_image_is_one_error_and_leaves_no_folder(tmp_path, capsys):
    style = tmp_path / "style"
    style.mkdir()
    for name in ("a.png", "b.jpg"):
        (style / name).write_text("not a picture")
    with pytest.raises(UserError, match=r"none of the 2 files in .*style is a readable image \(.*a.png.*\); nothing prepared"):
        data.prepare(argparse.Namespace(style=str(style), out=None))
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 2 and "b.jpg: not a readable image" in warned[1]  # one line per file
    assert not (tmp_path / "style_smooth").exists()  # the folder it made is gone again
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(UserError, match="nothing prepared"):
        data.prepare(argparse.Namespace(style=str(style), out=str(mine)))
    assert mine.is_dir()  # a folder the user made stays


# --- networks and training ------------------------------------------------------------------


def test_generator_keeps_any_size_and_has_the_published_size(converter):
    generator = converter.model
    assert 2_000_000 < generator.count_params() < 2_300_000
    out = numpy(generator.predict_on_batch(np.zeros((2, 20, 36, 3), np.float32)))
    assert out.shape == (2, 20, 36, 3) and -1 <= out.min() and out.max() <= 1
    for size in [(30, 22), (29, 21), (5, 7)]:  # padded to (32, 24) or (16, 16), cropped back
        assert converter(np.zeros(size[::-1] + (3,), np.uint8)).shape == size[::-1] + (3,)
    scores = model.build_discriminator()(np.zeros((1, 32, 24, 3), np.float32))
    assert tuple(scores.shape) == (1, 8, 6, 1)


def test_reduced_precision_converts_like_float32(trained):
    exact = convert.Converter(trained / "model.keras", mixed_precision=False)
    fast = convert.Converter(trained / "model.keras", mixed_precision=True)
    assert exact.precision == "float32" and fast.precision.startswith("mixed_")
    assert fast.model.layers[1].compute_dtype != "float32" and fast.model.layers[-1].compute_dtype == "float32"
    photo = np.random.default_rng(1).integers(0, 256, (40, 28, 3), dtype=np.uint8)
    difference = np.abs(exact(photo).astype(int) - fast(photo).astype(int))
    assert difference.mean() < 2 and difference.max() <= 16


def test_init_phase_lowers_the_content_loss():
    config = animegan.Config(**{k: v for k, v in TINY.items() if k != "tiny"}, init_lr=5e-4, crop_size=32,
                             init_color_weight=0.0)  # the content loss alone, as AnimeGANv2
    keras.utils.set_random_seed(0)
    gan = AnimeGAN(config)
    photos, _ = data.tiny_images(4, 32, seed=0)
    batch = data.to_unit(np.stack(photos))
    before = float(numpy(gan.init_loss(batch)[0]))
    losses = [gan.init_step(batch)[0] for _ in range(20)]
    after = float(numpy(gan.init_loss(batch)[0]))
    assert np.mean(losses[-3:] + [after]) < 0.95 * before  # Adam with beta1 0.5 wobbles; the trend is down


@pytest.mark.backend_independent
def test_init_colour_weight_adds_the_colour_loss_to_the_initialisation():
    config = animegan.Config(**{k: v for k, v in TINY.items() if k != "tiny"}, crop_size=32, init_color_weight=2.0)
    gan = AnimeGAN(config)
    photos, _ = data.tiny_images(2, 32, seed=1)
    total, terms = gan.init_loss(data.to_unit(np.stack(photos)))
    expected = config.content_weight * numpy(terms["content"]) + 2.0 * numpy(terms["color"])
    assert float(numpy(terms["color"])) > 0 and np.isclose(float(numpy(total)), float(expected), rtol=1e-5)


def test_discriminator_warm_up_trains_only_the_discriminator():
    config = animegan.Config(**TINY, d_warmup_steps=2, crop_size=32, batch_size=4, val_count=1)
    pictures = animegan.load(config)
    keras.utils.set_random_seed(0)
    gan = AnimeGAN(config)
    generator, discriminator = gan.generator.get_weights(), gan.discriminator.get_weights()
    losses = animegan.discriminator_step(gan, pictures, config, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(generator, gan.generator.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(discriminator, gan.discriminator.get_weights()))
    assert set(losses) == {"d_loss", "d_real", "d_grey", "d_fake", "d_smooth"} and losses["d_real"] >= 0


def test_the_averaged_generator_follows_the_generator_by_its_decay_and_is_checkpointed(tmp_path):
    config = animegan.Config(**TINY, ema=0.75, crop_size=32, batch_size=4)
    keras.utils.set_random_seed(0)
    gan = AnimeGAN(config)
    photos, anime = data.tiny_images(4, 32, seed=0)
    generator_step = lambda: gan.generator_step(data.to_unit(np.stack(photos)), data.to_unit(np.stack(anime)))
    generator_step()  # the initialisation's generator, which the average starts from
    gan.start_average()
    before = gan.generator.get_weights()
    generator_step()
    gan.update_average(1)  # the first update: decay 1/3 (1 / (1 + 2)), below --ema
    after = gan.generator.get_weights()
    assert not all(np.array_equal(b, a) for b, a in zip(before, after))
    expected = [b / 3 + 2 * a / 3 for b, a in zip(before, after)]
    average = gan.result(adversarial=True)
    assert all(np.allclose(e, kept, atol=1e-6) for e, kept in zip(expected, average.get_weights()))
    generator_step()
    gan.update_average(10)  # 10 / 12 is above --ema: the decay is 0.75
    expected = [0.75 * e + 0.25 * a for e, a in zip(expected, gan.generator.get_weights())]
    assert all(np.allclose(e, kept, atol=1e-6) for e, kept in zip(expected, average.get_weights()))
    assert average is not gan.generator and gan.result(adversarial=False) is gan.generator

    TrainingLoop(tmp_path, gan.variables_to_save(), seed=0, verbose=0).save_checkpoint()
    restored = AnimeGAN(config)
    TrainingLoop(tmp_path, restored.variables_to_save(), seed=0, resume=True, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(average.get_weights(), restored.result(adversarial=True).get_weights()))
    with pytest.raises(UserError, match="--ema must be in"):
        animegan.Config(**TINY, ema=1.0)
    last_weights = AnimeGAN(dataclasses.replace(config, ema=0.0))  # --ema 0: the generator as it is, no copy kept
    assert last_weights.result(adversarial=True) is last_weights.generator and "average" not in last_weights.variables_to_save()


def test_float16_steps_are_loss_scaled_and_skip_overflows():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        gan = AnimeGAN(animegan.Config(**TINY, crop_size=32, batch_size=2))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in gan.optimizers.values())
    assert gan.generator.layers[1].compute_dtype == "float16"
    photos = data.to_unit(np.stack(data.tiny_images(1, 32, seed=0)[0]))
    scale = gan.optimizers["init"].dynamic_scale
    for _ in range(8):  # a step whose scaled gradients overflow float16 is skipped and halves the scale
        before, halved = gan.generator.get_weights(), float(scale.value) / 2
        loss, _ = gan.init_step(photos)
        if not all(np.array_equal(a, b) for a, b in zip(before, gan.generator.get_weights())):
            break
        assert float(scale.value) == halved
    else:
        pytest.fail(f"no update applied in 8 steps; the loss scale went down to {float(scale.value)}")
    assert np.isfinite(loss) and float(scale.value) >= 1


def test_train_writes_a_complete_run(trained):
    for name in ("config.json", "metrics.csv", "init.keras", "model.keras", "summary.json",
                 "samples/epoch_000.png", "samples/epoch_002.png", "tensorboard"):
        assert (trained / name).exists(), name
    assert not (trained / "checkpoint.npz").exists()  # removed once the run finished
    metrics = pd.read_csv(trained / "metrics.csv")
    assert list(metrics["phase"]) == ["init", "d_warmup", "adversarial"] and list(metrics["step"]) == [3, 5, 8]
    assert np.isnan(metrics.loc[1, "g_loss"]) and np.isnan(metrics.loc[0, "d_loss"])  # each phase its own columns
    assert np.isfinite(metrics.loc[2, ["d_loss", "g_loss", "g_style", "g_color", "g_tv", "d_smooth"]].astype(float)).all()
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow")
    assert summary["generator_parameters"] == model.build_generator().count_params()
    saved = json.loads((trained / "config.json").read_text())
    config, resolved = saved["config"], saved["resolved"]
    assert config["content_weight"] == animegan.PRESETS["hayao"]["content_weight"] and config["crop_size"] == 32
    assert resolved == {"photos": 8, "anime_pictures": 8, "training_side": 32, "steps_per_epoch": 3}


@pytest.mark.backend_independent
def test_presets_set_the_weights_and_flags_override_them():
    args = argparse.Namespace(preset="paprika", color_weight=7.0, d_warmup_steps=1, tiny=True)
    config, _ = cli.resolve_config(PROJECT, animegan.Config, args, defaults=animegan.recipe_defaults)
    assert config.style_weight == 0.6 and config.d_smooth_weight == 0.005 and config.color_weight == 7.0
    assert config.backbone_weights == "random" and config.crop_size == 32  # --tiny never downloads, and stays small
    assert config.d_warmup_steps == 1
    config, _ = cli.resolve_config(PROJECT, animegan.Config, argparse.Namespace(), defaults=animegan.recipe_defaults)
    assert config == animegan.Config()  # no flags: the defaults are the recipe, with the Hayao weights
    assert (config.init_color_weight, config.d_warmup_steps, config.ema) == (15.0, 200, 0.97)  # the bench's recipe
    assert set(animegan.BACKBONES) == set(vgg.BACKBONES)


def test_the_killed_run_resumed_to_the_losses_of_an_uninterrupted_one(trained, tmp_path):
    assert json.loads((trained / "summary.json").read_text())["resumed"] is True
    straight = tmp_path / "straight"
    result = run_cli("projects.animegan", "train", *THREE_PHASES, "--out", straight)
    assert result.returncode == 0, result.stderr[-3000:]
    columns = ["init_loss", "g_content", "d_loss", "d_real", "g_loss", "g_adversarial", "g_style", "val_pixel_l1"]
    resumed, expected = pd.read_csv(trained / "metrics.csv")[columns], pd.read_csv(straight / "metrics.csv")[columns]
    pd.testing.assert_frame_equal(resumed, expected, rtol=1e-6)
    with pytest.raises(UserError, match="already finished"):
        resume(trained)


# --- convert and export ---------------------------------------------------------------------


def convert_args(model, source, out=None, max_side=2048, overwrite=False):
    return argparse.Namespace(model=str(model), input=str(source), out=None if out is None else str(out), max_side=max_side,
                              overwrite=overwrite)


def test_convert_a_photo_of_any_size_and_mode(trained, converter, tmp_path):
    for index, (size, mode) in enumerate([((30, 22), "RGBA"), ((7, 5), "P"), ((29, 21), "CMYK"), ((15, 13), "I;16")]):
        source = picture(tmp_path / f"photo{index}.{'jpg' if mode == 'CMYK' else 'png'}", size, mode)
        convert.convert_image(converter, source, tmp_path / f"out{index}.png")
        with Image.open(tmp_path / f"out{index}.png") as result:
            assert result.size == size and result.mode == "RGB"
    assert convert.convert(convert_args(trained, tmp_path / "photo2.jpg")) == 0  # the command, default output name
    assert (tmp_path / "photo2_anime.jpg").is_file()
    with pytest.raises(UserError, match="photo2_anime.jpg exists; pass --overwrite"):
        convert.convert(convert_args(trained, tmp_path / "photo2.jpg"))


def test_convert_replaces_an_existing_output_only_with_overwrite(trained, tmp_path):
    photo = picture(tmp_path / "photo.png", (20, 16))
    original = photo.read_bytes()
    existing = tmp_path / "photo_anime.png"
    existing.write_bytes(b"the user's own file")
    with pytest.raises(UserError, match="photo_anime.png exists; pass --overwrite to replace it"):
        convert.convert(convert_args(trained, photo))
    assert existing.read_bytes() == b"the user's own file"
    with pytest.raises(UserError, match="is the input itself"):
        convert.convert(convert_args(trained, photo, out=photo, overwrite=True))
    assert photo.read_bytes() == original
    assert convert.convert(convert_args(trained, photo, overwrite=True)) == 0
    with Image.open(existing) as result:
        assert result.size == (20, 16)

    photos, anime = tmp_path / "photos", tmp_path / "anime"
    photos.mkdir(), anime.mkdir()
    picture(photos / "a.png", (20, 16))
    picture(photos / "a.gif", (24, 16))  # would be a.png too: becomes a.gif.png
    (anime / "a.png").write_bytes(b"an older picture")
    (anime / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an empty folder; choose another --out, or pass --overwrite"):
        convert.convert(convert_args(trained, photos, out=anime))
    assert (anime / "a.png").read_bytes() == b"an older picture" and sorted(p.name for p in anime.iterdir()) == ["a.png", "notes.txt"]
    with pytest.raises(UserError, match="is the input itself"):
        convert.convert(convert_args(trained, photos, out=photos, overwrite=True))
    assert convert.convert(convert_args(trained, photos, out=anime, overwrite=True)) == 0
    assert sorted(p.name for p in anime.iterdir()) == ["a.gif.png", "a.png", "notes.txt"]
    assert (anime / "notes.txt").read_text() == "mine"
    with Image.open(anime / "a.png") as first, Image.open(anime / "a.gif.png") as second:
        assert first.size == (20, 16) and second.size == (24, 16)


@pytest.mark.backend_independent
def test_a_huge_photo_is_scaled_down_with_a_note(converter, tmp_path, capsys, monkeypatch):
    source = picture(tmp_path / "panorama.png", (10_000, 40))
    monkeypatch.setattr(converter, "max_side", 500)
    convert.convert_image(converter, source, tmp_path / "small.png")
    assert "10000x40 scaled down to 500x2 (--max-side 500)" in capsys.readouterr().out
    with Image.open(tmp_path / "small.png") as result:
        assert result.size == (500, 2)


@pytest.mark.backend_independent
def test_an_image_over_the_pixel_limit_is_one_line_and_the_folder_goes_on(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses above twice this many pixels, warns above it
    photos = tmp_path / "photos"
    photos.mkdir()
    picture(photos / "a.png", (20, 16))
    picture(photos / "big.png", (40, 40))  # 1,600 pixels: Pillow's warning only, and it is scaled down anyway
    picture(photos / "huge.png", (50, 50))  # 2,500 pixels: refused
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert convert.convert(convert_args(trained, photos)) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "huge.png: more than 2,000 pixels, too many to open safely" in errors[0], errors
    assert sorted(p.name for p in (tmp_path / "photos_anime").iterdir()) == ["a.png", "big.png"]
    with pytest.raises(UserError, match="huge.png: more than 2,000 pixels"):
        convert.convert(convert_args(trained, photos / "huge.png"))
    assert not (photos / "huge_anime.png").exists()


@pytest.mark.backend_independent
def test_a_folder_of_which_nothing_converts_exits_non_zero_and_leaves_no_folder(trained, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.png").write_text("not a picture")
    assert convert.convert(convert_args(trained, photos)) == 1
    assert "nothing written" in capsys.readouterr().out
    assert not (tmp_path / "photos_anime").exists()


@pytest.mark.backend_independent
def test_convert_a_folder_reports_the_file_it_cannot_read(trained, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(3):
        picture(photos / f"{index}.png", (20 - index, 16 - index), seed=index)  # all padded to 20x16
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    result = run_cli("projects.animegan", "convert", "--model", trained, "--input", photos)
    assert result.returncode == 1
    assert_one_line_error(result, "broken.jpg", "not a readable image")
    assert sorted(p.name for p in (tmp_path / "photos_anime").iterdir()) == ["0.png", "1.png", "2.png"]
    with Image.open(tmp_path / "photos_anime" / "2.png") as converted:
        assert converted.size == (18, 14)


def test_convert_a_video_frame_by_frame(converter, tmp_path):
    source = tmp_path / "clip.mp4"
    writer = data.video_writer(source, fps=10)
    for index in range(6):
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:, : 4 + 4 * index] = 200
        writer.append_data(frame)
    writer.close()
    convert.convert_video(converter, source, tmp_path / "clip_anime.mp4")
    frames, fps, _ = data.read_video(tmp_path / "clip_anime.mp4")
    frames = list(frames)
    assert len(frames) == 6 and frames[0].shape == (24, 32, 3) and fps == pytest.approx(10)


@pytest.mark.backend_independent
def test_a_video_that_cannot_be_decoded_is_one_clear_error(trained, converter, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x01 this is not a video" * 10)
    with pytest.raises(UserError, match="not a video that can be decoded"):
        convert.convert_video(converter, broken, tmp_path / "broken_anime.mp4")
    with pytest.raises(UserError, match="broken.mp4: not a video that can be decoded"):
        convert.convert(convert_args(trained, broken))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def export_args(model, out, overwrite=False):
    return argparse.Namespace(model=str(model), out=str(out), onnx=False, overwrite=overwrite)


def test_export_reloads_and_converts_the_same(trained, tmp_path, capsys):
    out = tmp_path / "export"
    convert.export(export_args(trained, out))
    assert (out / "generator.keras").is_file()
    assert (out / "saved_model").is_dir() == (keras.backend.backend() == "tensorflow")
    assert "checked after reloading" in capsys.readouterr().out

    exported = (out / "generator.keras").read_bytes()
    with pytest.raises(UserError, match="not an empty folder; choose another --out, or pass --overwrite"):
        convert.export(export_args(trained, out))
    assert (out / "generator.keras").read_bytes() == exported
    existing = tmp_path / "mine.keras"
    existing.write_bytes(b"the user's own model")
    for overwrite in (False, True):
        with pytest.raises(UserError, match="mine.keras is a file; export writes a folder"):
            convert.export(export_args(trained, existing, overwrite))
    assert existing.read_bytes() == b"the user's own model"
    convert.export(export_args(trained, out, overwrite=True))
    assert runs.load_model(out / "generator.keras", PROJECT).count_params() == model.build_generator().count_params()


@pytest.mark.backend_independent
def test_another_projects_model_is_refused_in_one_line(trained, tmp_path):
    dcgan = runs.save_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), tmp_path / "generator.keras", "dcgan")
    photo = picture(tmp_path / "photo.png")
    result = run_cli("projects.animegan", "convert", "--model", dcgan, "--input", photo)
    assert_one_line_error(result, "generator.keras is a dcgan model, not an animegan one")
    with pytest.raises(UserError, match="generator.keras is a dcgan model"):
        convert.export(export_args(dcgan, tmp_path / "export"))
    run = tmp_path / "dcgan_run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"project": "dcgan"}))
    with pytest.raises(UserError, match="dcgan_run is a dcgan model"):
        convert.convert(convert_args(run, photo))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dcgan_run", "generator.keras", "photo.png"]  # nothing written


@pytest.mark.backend_independent
def test_counts_below_one_are_refused():
    with pytest.raises(UserError, match="--val-count must be at least 1, got 0"):
        animegan.Config(val_count=0)
    with pytest.raises(UserError, match="--max-side must be at least 16, got 0"):
        convert.Converter("model.keras", max_side=0)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_training_reads_odd_image_modes_and_skips_non_images(tmp_path, capsys):
    photos, style = tmp_path / "photos", tmp_path / "style"
    photos.mkdir(), style.mkdir()
    for index, mode in enumerate(["CMYK", "RGBA", "P", "L", "I;16"]):
        picture(photos / f"{index}.{'jpg' if mode == 'CMYK' else 'png'}", (40, 36), mode, seed=index)
        picture(style / f"{index}.png", (36, 40), seed=10 + index)
    (photos / "readme.txt.png").write_text("not a picture")
    config = animegan.Config(photos=str(photos), style=str(style), crop_size=32, batch_size=4, val_count=2)
    pictures = animegan.load(config)
    assert "readme.txt.png: not a readable image" in capsys.readouterr().err
    side = animegan.training_side(config)
    assert len(pictures.photos) == 5 and all(min(p.shape[:2]) == side and p.shape[2] == 3 for p in pictures.photos)
    assert pictures.style[0].shape[2] == 6 and pictures.validation.shape == (2, side, side, 3)


@pytest.mark.backend_independent
def test_too_few_style_pictures_for_the_batch_is_one_line(tmp_path):
    photos, style = tmp_path / "photos", tmp_path / "style"
    photos.mkdir(), style.mkdir()
    for index in range(4):
        picture(photos / f"{index}.png", seed=index)
    picture(style / "only.png")
    result = run_cli("projects.animegan", "train", "--photos", photos, "--style", style, "--batch-size", "4",
                 "--crop-size", "32", "--backbone-weights", "random")
    assert_one_line_error(result, "--style", "holds 1 usable image", "--batch-size 4")


@pytest.mark.backend_independent
def test_missing_files_are_clear_errors(trained, tmp_path):
    config = animegan.Config(**{**TINY, "backbone_weights": str(tmp_path / "vgg.weights.h5")}, crop_size=32)
    with pytest.raises(UserError, match="no such file"):
        AnimeGAN(config)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a readable image"):
        convert.convert(convert_args(trained, text))
    with pytest.raises(UserError, match="no such file or folder"):
        convert.convert(convert_args(trained, tmp_path / "missing.jpg"))
    with pytest.raises(UserError, match="notes.txt is not a Keras model file"):
        convert.convert(convert_args(text, picture(tmp_path / "p.png")))
