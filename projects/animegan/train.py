"""Training AnimeGAN: the settings (`Config`) and `train`.

`train` holds both folders in memory (scaled so the crops see a good share of each
picture) and runs the initialisation epochs (the generator learns to give back its
photos), a discriminator-only warm-up, then the adversarial epochs (see gan.py), as
phases of the shared training loop (`common.loop`: progress, metrics.csv,
TensorBoard, step checkpoints that `--resume` continues from). After every epoch it
adds the validation pixel distance to metrics.csv and saves a before/after grid of
the same validation photos. The generator is saved as `init.keras` when the
initialisation ends and as `model.keras` (the moving average of its weights over the
adversarial steps) at the end: the file `convert` and `export` take.

The loss weights come from a `--preset`, the ones published for each AnimeGANv2
style; every weight is also a flag of its own. Three defaults differ from AnimeGANv2,
for the short runs a CPU affords (README, "Benchmark"): the colour loss weighs in the
initialisation too, the discriminator trains alone for 200 steps before the generator
first follows it, and the saved generator is the weight average.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import cli, datasets, runs
from common.config import (CustomStepConfig, check_choice, group_option, mixed_precision_option, option, require_at_least_one,
                           require_fraction, require_not_negative)
from common.errors import UserError
from projects.animegan import PROJECT, STRIDE

SAMPLES_DIR = "animegan-samples"  # under --data-dir / $DATA_DIR: photo/ and one folder per style
BACKBONES = ("vgg16", "vgg19")  # common/vgg.py's networks, named here so that --help needs no Keras
SHOWN = ("init_loss", "d_loss", "g_loss")  # on the progress bar; metrics.csv has every term

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
# --tiny: 8 generated photos and anime pictures of 48 px, and a run of a few steps per phase.
TINY_PICTURES = {"count": 8, "size": 48}
TINY = {"crop_size": 32, "batch_size": 4, "steps_per_epoch": 4, "epochs": 3, "init_epochs": 1, "d_warmup_steps": 4,
        "backbone_weights": "random", "scale": 1.0, "val_count": 2}


@dataclass(frozen=True)
class Config(CustomStepConfig):
    SEVERAL_PROCESSES = True  # in a group, each process steps on its share of every batch (common.group_steps)

    data_dir: str = option(None, f"folder holding {SAMPLES_DIR}/ (photo/ and a folder per style), used when "
                                 "--photos/--style are not given (default: $DATA_DIR, else the repository's data/)")
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
    init_color_weight: float = option(15.0, "weight of the YUV colour loss in the initialisation phase too (0: the content "
                                            "loss alone, as AnimeGANv2; with VGG features that barely see colour the "
                                            "output stays a grey blur without it)")
    d_lr: float = option(4e-5, "discriminator learning rate")
    d_warmup_steps: int = option(200, "discriminator-only steps against the initialised generator before the first "
                                      "adversarial update (0: none, as AnimeGANv2; otherwise the discriminator of a "
                                      "short run has learnt nothing yet when the generator follows it)")
    ema: float = option(0.97, "decay of the moving average of the generator's weights over the adversarial steps, "
                              "which is the generator saved (0: the last weights, as AnimeGANv2). It evens out the "
                              "swings of adversarial training; 0.97 counts about the last 30 steps, 0.999 suits long runs")
    crop_size: int = option(256, f"side of the random square crops trained on, pixels (a multiple of {STRIDE})")
    scale: float = option(1.5, "pictures are scaled so their shorter side is this many crop sizes, then cropped")
    backbone: str = option("vgg19", "VGG network of the content and style losses", choices=BACKBONES)
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
    mixed_precision: bool = mixed_precision_option()
    distribute: bool = group_option()

    def __post_init__(self):
        super().__post_init__()
        check_choice("--preset", self.preset, sorted(PRESETS))
        check_choice("--backbone", self.backbone, BACKBONES)
        if self.crop_size < 32 or self.crop_size % STRIDE:
            raise UserError(f"--crop-size must be a multiple of {STRIDE}, at least 32, got {self.crop_size}")
        if not 0 <= self.init_epochs <= self.epochs:
            raise UserError(f"--init-epochs must be between 0 and --epochs ({self.epochs}), got {self.init_epochs}")
        if self.scale < 1:
            raise UserError(f"--scale must be at least 1 (crops are taken inside the picture), got {self.scale}")
        require_not_negative(self, "steps_per_epoch", "d_warmup_steps")
        require_at_least_one(self, "val_count")
        for name in ("init_lr", "d_lr"):
            if not getattr(self, name) > 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        require_not_negative(self, *PRESETS["hayao"], "adversarial_weight", "d_adversarial_weight", "init_color_weight")
        require_fraction(self, "ema")


def recipe_defaults(chosen):
    """What sits under the --config file and the flags: the --preset's loss weights, and --tiny's small run."""
    return {**PRESETS[chosen.get("preset") or "hayao"], **(TINY if chosen.get("tiny") else {})}


def train(config, resume_dir=None):
    """Train the generator `config` describes in a new run folder (or continue `resume_dir`); returns the folder."""
    # Imported here, not above: `--help` and argument errors answer without loading TensorFlow.
    from common.loop import Phase, TrainingLoop
    from projects.animegan import data
    from projects.animegan.gan import AnimeGAN

    started = time.time()
    pictures = load(config)
    steps = config.steps_per_epoch or max(1, max(len(pictures.photos), len(pictures.style)) // config.batch_size)
    run_dir = cli.open_run(PROJECT, config, resume_dir, resolved={**pictures.resolved, "steps_per_epoch": steps})
    gan = AnimeGAN(config)
    print(f"{pictures.description}; {steps} steps of {config.batch_size} {config.crop_size}-px crops per epoch, "
          f"{config.init_epochs} initialisation + {config.epochs - config.init_epochs} adversarial epochs; "
          f"{config.backbone} ({config.backbone_weights}); generator {gan.generator.count_params():,} weights")
    loop = TrainingLoop(run_dir, gan.variables_to_save(), config.seed, resume=resume_dir is not None, shown=SHOWN,
                        checkpoint_steps=config.checkpoint_every)
    validation = pictures.validation
    if loop.step == 0:
        loop.save_sample(data.before_after(validation, gan.convert(validation), "untrained"), "epoch_000.png")

    def end_epoch(epoch, logs):
        outputs = gan.convert(validation, adversarial=logs["phase"] == "adversarial")
        loop.save_sample(data.before_after(validation, outputs, f"epoch {epoch + 1}"), f"epoch_{epoch + 1:03d}.png")
        logs["val_pixel_l1"] = pixel_l1(validation, outputs)

    first_adversarial = config.init_epochs * steps + config.d_warmup_steps  # the run's steps before the adversarial phase
    phase = dict(steps_per_epoch=steps, samples_per_step=config.batch_size, end_epoch=end_epoch)
    loop.run([
        Phase("init", lambda at: init_step(gan, pictures, config, at.rng), epochs=config.init_epochs,
              on_end=lambda: runs.save_model(gan.generator, run_dir / "init.keras", PROJECT), **phase),
        # The warm-up's crops come from a generator of their own: the adversarial epoch after it draws as without one.
        Phase("d_warmup", lambda at: discriminator_step(gan, pictures, config, at.rng), config.d_warmup_steps,
              samples_per_step=config.batch_size, count_epochs=False, title=f"discriminator warm-up: {config.d_warmup_steps} steps",
              rng_key=lambda epoch: [config.seed, epoch, 1]),
        Phase("adversarial", lambda at: adversarial_step(gan, pictures, config, at.rng, at.step - first_adversarial + 1),
              epochs=config.epochs - config.init_epochs, on_start=gan.start_average, **phase),
    ])

    runs.save_model(gan.result(adversarial=config.epochs > config.init_epochs), run_dir / "model.keras", PROJECT)
    cli.finish_run(run_dir, config, started, loop, final_metrics(loop.metrics.rows), resumed=resume_dir is not None,
                   generator_parameters=gan.generator.count_params(), steps_per_epoch=steps)
    loop.discard_checkpoint()  # the run is complete; model.keras is what remains useful
    print(f"run saved in {run_dir}")
    return run_dir


def load(config):
    """The photos, the style pictures with their edge-smoothed copies, and the fixed validation photos."""
    from PIL import Image

    from common import images
    from projects.animegan import data

    side = training_side(config)
    if config.tiny:
        photos, anime = data.tiny_images(TINY_PICTURES["count"], TINY_PICTURES["size"], config.seed)
        style = [np.concatenate([a, data.edge_smooth(a)], axis=-1) for a in anime]
        validation = [images.fit(Image.fromarray(p), (config.crop_size,) * 2) for p in photos]
        validation = data.to_unit(np.stack([np.asarray(v) for v in validation[: config.val_count]]))
        return data.Pictures(photos, style, validation, f"tiny generated set: {len(photos)} photos, {len(style)} anime pictures",
                             {"photos": len(photos), "anime_pictures": len(style), "training_side": side})

    photos_dir, style_dir = sample_folders(config)
    photos, photo_files = data.read_folder(photos_dir, side, "--photos")
    data.check_enough(len(photos), config.batch_size, "--photos", photos_dir)
    if config.smooth and not Path(config.smooth).is_dir():
        raise UserError(f"--smooth {config.smooth} is not a folder; run `prepare --style {style_dir}` first, or leave it out")
    smooth_dir = config.smooth or (data.default_smooth_dir(style_dir) if data.default_smooth_dir(style_dir).is_dir() else None)
    style, made = data.read_style(style_dir, smooth_dir, side)
    data.check_enough(len(style), config.batch_size, "--style", style_dir)
    val_files = images.list_images(config.val) if config.val else photo_files
    val_images = [image for _, image in images.open_all(val_files[: config.val_count])]
    validation = data.to_unit(np.stack([np.asarray(images.fit(image, (side, side))) for image in val_images]))
    smoothing = f"{made} edge-smoothed here" if made else f"edge-smoothed copies from {smooth_dir}"
    return data.Pictures(
        photos, style, validation,
        f"{len(photos)} photos from {photos_dir}, {len(style)} anime pictures from {style_dir} "
        f"({smoothing}), scaled to {side} px on the shorter side",
        {"photos_dir": str(photos_dir), "style_dir": str(style_dir), "smooth_dir": smooth_dir and str(smooth_dir),
         "photos": len(photos), "anime_pictures": len(style), "smoothed_here": made, "training_side": side},
    )


def sample_folders(config):
    """--photos and --style, or photo/ and <preset>/ of the samples folder under --data-dir or $DATA_DIR."""
    if config.photos and config.style:
        return config.photos, config.style
    root = datasets.data_dir(config.data_dir) / SAMPLES_DIR
    photos, style = config.photos or root / "photo", config.style or root / config.preset
    if not (Path(photos).is_dir() and Path(style).is_dir()):
        raise UserError("give --photos DIR and --style DIR (folders of your photos and of anime pictures), "
                        f"or put photo/ and {config.preset}/ in {root}; --tiny tries the pipeline on generated images")
    return str(photos), str(style)


def training_side(config):
    """The shorter side pictures are scaled to before cropping: --scale crop sizes, a multiple of STRIDE."""
    return int(round(config.crop_size * config.scale / STRIDE)) * STRIDE


def pixel_l1(a, b):
    """Mean absolute difference of two image batches in [-1, 1], in 0-255 pixel steps."""
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))) * 127.5)


def final_metrics(rows):
    """summary.json's figures: the last epoch's, and the initialisation's content loss and validation distance."""
    epochs = [row for row in rows if row["phase"] != "d_warmup"]
    init_rows = [row for row in rows if row["phase"] == "init"]
    leave_out = ("phase", "epoch", "step", "seconds", "images_per_second")
    metrics = {k: v for k, v in (epochs[-1] if epochs else {}).items() if k not in leave_out and v == v}
    if init_rows:
        metrics["init_val_pixel_l1"] = init_rows[-1]["val_pixel_l1"]
        metrics["init_content_first_epoch"] = init_rows[0]["g_content"]
        metrics["init_content_last_epoch"] = init_rows[-1]["g_content"]
    return metrics


# --- the steps of each phase, on fresh random crops -----------------------------------------------


def prefixed(prefix, terms):
    return {f"{prefix}_{key}": value for key, value in terms.items()}


def init_step(gan, pictures, config, rng):
    """An initialisation step; its losses by name."""
    loss, terms = gan.init_step(pictures.photo_crops(config.batch_size, config.crop_size, rng))
    return {"init_loss": loss, **prefixed("g", terms)}


def adversarial_step(gan, pictures, config, rng, updates):
    """A discriminator and a generator update, then the average follows (`updates`: the phase's steps so far, this one too)."""
    photos = pictures.photo_crops(config.batch_size, config.crop_size, rng)
    anime, smoothed = pictures.anime_crops(config.batch_size, config.crop_size, rng)
    d_loss, d_terms = gan.discriminator_step(photos, anime, smoothed)
    g_loss, g_terms = gan.generator_step(photos, anime)
    gan.update_average(updates)
    return {"d_loss": d_loss, "g_loss": g_loss, **prefixed("g", g_terms), **prefixed("d", d_terms)}


def discriminator_step(gan, pictures, config, rng):
    """A discriminator update alone (the --d-warmup-steps before the first adversarial epoch)."""
    photos = pictures.photo_crops(config.batch_size, config.crop_size, rng)
    d_loss, d_terms = gan.discriminator_step(photos, *pictures.anime_crops(config.batch_size, config.crop_size, rng))
    return {"d_loss": d_loss, **prefixed("d", d_terms)}
