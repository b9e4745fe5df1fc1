"""Training AnimeGAN on a folder of photos and a folder of anime pictures in one style.

`train` holds both folders in memory (scaled so the crops see a good share of each
picture) and runs the content-only initialisation epochs, then the adversarial
epochs (see gan.py), as phases of the shared training loop (`common.loop`: progress,
metrics.csv, TensorBoard, step checkpoints that `--resume` continues from). After
every epoch it adds the validation pixel distance to metrics.csv and saves a
before/after grid of the same validation photos. The generator is saved as
`init.keras` when the initialisation ends and as `model.keras` at the end: the file
`convert` and `export` take.

Two additions for short runs, off by default: `--d-warmup-steps` trains the
discriminator alone for a while before the generator first follows it, and
`--ema-decay` saves the moving average of the generator's weights over the
adversarial steps instead of its last weights.

The loss weights come from a `--preset`, the ones published for each AnimeGANv2
style; every weight is also a flag of its own.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from common import cli, images, runs, vgg
from common.cli import option
from common.errors import UserError
from common.loop import Phase, TrainingLoop
from projects.animegan import data, model

PROJECT = "animegan"
SAMPLES_DIR = "animegan-samples"  # under --data-dir / $DATA_DIR: photo/ and one folder per style
SHOWN = ("init_loss", "d_loss", "g_loss")  # on the progress bar; metrics.csv has every term
TINY = {"count": 8, "size": 48, "crop_size": 32, "batch_size": 4, "steps_per_epoch": 4, "epochs": 3, "init_epochs": 1}

# Loss weights published with AnimeGANv2 for its three styles (generator terms, then the
# discriminator's weights on anime, generated, grey and edge-smoothed pictures).
PRESETS = {
    "hayao": dict(content_weight=1.5, style_weight=2.5, color_weight=15.0, tv_weight=1.0,
                  d_real_weight=1.2, d_fake_weight=1.2, d_grey_weight=1.2, d_smooth_weight=0.8),
    "shinkai": dict(content_weight=1.2, style_weight=2.0, color_weight=10.0, tv_weight=1.0,
                    d_real_weight=1.7, d_fake_weight=1.7, d_grey_weight=1.7, d_smooth_weight=1.0),
    "paprika": dict(content_weight=2.0, style_weight=0.6, color_weight=50.0, tv_weight=0.1,
                    d_real_weight=1.0, d_fake_weight=1.0, d_grey_weight=1.0, d_smooth_weight=0.005),
}


@dataclass
class Config(cli.CustomStepConfig):
    data_dir: str = option(None, f"folder holding {SAMPLES_DIR}/ (photo/ and a folder per style), used when "
                                 "--photos/--style are not given (default: $DATA_DIR)")
    photos: str = option(None, "folder of photos: what the generator learns to convert")
    style: str = option(None, "folder of anime pictures in one style")
    smooth: str = option(None, "their edge-smoothed copies, written by `prepare` (default: <style>_smooth if "
                               "it exists, else made in memory)")
    val: str = option(None, "folder of photos shown before/after every epoch (default: the first --val-count photos)")
    val_count: int = option(4, "validation photos in the per-epoch grid")
    preset: str = option("hayao", "loss weights published for this style", choices=sorted(PRESETS))
    epochs: int = option(100, "epochs in all; the first --init-epochs of them train the content loss only")
    init_epochs: int = option(10, "initialisation epochs: the generator learns to reconstruct photos")
    steps_per_epoch: int = option(0, "steps per epoch (0: one pass over the larger folder)")
    batch_size: int = option(12, "photo crops (and as many anime crops) per step")
    lr: float = option(2e-5, "generator learning rate in the adversarial phase (Adam, beta1 0.5)")
    init_lr: float = option(2e-4, "generator learning rate in the initialisation phase")
    init_color_weight: float = option(0.0, "weight of the YUV colour loss in the initialisation phase too (0: content "
                                           "loss only, as AnimeGANv2; helps with VGG weights that ignore colour)")
    d_lr: float = option(4e-5, "discriminator learning rate")
    ema_decay: float = option(0.0, "save an exponential moving average of the generator's weights over the adversarial "
                                   "steps, with this decay per step (0: off, the last weights, as AnimeGANv2; 0.999 suits "
                                   "long runs): it evens out the back-and-forth of adversarial training")
    d_warmup_steps: int = option(0, "discriminator-only steps against the initialised generator before the first "
                                    "adversarial update (0: none, as AnimeGANv2; helps short runs, whose "
                                    "discriminator otherwise has not learnt anything yet when the generator follows it)")
    crop_size: int = option(256, "side of the random square crops trained on, pixels (a multiple of 4)")
    scale: float = option(1.5, "pictures are scaled so their shorter side is this many crop sizes, then cropped")
    backbone: str = option("vgg19", "VGG network of the content and style losses", choices=sorted(vgg.BACKBONES))
    backbone_weights: str = option("imagenet", "its weights: imagenet (downloaded by Keras), a local weights file, or random")
    adversarial_weight: float = option(300.0, "weight of the generator's adversarial (LSGAN) loss")
    d_adversarial_weight: float = option(300.0, "weight of the discriminator's loss")
    content_weight: float = option(1.5, "weight of the VGG content loss (L1 on conv4 features)")
    style_weight: float = option(2.5, "weight of the Gram style loss against grey anime pictures")
    color_weight: float = option(15.0, "weight of the YUV colour loss against the photo")
    tv_weight: float = option(1.0, "weight of the total variation loss")
    d_real_weight: float = option(1.2, "discriminator: weight of anime pictures (scored 1)")
    d_fake_weight: float = option(1.2, "discriminator: weight of generated pictures (scored 0)")
    d_grey_weight: float = option(1.2, "discriminator: weight of grey anime pictures (scored 0)")
    d_smooth_weight: float = option(0.8, "discriminator: weight of grey edge-smoothed anime pictures (scored 0)")

    def __post_init__(self):
        super().__post_init__()
        vgg.check_backbone(self.backbone)
        if self.crop_size < 32 or self.crop_size % model.STRIDE:
            raise UserError(f"--crop-size must be a multiple of {model.STRIDE}, at least 32, got {self.crop_size}")
        if not 0 <= self.init_epochs <= self.epochs:
            raise UserError(f"--init-epochs must be between 0 and --epochs ({self.epochs}), got {self.init_epochs}")
        if self.scale < 1:
            raise UserError(f"--scale must be at least 1 (crops are taken inside the picture), got {self.scale}")
        cli.require_not_negative(self, "steps_per_epoch", "val_count", "d_warmup_steps")
        for name in ("init_lr", "d_lr"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        weights = [name for name in PRESETS["hayao"] if getattr(self, name) < 0]
        weights += [name for name in ("adversarial_weight", "d_adversarial_weight", "init_color_weight") if getattr(self, name) < 0]
        if weights:
            raise UserError(f"loss weights must not be negative: --{weights[0].replace('_', '-')}")
        if not 0 <= self.ema_decay < 1:
            raise UserError(f"--ema-decay must be at least 0 and below 1, got {self.ema_decay}")
        if self.distribute:
            raise UserError("--distribute is not supported by AnimeGAN's two-network training loop; train on one device")


@dataclass
class Pictures:
    photos: list  # uint8 arrays, scaled
    style: list  # uint8 (H, W, 6): anime picture and its edge-smoothed copy
    validation: np.ndarray  # float32 in [-1, 1], (count, side, side, 3)
    description: str


def training_side(config):
    return int(round(config.crop_size * config.scale / model.STRIDE)) * model.STRIDE


def sample_folders(config):
    """--photos and --style, or photo/ and <preset>/ of the samples folder under --data-dir or $DATA_DIR."""
    if config.photos and config.style:
        return config.photos, config.style
    root = Path(config.data_dir or os.environ.get("DATA_DIR") or "data") / SAMPLES_DIR
    photos, style = config.photos or root / "photo", config.style or root / config.preset
    if not (Path(photos).is_dir() and Path(style).is_dir()):
        raise UserError("give --photos DIR and --style DIR (folders of your photos and of anime pictures), "
                        f"or put photo/ and {config.preset}/ in {root}; --tiny tries the pipeline on generated images")
    return str(photos), str(style)


def load(config):
    """The photos, the style pictures with their smoothed copies, and the fixed validation photos."""
    side = training_side(config)
    if config.tiny:
        photos, anime = data.tiny_images(TINY["count"], TINY["size"], config.seed)
        style = [np.concatenate([a, data.edge_smooth(a)], axis=-1) for a in anime]
        validation = [images.fit(Image.fromarray(p), (config.crop_size,) * 2) for p in photos]
        validation = data.to_unit(np.stack([np.asarray(v) for v in validation[: max(1, config.val_count)]]))
        return Pictures(photos, style, validation, f"tiny generated set: {len(photos)} photos, {len(style)} anime pictures")

    config.photos, config.style = sample_folders(config)
    photos, photo_files = data.read_folder(config.photos, side, "--photos")
    data.check_enough(len(photos), config.batch_size, "--photos", config.photos)
    smooth = config.smooth or (data.default_smooth_dir(config.style) if data.default_smooth_dir(config.style).is_dir() else None)
    if config.smooth and not Path(config.smooth).is_dir():
        raise UserError(f"--smooth {config.smooth} is not a folder; run `prepare --style {config.style}` first, or leave it out")
    style, made = data.read_style(config.style, smooth, side)
    data.check_enough(len(style), config.batch_size, "--style", config.style)
    val_files = images.list_images(config.val) if config.val else photo_files
    val_images = [image for _, image in images.open_all(val_files[: max(1, config.val_count)])]
    validation = data.to_unit(np.stack([np.asarray(images.fit(image, (side, side))) for image in val_images]))
    smoothing = f"{made} edge-smoothed here" if made else f"edge-smoothed copies from {smooth}"
    return Pictures(photos, style, validation,
                    f"{len(photos)} photos from {config.photos}, {len(style)} anime pictures from {config.style} "
                    f"({smoothing}), scaled to {side} px on the shorter side")


def resolve(args):
    """The run's config: the preset's weights (and --tiny's sizes) under the flags typed."""
    preset = PRESETS[getattr(args, "preset", None) or "hayao"]
    defaults = dict(preset)
    if getattr(args, "tiny", False):
        defaults.update({k: v for k, v in TINY.items() if k in ("crop_size", "batch_size", "steps_per_epoch", "epochs", "init_epochs")},
                        backbone_weights="random", scale=1.0, val_count=2)
    return cli.resolve_config(PROJECT, Config, args, defaults=defaults)


def before_after(validation, outputs, caption):
    """A grid of validation photos, each followed by its conversion."""
    tiles = np.empty((2 * len(validation),) + validation.shape[1:], np.uint8)
    tiles[0::2], tiles[1::2] = data.to_pixels(validation), data.to_pixels(outputs)
    captions = ["photo", caption] * len(validation)
    return images.grid(tiles, columns=4, captions=captions, scale=1 if validation.shape[1] >= 128 else 2)


def pixel_l1(a, b):
    """Mean absolute difference of two image batches in [-1, 1], in 0-255 pixel steps."""
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))) * 127.5)


def train(args):
    from projects.animegan.gan import AnimeGAN

    started = time.time()
    config, resume_dir = resolve(args)
    pictures = load(config)
    run_dir = cli.open_run(PROJECT, config, resume_dir)
    gan = AnimeGAN(config)
    steps = config.steps_per_epoch or max(1, max(len(pictures.photos), len(pictures.style)) // config.batch_size)
    print(f"{pictures.description}; {steps} steps of {config.batch_size} {config.crop_size}-px crops per epoch, "
          f"{config.init_epochs} initialisation + {config.epochs - config.init_epochs} adversarial epochs; "
          f"{config.backbone} ({config.backbone_weights}); generator {gan.generator.count_params():,} weights")
    loop = TrainingLoop(run_dir, gan.variables_to_save(), config.seed, resume=resume_dir is not None, shown=SHOWN,
                        checkpoint_steps=config.checkpoint_every)
    if loop.step == 0:
        loop.save_sample(before_after(pictures.validation, gan.stylise(pictures.validation), "untrained"), "epoch_000.png")

    def end_epoch(epoch, logs):
        outputs = gan.stylise(pictures.validation, adversarial=logs["phase"] == "adversarial")
        loop.save_sample(before_after(pictures.validation, outputs, f"epoch {epoch + 1}"), f"epoch_{epoch + 1:03d}.png")
        logs["val_pixel_l1"] = pixel_l1(pictures.validation, outputs)

    phase = dict(steps_per_epoch=steps, samples_per_step=config.batch_size, end_epoch=end_epoch)
    loop.run([
        Phase("init", lambda at: init_step(gan, pictures, config, at.rng), epochs=config.init_epochs,
              on_end=lambda: runs.save_model(gan.generator, run_dir / "init.keras"), **phase),
        # The warm-up's crops come from a generator of their own: the adversarial epoch after it draws as without one.
        Phase("d_warmup", lambda at: discriminator_step(gan, pictures, config, at.rng), config.d_warmup_steps,
              samples_per_step=config.batch_size, count_epochs=False, title=f"discriminator warm-up: {config.d_warmup_steps} steps",
              rng_key=lambda epoch: [config.seed, epoch, 1]),
        Phase("adversarial", lambda at: adversarial_step(gan, pictures, config, at.rng), epochs=config.epochs - config.init_epochs,
              on_start=gan.start_average, **phase),
    ])

    runs.save_model(gan.result(adversarial=config.epochs > config.init_epochs), run_dir / "model.keras")
    rows = loop.metrics.rows
    epochs = [row for row in rows if row["phase"] != "d_warmup"]
    init_rows = [row for row in rows if row["phase"] == "init"]
    leave_out = ("phase", "epoch", "step", "seconds", "images_per_second")
    metrics = {k: v for k, v in (epochs[-1] if epochs else {}).items() if k not in leave_out and v == v}
    if init_rows:
        metrics["init_val_pixel_l1"] = init_rows[-1]["val_pixel_l1"]
        metrics["init_content_first_epoch"] = init_rows[0]["g_content"]
        metrics["init_content_last_epoch"] = init_rows[-1]["g_content"]
    cli.finish_run(run_dir, config, started, loop, metrics, resumed=resume_dir is not None,
                   generator_parameters=gan.generator.count_params(), steps_per_epoch=steps)
    loop.discard_checkpoint()  # the run is complete; model.keras is what remains useful
    print(f"run saved in {run_dir}")
    return run_dir


def prefixed(prefix, terms):
    return {f"{prefix}_{key}": value for key, value in terms.items()}


def init_step(gan, pictures, config, rng):
    """An initialisation step on fresh random photo crops; its losses by name."""
    loss, terms = gan.init_step(data.random_crops(pictures.photos, config.batch_size, config.crop_size, rng))
    return {"init_loss": loss, **prefixed("g", terms)}


def adversarial_step(gan, pictures, config, rng):
    """A discriminator and a generator update on fresh random crops, then the average follows."""
    photos = data.random_crops(pictures.photos, config.batch_size, config.crop_size, rng)
    anime, smoothed = anime_crops(pictures, config, rng)
    d_loss, d_terms = gan.discriminator_step(photos, anime, smoothed)
    g_loss, g_terms = gan.generator_step(photos, anime)
    gan.update_average()
    return {"d_loss": d_loss, "g_loss": g_loss, **prefixed("g", g_terms), **prefixed("d", d_terms)}


def discriminator_step(gan, pictures, config, rng):
    """A discriminator update alone (the --d-warmup-steps before the first adversarial epoch)."""
    photos = data.random_crops(pictures.photos, config.batch_size, config.crop_size, rng)
    d_loss, d_terms = gan.discriminator_step(photos, *anime_crops(pictures, config, rng))
    return {"d_loss": d_loss, **prefixed("d", d_terms)}


def anime_crops(pictures, config, rng):
    """A batch of random anime crops and the same crops of their edge-smoothed copies."""
    pairs = data.random_crops(pictures.style, config.batch_size, config.crop_size, rng)
    return pairs[..., :3], pairs[..., 3:]
