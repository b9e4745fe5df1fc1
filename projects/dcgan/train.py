"""Training the DCGAN: the settings (`Config`) and `train`.

`train` runs the adversarial step (gan.py) through the shared training loop
(`common.loop`), epoch by epoch over shuffled real images: metrics.csv, TensorBoard,
step checkpoints for `--resume`, and after every epoch a grid of samples from one
fixed noise batch (so the grids show one set of faces or digits taking shape). At the
end it saves the sampling generator (`generator.keras`), a progress GIF and the run's
summary. What the settings leave to the data (which dataset, the image size, grey or
colour, labels or not) is worked out once and recorded in config.json under "resolved".
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from common import cli, images, runs
from common.config import (
    CustomStepConfig, group_option, mixed_precision_option, option, require_at_least_one, require_fraction, require_not_negative,
)
from common.errors import UserError
from projects.dcgan import DATASETS, PROJECT

IMAGE_SIZES = range(16, 257, 4)  # the networks halve a side at least twice, down to a map of at least 4x4
FIXED_NOISE_STREAM = 7919  # seeds the noise of the per-epoch sample grids, apart from training's


@dataclass(frozen=True)
class Config(CustomStepConfig):
    SEVERAL_PROCESSES = True  # in a group, each process steps on its share of every batch (common.group_steps)

    dataset: str = option(None, "train on a registered dataset (default: mnist, or the images in --data-dir when given)", choices=DATASETS)
    data_dir: str = option(None, "a folder of your own images to learn (with --dataset: the folder holding that dataset's files)")
    image_size: int = option(None, "side of the square images, a multiple of 4 (default: 28 for the registered sets, 64 for a folder, 16 with --tiny)", type=int)
    mode: str = option(None, "grey or rgb images (default: grey for the registered sets, rgb for a folder)", choices=("grey", "rgb"))
    epochs: int = option(15, "passes over the training images")
    batch_size: int = option(64, "real images (and as many generated ones) per step")
    lr: float = option(2e-4, "Adam learning rate of both networks")
    beta1: float = option(0.5, "Adam's beta_1 (0.5 steadies adversarial training)")
    width: int = option(32, "channels of the generator's last hidden layer; they double towards its input")
    discriminator_width: int = option(64, "channels of the discriminator's first layer (0: the same as --width)")
    discriminator_norm: bool = option(True, "batch norm in the discriminator (on all but its first layer)")
    dropout: float = option(0.0, "dropout after each of the discriminator's convolutions")
    latent_dim: int = option(100, "length of the noise vector")
    ema: float = option(0.999, "decay of the generator weight average that makes the samples (0: no average)")
    samples: int = option(64, "images in each epoch's sample grid")
    conditional: bool = option(
        None, "a class-conditional GAN: both networks get each image's label (default: on for --dataset mnist and "
        "fashion-mnist, off for folders, which have no labels, and --tiny)", type=bool,
    )
    mixed_precision: bool = mixed_precision_option()
    distribute: bool = group_option()

    def __post_init__(self):
        super().__post_init__()
        if self.conditional and dataset_of(self) == "folder":
            raise UserError("--conditional needs labelled images: --dataset mnist or fashion-mnist (or --tiny); a folder has no labels")
        if self.image_size is not None and self.image_size not in IMAGE_SIZES:
            raise UserError(f"--image-size must be a multiple of 4 from 16 to 256 (e.g. 28, 32, 64, 96), got {self.image_size}")
        require_at_least_one(self, "width", "latent_dim", "samples")
        require_not_negative(self, "discriminator_width")
        require_fraction(self, "ema", "dropout", "beta1")


def train(config, resume_dir=None):
    """Train as `config` asks (continuing the run in `resume_dir`, when given); returns the run folder."""
    # Imported here, not at the top, so that `--help` answers without loading Keras.
    from common import backend
    from common.loop import Phase, TrainingLoop
    from projects.dcgan import data
    from projects.dcgan.gan import GAN

    started = time.time()
    settings = resolved_settings(config)
    x, labels, description = data.load(settings["dataset"], config.data_dir, settings["image_size"], settings["mode"], config.seed)
    if len(x) < config.batch_size:
        raise UserError(f"only {len(x)} training images, fewer than --batch-size {config.batch_size}; lower --batch-size")
    classes = int(labels.max()) + 1 if settings["conditional"] else 0
    run_dir = cli.open_run(PROJECT, config, resume_dir, resolved={**settings, "images": len(x), "classes": classes})
    print(f"{description}; backend {backend.name()}, {backend.describe_device()}")

    gan = GAN(config, settings["image_size"], channels=x.shape[-1], classes=classes)
    loop = TrainingLoop(run_dir, gan.variables_to_save(), config.seed, resume=resume_dir is not None,
                        checkpoint_steps=config.checkpoint_every)
    fixed_noise = gan.noise(np.random.default_rng([config.seed, FIXED_NOISE_STREAM]), config.samples)
    batch = config.batch_size
    steps = len(x) // batch  # whole batches only: one compiled shape, steady batch norm

    def step(at):  # at.epoch_data: the epoch's order of the images; at.rng: its noise
        chosen = at.epoch_data[at.index * batch : (at.index + 1) * batch]
        return gan.train_step(data.to_unit_range(x[chosen]), at.rng, labels[chosen] if gan.classes else None, at.step + 1)

    def end_epoch(epoch, logs):
        loop.save_sample(sample_grid(gan, fixed_noise), f"epoch_{epoch + 1:03d}.png")

    last = loop.run([Phase("train", step, steps, config.epochs, samples_per_step=batch,
                           begin_epoch=lambda rng, epoch: rng.permutation(len(x)), end_epoch=end_epoch)])

    runs.save_model(gan.sampler, run_dir / "generator.keras", PROJECT)
    runs.save_model(gan.discriminator, run_dir / "discriminator.keras", PROJECT)
    frames = sorted((run_dir / "samples").glob("epoch_*.png"))
    progress_gif(frames, run_dir / "samples" / "progress.gif")
    final = images.save_image(sample_grid(gan, fixed_noise), run_dir / "samples" / "final.png")
    summary = cli.finish_run(
        run_dir,
        config,
        started,
        loop,
        {key: last[key] for key in ("d_loss", "g_loss", "real_score", "fake_score")},
        train_images_per_second=round(loop.samples_per_second, 1),
        training_images=config.epochs * steps * batch,
        resumed=resume_dir is not None,
        generator_parameters=gan.generator.count_params(),
        discriminator_parameters=gan.discriminator.count_params(),
    )
    loop.discard_checkpoint()  # the run is finished: generator.keras is what it made
    print(f"samples in {final} and {run_dir / 'samples' / 'progress.gif'}; summary {summary}")
    print(f"run saved in {run_dir}")
    return run_dir


def resolved_settings(config):
    """What the settings leave to the data: the dataset, the image size, grey or rgb, and whether labels are used."""
    dataset = dataset_of(config)
    registered = dataset in DATASETS
    return {
        "dataset": dataset,
        "image_size": config.image_size or {"tiny": 16, "folder": 64}.get(dataset, 28),
        "mode": config.mode or ("grey" if registered else "rgb"),
        "conditional": registered if config.conditional is None else config.conditional,
    }


def dataset_of(config):
    """What the settings ask to learn: "mnist", "fashion-mnist", "folder" (the images in --data-dir) or "tiny"."""
    if config.tiny:
        return "tiny"
    if config.dataset:
        return config.dataset
    return "folder" if config.data_dir else "mnist"


def sample_grid(gan, noise):
    """The fixed noise batch (and labels 0, 1, 2, ... for a conditional GAN) through the sampling generator, as one picture."""
    from projects.dcgan import data
    from projects.dcgan.generate import fixed_labels

    generated = data.to_uint8(gan.sample(noise, fixed_labels(len(noise), gan.classes)))
    columns = math.ceil(math.sqrt(len(generated)))
    scale = max(1, 128 // (generated.shape[1] * columns // 8))  # small images are shown larger
    return images.grid(generated, columns=columns, scale=min(scale, 3))


def progress_gif(frames, path, small=False):
    """The epoch grids as an animation; the last one lingers. `small`: at most 352 px and 16 colours, for a README."""
    from PIL import Image

    pictures = [Image.open(frame).convert("RGB") for frame in frames]
    if small:
        pictures = [images.shrink_to(picture, 352).quantize(16, dither=Image.Dither.NONE) for picture in pictures]
    durations = [400] * (len(pictures) - 1) + [2000]
    with runs.atomic_path(path) as temporary:
        pictures[0].save(temporary, save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return path
