"""AnimeGAN on tiny generated pictures and random VGG weights: the losses by hand, edge smoothing, the three
training phases (and a run killed in its adversarial epoch, resumed), convert and export."""

import argparse
import dataclasses
import json
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import cli, images, runs, vgg
from common.errors import UserError
from common.loop import TrainingLoop
from helpers import assert_one_line_error, run_command, run_killed_at
from projects.animegan import PROJECT, STRIDE, convert, data, model
from projects.animegan import gan as gan_module
from projects.animegan import train as animegan
from projects.animegan.gan import AnimeGAN

TENSORFLOW = keras.backend.backend() == "tensorflow"

# The cheapest run that still trains every phase: VGG16 with random weights, 2 crops of 32 px a step;
# 3 initialisation steps (steps 1-3), 1 discriminator warm-up step (4), one adversarial epoch (5-7), the
# averaged generator kept. The initialisation's colour weight differs from the adversarial one (15), so
# that the metrics tell which one each phase used.
RUN = ["--tiny", "--backbone", "vgg16", "--backbone-weights", "random", "--epochs", "2", "--init-epochs", "1",
       "--steps-per-epoch", "3", "--d-warmup-steps", "1", "--batch-size", "2", "--ema", "0.5", "--init-color-weight", "2"]
# What summary.json and metrics.csv hold besides the losses: timings, which differ from run to run.
TIMINGS = ["seconds", "images_per_second"]


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


def same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def kill_in_the_adversarial_epoch(run_dir):
    """The same run, SIGKILLed after its sixth step (the adversarial epoch's second).

    Checkpoints are written at the end of every phase (steps 3 and 4) and every 5 steps (step 5);
    the kill lands after the callbacks saw step 6 and before the loop's own checkpoint of it.
    """
    return run_killed_at("projects.animegan", "train", *RUN, "--checkpoint-every", "5", "--out", run_dir,
                         epoch=1, batch=1, phase="adversarial")


@dataclasses.dataclass
class Trained:
    run_dir: Path  # the uninterrupted run
    gan: AnimeGAN  # what it trained, its steps compiled: the tests of single steps take it on
    killed_dir: Path
    killed: Future  # the killed run, going on alongside (TensorFlow only)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The run, through the command line in this process, and the AnimeGAN it trained.

    Under TensorFlow the killed run starts alongside (the processes share nothing they traced); under JAX
    there is none: see the resume test.
    """
    folder = tmp_path_factory.mktemp("animegan")
    built = []

    class Kept(AnimeGAN):
        def __init__(self, config):
            super().__init__(config)
            built.append(self)

    with ThreadPoolExecutor(1) as background:
        killed = background.submit(kill_in_the_adversarial_epoch, folder / "killed") if TENSORFLOW else None
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(gan_module, "AnimeGAN", Kept)
            result = run_command("projects.animegan", "train", *RUN, "--out", folder / "run")
        assert result.returncode == 0, result.stderr[-3000:]
        yield Trained(folder / "run", built[0], folder / "killed", killed)


@pytest.fixture(scope="module")
def resumed(trained):
    """The killed run, checked where the kill left it, then resumed in this process."""
    run_dir = trained.killed_dir
    trained.killed.result()
    with np.load(run_dir / "checkpoint.npz") as checkpoint:
        assert json.loads(str(checkpoint["loop_state"]))["step"] == 5
    assert list(pd.read_csv(run_dir / "metrics.csv")["phase"]) == ["init", "d_warmup"]
    assert not (run_dir / "model.keras").exists() and not (run_dir / "summary.json").exists()
    result = run_command("projects.animegan", "train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing after step 5" in result.stdout
    return run_dir


@pytest.fixture(scope="module")
def converter(trained):
    return convert.Converter(trained.run_dir / "model.keras", mixed_precision=False)


@pytest.fixture
def loaded_once(monkeypatch, converter):
    """`convert` takes the converter already loaded rather than loading model.keras again: for the tests of
    what it does with files."""
    monkeypatch.setattr(convert, "Converter", lambda *args, **kwargs: converter)


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
def test_edge_smoothing_blurs_only_near_edges_with_opencvs_kernel():
    taps = np.array([1, 4, 6, 4, 1]) / 16  # cv2.getGaussianKernel(5, 0), what AnimeGAN smooths with
    np.testing.assert_allclose(data.gaussian_kernel(), np.outer(taps, taps))
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255  # one vertical edge between columns 15 and 16
    image[:, :, 2] = 40
    edges = data.canny(np.asarray(Image.fromarray(image).convert("L")))
    assert edges[4:-4].any(axis=0).nonzero()[0].tolist() in ([15], [16], [15, 16])  # one thin line
    smoothed = data.edge_smooth(image)
    # The pixels near the edge are blurred across it: column 15 sees columns 16 and 17 (taps 4 and 1 of 16) at 255.
    assert smoothed[10, 13:19, 0].tolist() == [round(255 * sixteenths / 16) for sixteenths in (0, 1, 5, 11, 15, 16)]
    assert np.array_equal(smoothed[:, :13], image[:, :13]) and np.array_equal(smoothed[:, 19:], image[:, 19:])
    assert np.array_equal(smoothed[..., 2], image[..., 2])  # a flat channel stays flat
    flat = np.full((16, 16, 3), 90, np.uint8)
    assert np.array_equal(data.edge_smooth(flat), flat)


@pytest.mark.backend_independent
def test_prepare_writes_smoothed_copies_and_keeps_existing_ones(tmp_path, capsys):
    style = tmp_path / "style"
    style.mkdir()
    _, anime = data.tiny_images(3, 32, seed=1)
    for index, array in enumerate(anime):
        Image.fromarray(array).save(style / f"{index}.png")
    (style / "notes.png").write_text("not a picture")
    out = data.prepare(argparse.Namespace(style=str(style), out=None))
    assert "notes.png: not a readable image" in capsys.readouterr().err
    assert out == tmp_path / "style_smooth" and sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]
    for index, array in enumerate(anime):
        with Image.open(out / f"{index}.png") as copy:
            assert np.array_equal(np.asarray(copy), data.edge_smooth(array))
    mine = out / "0.png"
    Image.fromarray(anime[0]).save(mine)  # the user's own version of a copy
    kept = mine.read_bytes()
    (out / "1.png").unlink()
    data.smooth_folder(style)
    assert "notes.png: not a readable image" in capsys.readouterr().err
    assert mine.read_bytes() == kept  # never overwritten
    with Image.open(out / "1.png") as copy:
        assert np.array_equal(np.asarray(copy), data.edge_smooth(anime[1]))  # a missing one made again


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
    assert round(generator.count_params() * 4 / 1e6, 1) == 8.6  # AnimeGANv2's generator: 8.6 MB of float32
    photo = np.random.default_rng(0).integers(0, 256, (22, 30, 3), dtype=np.uint8)
    padded = np.pad(data.to_unit(photo), ((0, 2), (0, 2), (0, 0)), mode="symmetric")  # up to a multiple of 4
    expected = data.to_pixels(generator.predict_on_batch(padded[None])[0, :22, :30])
    assert np.array_equal(converter(photo), expected)  # padded by reflection, cropped back
    assert converter(photo[:5, :7]).shape == (5, 7, 3)  # padded up to 16 x 16 first
    scores = model.build_discriminator()(np.zeros((1, 32, 24, 3), np.float32))
    assert tuple(scores.shape) == (1, 32 // STRIDE, 24 // STRIDE, 1)


def test_reduced_precision_converts_like_float32(trained, converter):
    fast = convert.Converter(trained.run_dir / "model.keras", mixed_precision=True)
    assert converter.precision == "float32" and fast.precision.startswith("mixed_")
    assert fast.model.layers[1].compute_dtype != "float32" and fast.model.layers[-1].compute_dtype == "float32"
    photo = np.random.default_rng(1).integers(0, 256, (22, 30, 3), dtype=np.uint8)
    exact, rounded = converter(photo).astype(int), fast(photo).astype(int)
    assert np.abs(exact - rounded).mean() < 2 and np.abs(exact - rounded).max() <= 16
    assert np.abs(exact - exact.mean()).mean() > 4  # a picture, not a flat colour that any weights would give


def test_train_writes_a_complete_run(trained, converter):
    run_dir = trained.run_dir
    for name in ("config.json", "metrics.csv", "init.keras", "model.keras", "summary.json", "tensorboard",
                 "samples/epoch_000.png", "samples/epoch_001.png", "samples/epoch_002.png"):
        assert (run_dir / name).exists(), name
    assert not (run_dir / "checkpoint.npz").exists()  # removed once the run finished
    saved = json.loads((run_dir / "config.json").read_text())
    config = animegan.Config(**saved["config"])
    assert (config.content_weight, config.style_weight) == (1.5, 2.5)  # the default preset, Hayao
    assert saved["resolved"] == {"photos": 8, "anime_pictures": 8, "training_side": 32, "steps_per_epoch": 3}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == keras.backend.backend() and summary["resumed"] is False
    assert summary["generator_parameters"] == trained.gan.generator.count_params()

    init, warm_up, adversarial = pd.read_csv(run_dir / "metrics.csv").to_dict("records")
    assert [row["phase"] for row in (init, warm_up, adversarial)] == ["init", "d_warmup", "adversarial"]
    assert [row["step"] for row in (init, warm_up, adversarial)] == [3, 4, 7]
    # Each phase trains its own losses, with its own weights; a mean of weighted sums is the weighted sum of the means.
    assert np.isnan(init["d_loss"]) and np.isnan(warm_up["g_loss"]) and np.isnan(adversarial["init_loss"])
    assert init["init_loss"] == pytest.approx(1.5 * init["g_content"] + 2.0 * init["g_color"], rel=1e-5)
    for row in (warm_up, adversarial):
        expected = 300 * (1.2 * (row["d_real"] + row["d_grey"] + row["d_fake"]) + 0.8 * row["d_smooth"])
        assert row["d_loss"] == pytest.approx(expected, rel=1e-5)
    expected = (300 * adversarial["g_adversarial"] + 1.5 * adversarial["g_content"] + 2.5 * adversarial["g_style"]
                + 15 * adversarial["g_color"] + 1.0 * adversarial["g_tv"])
    assert adversarial["g_loss"] == pytest.approx(expected, rel=1e-5)
    # The pixel distance on the validation photos is that of init.keras after the initialisation, and of
    # model.keras (the averaged generator, which `converter` holds) at the end.
    validation = animegan.load(config).validation
    for row, generator in ((init, runs.load_model(run_dir / "init.keras", PROJECT)), (adversarial, converter.model)):
        distance = np.abs(np.float64(generator.predict_on_batch(validation)) - validation).mean() * 127.5
        assert row["val_pixel_l1"] == pytest.approx(distance, rel=1e-4), row["phase"]
    assert summary["metrics"]["val_pixel_l1"] == pytest.approx(adversarial["val_pixel_l1"], rel=1e-12)


def test_initialisation_steps_lower_the_reconstruction_loss(trained):
    gan, config = trained.gan, trained.gan.config
    photos = data.to_unit(np.stack(data.tiny_images(2, 32, seed=5)[0]))
    losses = []
    for _ in range(6):
        loss, terms = gan.init_step(photos)  # the loss before the step's own update
        expected = config.content_weight * terms["content"] + config.init_color_weight * terms["color"]
        assert loss == pytest.approx(expected, rel=1e-5)
        losses.append(loss)
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses  # Adam with beta1 0.5 wobbles; the trend is down


def test_discriminator_warm_up_trains_only_the_discriminator(trained):
    gan, config = trained.gan, trained.gan.config
    pictures = animegan.load(config)
    generator = gan.generator.get_weights()
    losses = [animegan.discriminator_step(gan, pictures, config, np.random.default_rng(0)) for _ in range(4)]  # the same crops
    assert same_weights(generator, gan.generator.get_weights())
    assert losses[-1]["d_loss"] < losses[0]["d_loss"], losses
    first = losses[0]
    expected = 300 * (1.2 * (first["d_real"] + first["d_grey"] + first["d_fake"]) + 0.8 * first["d_smooth"])
    assert set(first) == {"d_loss", "d_real", "d_grey", "d_fake", "d_smooth"}
    assert first["d_loss"] == pytest.approx(expected, rel=1e-5)


def test_the_generator_step_is_scored_by_the_discriminator_as_it_is_now(trained):
    gan = trained.gan
    photos, anime = (data.to_unit(np.stack(batch)) for batch in data.tiny_images(2, 32, seed=3))
    generator = gan.generator.get_weights()
    scores = numpy(gan.discriminator(gan.convert(photos), training=False))
    first = gan.generator_step(photos, anime)[1]["adversarial"]
    gan.generator.set_weights(generator)
    kernel = gan.discriminator.get_layer("logits").layer.kernel  # the critic's last convolution
    kernel.assign(-kernel)  # every score changes sign
    second = gan.generator_step(photos, anime)[1]["adversarial"]
    kernel.assign(-kernel)
    assert first == pytest.approx(np.mean((scores - 1) ** 2), rel=1e-2)  # the generator wants its pictures scored 1
    assert second == pytest.approx(np.mean((scores + 1) ** 2), rel=1e-2)


def test_the_averaged_generator_follows_the_generator_by_its_decay_and_is_checkpointed(trained, tmp_path):
    gan = trained.gan
    assert gan.config.ema == 0.5
    photos, anime = (data.to_unit(np.stack(batch)) for batch in data.tiny_images(2, 32, seed=0))
    gan.start_average()
    average = gan.result(adversarial=True)
    assert average is not gan.generator and same_weights(average.get_weights(), gan.generator.get_weights())
    before = gan.generator.get_weights()
    gan.generator_step(photos, anime)
    gan.update_average(1)  # the first update: decay 1/3 (1 / (1 + 2)), below --ema
    after = gan.generator.get_weights()
    assert not same_weights(before, after)
    expected = [b / 3 + 2 * a / 3 for b, a in zip(before, after)]
    assert all(np.allclose(e, kept, atol=1e-6) for e, kept in zip(expected, average.get_weights()))
    gan.generator_step(photos, anime)
    gan.update_average(10)  # 10 / 12 is above --ema: the decay is 0.5
    expected = [0.5 * e + 0.5 * a for e, a in zip(expected, gan.generator.get_weights())]
    assert all(np.allclose(e, kept, atol=1e-6) for e, kept in zip(expected, average.get_weights()))
    assert gan.result(adversarial=False) is gan.generator

    loop = TrainingLoop(tmp_path, gan.variables_to_save(), seed=0, verbose=0)
    loop.save_checkpoint()
    loop.tensorboard.close()
    saved = average.get_weights()
    gan.generator_step(photos, anime)
    gan.update_average(11)
    assert not same_weights(saved, average.get_weights())
    TrainingLoop(tmp_path, gan.variables_to_save(), seed=0, resume=True, verbose=0).tensorboard.close()
    assert same_weights(saved, average.get_weights())

    with pytest.raises(UserError, match="--ema must be in"):
        animegan.Config(ema=1.0)
    last_weights = AnimeGAN(dataclasses.replace(gan.config, ema=0.0))  # --ema 0: the generator as it is, no copy kept
    assert last_weights.result(adversarial=True) is last_weights.generator and "average" not in last_weights.variables_to_save()


# The loss-scaled step itself is checked on both backends in test_backend; this is AnimeGAN's use of it,
# which JAX's CPU compiler takes most of a minute over in float16.
@pytest.mark.backend_independent
def test_float16_steps_are_loss_scaled_and_skip_overflows():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        gan = AnimeGAN(animegan.Config(tiny=True, backbone="vgg16", backbone_weights="random", crop_size=32, batch_size=1))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in gan.optimizers.values())
    assert gan.generator.layers[1].compute_dtype == "float16" and gan.generator.layers[-1].compute_dtype == "float32"
    photos = data.to_unit(np.stack(data.tiny_images(1, 32, seed=0)[0]))
    scale = gan.optimizers["init"].dynamic_scale
    before = gan.generator.get_weights()
    scale.assign(2.0**40)  # the scaled gradients overflow float16: the step is skipped, the scale halved
    skipped, _ = gan.init_step(photos)
    assert same_weights(before, gan.generator.get_weights()) and float(scale.numpy()) == 2.0**39
    scale.assign(1.0)
    applied, _ = gan.init_step(photos)
    assert not same_weights(before, gan.generator.get_weights()) and float(scale.numpy()) == 1.0
    assert applied == pytest.approx(skipped, rel=1e-3)  # the loss as it is, whatever the scale: same weights, same loss


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


# Run once: the shared loop's checkpoints are resumed after a SIGKILL under JAX by the loop's, DCGAN's and the style
# network's tests, and AnimeGAN's phases and weight averages are the same on both backends.
@pytest.mark.backend_independent
def test_a_run_killed_in_its_adversarial_epoch_resumes_to_the_losses_of_an_uninterrupted_one(trained, resumed):
    assert json.loads((resumed / "summary.json").read_text())["resumed"] is True
    straight, again = (pd.read_csv(run / "metrics.csv").drop(columns=TIMINGS) for run in (trained.run_dir, resumed))
    pd.testing.assert_frame_equal(again, straight, rtol=1e-6)
    result = run_command("projects.animegan", "train", "--resume", resumed)
    assert_one_line_error(result, "already finished")


# --- convert and export ---------------------------------------------------------------------


def convert_args(model, source, out=None, max_side=2048, overwrite=False):
    return argparse.Namespace(model=str(model), input=str(source), out=None if out is None else str(out), max_side=max_side,
                              overwrite=overwrite, mixed_precision=False)


def converted(converter, path):
    """What `converter` makes of the picture in `path`, read in 8-bit RGB as every project reads pictures."""
    return converter(np.asarray(images.open_image(path)))


def pixels(path):
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


@pytest.mark.backend_independent
def test_convert_a_photo_of_any_size_and_mode(trained, loaded_once, converter, tmp_path):
    for index, (size, mode) in enumerate([((30, 22), "RGBA"), ((7, 5), "P"), ((15, 13), "I;16")]):
        source = picture(tmp_path / f"photo{index}.png", size, mode, seed=index)
        convert.convert_image(converter, source, tmp_path / f"out{index}.png")
        assert np.array_equal(pixels(tmp_path / f"out{index}.png"), converted(converter, source)), mode
    cmyk = picture(tmp_path / "cmyk.jpg", (30, 22), "CMYK")
    assert convert.convert(convert_args(trained.run_dir, cmyk)) == 0  # the command, default output name
    with Image.open(tmp_path / "cmyk_anime.jpg") as result:
        assert result.size == (30, 22) and result.mode == "RGB"
        assert np.abs(np.asarray(result).astype(int) - converted(converter, cmyk)).mean() < 3  # JPEG's loss only
    with pytest.raises(UserError, match="cmyk_anime.jpg exists; pass --overwrite"):
        convert.convert(convert_args(trained.run_dir, cmyk))


@pytest.mark.backend_independent
def test_convert_replaces_an_existing_output_only_with_overwrite(trained, loaded_once, converter, tmp_path):
    photo = picture(tmp_path / "photo.png", (30, 22))
    original = photo.read_bytes()
    existing = tmp_path / "photo_anime.png"
    existing.write_bytes(b"the user's own file")
    with pytest.raises(UserError, match="photo_anime.png exists; pass --overwrite to replace it"):
        convert.convert(convert_args(trained.run_dir, photo))
    assert existing.read_bytes() == b"the user's own file"
    with pytest.raises(UserError, match="is the input itself"):
        convert.convert(convert_args(trained.run_dir, photo, out=photo, overwrite=True))
    assert photo.read_bytes() == original
    assert convert.convert(convert_args(trained.run_dir, photo, overwrite=True)) == 0
    assert np.array_equal(pixels(existing), converted(converter, photo))

    photos, anime = tmp_path / "photos", tmp_path / "anime"
    photos.mkdir(), anime.mkdir()
    picture(photos / "a.png", (30, 22), seed=1)
    picture(photos / "a.gif", (15, 13), seed=2)  # would be a.png too: becomes a.gif.png
    (anime / "a.png").write_bytes(b"an older picture")
    (anime / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an empty folder; choose another --out, or pass --overwrite"):
        convert.convert(convert_args(trained.run_dir, photos, out=anime))
    assert (anime / "a.png").read_bytes() == b"an older picture"
    assert sorted(p.name for p in anime.iterdir()) == ["a.png", "notes.txt"]
    with pytest.raises(UserError, match="is the input itself"):
        convert.convert(convert_args(trained.run_dir, photos, out=photos, overwrite=True))
    assert convert.convert(convert_args(trained.run_dir, photos, out=anime, overwrite=True)) == 0
    assert sorted(p.name for p in anime.iterdir()) == ["a.gif.png", "a.png", "notes.txt"]
    assert (anime / "notes.txt").read_text() == "mine"
    assert np.array_equal(pixels(anime / "a.png"), converted(converter, photos / "a.png"))
    assert np.array_equal(pixels(anime / "a.gif.png"), converted(converter, photos / "a.gif"))


@pytest.mark.backend_independent
def test_a_huge_photo_is_scaled_down_with_a_note(converter, tmp_path, capsys, monkeypatch):
    source = picture(tmp_path / "panorama.png", (2_000, 40))
    monkeypatch.setattr(converter, "max_side", 500)
    convert.convert_image(converter, source, tmp_path / "small.png")
    assert "2000x40 scaled down to 500x10 (--max-side 500)" in capsys.readouterr().out
    with Image.open(tmp_path / "small.png") as result:
        assert result.size == (500, 10)


@pytest.mark.backend_independent
def test_an_image_over_the_pixel_limit_is_one_line_and_the_folder_goes_on(trained, loaded_once, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # Pillow refuses above twice this many pixels, warns above it
    photos = tmp_path / "photos"
    photos.mkdir()
    picture(photos / "a.png", (15, 13))
    picture(photos / "big.png", (30, 22))  # 660 pixels: Pillow's warning only, and converted all the same
    picture(photos / "huge.png", (40, 32))  # 1,280 pixels: refused
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        assert convert.convert(convert_args(trained.run_dir, photos)) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "huge.png: more than 1,000 pixels, too many to open safely" in errors[0], errors
    assert sorted(p.name for p in (tmp_path / "photos_anime").iterdir()) == ["a.png", "big.png"]
    with pytest.raises(UserError, match="huge.png: more than 1,000 pixels"):
        convert.convert(convert_args(trained.run_dir, photos / "huge.png"))
    assert not (photos / "huge_anime.png").exists()


@pytest.mark.backend_independent
def test_a_folder_of_which_nothing_converts_exits_non_zero_and_leaves_no_folder(trained, loaded_once, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "broken.png").write_text("not a picture")
    assert convert.convert(convert_args(trained.run_dir, photos)) == 1
    assert "nothing written" in capsys.readouterr().out
    assert not (tmp_path / "photos_anime").exists()


@pytest.mark.backend_independent
def test_convert_a_folder_reports_the_file_it_cannot_read(trained, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, size in enumerate([(30, 22), (29, 21), (15, 13)]):
        picture(photos / f"{index}.png", size, seed=index)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    result = run_command("projects.animegan", "convert", "--model", trained.run_dir, "--input", photos)
    assert_one_line_error(result, "broken.jpg", "not a readable image")
    assert sorted(p.name for p in (tmp_path / "photos_anime").iterdir()) == ["0.png", "1.png", "2.png"]
    with Image.open(tmp_path / "photos_anime" / "1.png") as converted_picture:
        assert converted_picture.size == (29, 21)


@pytest.mark.backend_independent
def test_convert_a_video_frame_by_frame(converter, tmp_path):
    source = tmp_path / "clip.mp4"
    writer = data.video_writer(source, fps=10)
    for index in range(4):
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:, : 4 + 8 * index] = 200  # a bar that grows frame by frame
        writer.append_data(frame)
    writer.close()
    convert.convert_video(converter, source, tmp_path / "clip_anime.mp4")
    frames, fps, _ = data.read_video(tmp_path / "clip_anime.mp4")
    frames = [frame.astype(int) for frame in frames]
    originals, _, _ = data.read_video(source)
    expected = [converter(frame).astype(int) for frame in originals]  # what each decoded frame converts to
    assert len(frames) == 4 and fps == pytest.approx(10)
    for frame, wanted in zip(frames, expected):
        assert frame.shape == (24, 32, 3) and np.abs(frame - wanted).mean() < 4  # H.264's loss only
    assert np.abs(frames[0] - frames[3]).mean() > 2 * np.abs(frames[0] - expected[0]).mean()  # in their order


@pytest.mark.backend_independent
def test_a_video_that_cannot_be_decoded_is_one_clear_error(trained, loaded_once, converter, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x01 this is not a video" * 10)
    with pytest.raises(UserError, match="not a video that can be decoded"):
        convert.convert_video(converter, broken, tmp_path / "broken_anime.mp4")
    with pytest.raises(UserError, match="broken.mp4: not a video that can be decoded"):
        convert.convert(convert_args(trained.run_dir, broken))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


def export_args(model, out, overwrite=False):
    return argparse.Namespace(model=str(model), out=str(out), onnx=False, overwrite=overwrite)


def test_export_writes_a_generator_that_converts_like_the_trained_one(trained, converter, tmp_path, capsys):
    out = tmp_path / "export"
    out.mkdir()
    (out / "generator.keras").write_bytes(b"an earlier export")
    with pytest.raises(UserError, match="not an empty folder; choose another --out, or pass --overwrite"):
        convert.export(export_args(trained.run_dir, out))
    assert (out / "generator.keras").read_bytes() == b"an earlier export"
    convert.export(export_args(trained.run_dir, out, overwrite=True))
    assert "checked after reloading" in capsys.readouterr().out
    sample = np.random.default_rng(2).uniform(-1, 1, (1, 24, 32, 3)).astype(np.float32)
    expected = converter.model.predict_on_batch(sample)
    exported = runs.load_model(out / "generator.keras", PROJECT)
    np.testing.assert_allclose(exported.predict_on_batch(sample), expected, atol=1e-5)
    assert (out / "saved_model").is_dir() == TENSORFLOW
    if TENSORFLOW:
        import tensorflow as tf

        served = tf.saved_model.load(str(out / "saved_model"))
        np.testing.assert_allclose(served.serve(tf.constant(sample)).numpy(), expected, atol=1e-5)


@pytest.mark.backend_independent
def test_export_never_writes_over_the_users_files(trained, tmp_path):
    existing = tmp_path / "mine.keras"
    existing.write_bytes(b"the user's own model")
    for overwrite in (False, True):
        with pytest.raises(UserError, match="mine.keras is a file; export writes a folder"):
            convert.export(export_args(trained.run_dir, existing, overwrite))
    assert existing.read_bytes() == b"the user's own model"
    with pytest.raises(UserError, match="new.keras: export writes a folder"):
        convert.export(export_args(trained.run_dir, tmp_path / "new.keras"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.keras"]


@pytest.mark.backend_independent
def test_another_projects_model_is_refused_in_one_line(trained, tmp_path):
    dcgan = runs.save_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), tmp_path / "generator.keras", "dcgan")
    photo = picture(tmp_path / "photo.png")
    result = run_command("projects.animegan", "convert", "--model", dcgan, "--input", photo)
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
    modes = ["CMYK", "RGBA", "P", "L", "I;16"]
    for index, mode in enumerate(modes):
        picture(photos / f"{index}.{'jpg' if mode == 'CMYK' else 'png'}", (40, 36), mode, seed=index)
        picture(style / f"{index}.png", (36, 40), seed=10 + index)
    (photos / "readme.txt.png").write_text("not a picture")
    config = animegan.Config(photos=str(photos), style=str(style), crop_size=32, batch_size=4, val_count=2)
    pictures = animegan.load(config)
    assert "readme.txt.png: not a readable image" in capsys.readouterr().err
    side = animegan.training_side(config)  # 1.5 crops: 48 px
    assert side == 48 and [p.shape for p in pictures.photos] == [(48, 53, 3)] * len(modes)  # 40 x 36 scaled by 4/3
    assert [p.shape for p in pictures.style] == [(53, 48, 6)] * len(modes)  # each with its edge-smoothed copy
    with Image.open(style / "0.png") as first:
        scaled = np.asarray(data.scaled(first.convert("RGB"), side))
    assert np.array_equal(pictures.style[0][..., :3], scaled)
    assert np.array_equal(pictures.style[0][..., 3:], data.edge_smooth(scaled))
    with Image.open(photos / "3.png") as grey:  # the L picture: grey in all three channels
        assert np.array_equal(pictures.photos[3], np.asarray(data.scaled(grey.convert("RGB"), side)))
    assert pictures.validation.shape == (2, side, side, 3)


@pytest.mark.backend_independent
def test_too_few_style_pictures_for_the_batch_is_one_line(tmp_path):
    photos, style = tmp_path / "photos", tmp_path / "style"
    photos.mkdir(), style.mkdir()
    for index in range(4):
        picture(photos / f"{index}.png", seed=index)
    picture(style / "only.png")
    result = run_command("projects.animegan", "train", "--photos", photos, "--style", style, "--batch-size", "4",
                         "--crop-size", "32", "--backbone-weights", "random")
    assert_one_line_error(result, "--style", "holds 1 usable image", "--batch-size 4")


@pytest.mark.backend_independent
def test_missing_files_are_clear_errors(trained, tmp_path):
    config = animegan.Config(tiny=True, backbone="vgg16", backbone_weights=str(tmp_path / "vgg.weights.h5"), crop_size=32)
    with pytest.raises(UserError, match="no such file"):
        AnimeGAN(config)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a readable image"):
        convert.convert(convert_args(trained.run_dir, text))
    with pytest.raises(UserError, match="no such file or folder"):
        convert.convert(convert_args(trained.run_dir, tmp_path / "missing.jpg"))
    with pytest.raises(UserError, match="notes.txt is not a Keras model file"):
        convert.convert(convert_args(text, picture(tmp_path / "p.png")))
