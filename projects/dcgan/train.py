"""Training and generation for the DCGAN.

`train` runs the adversarial step (gan.py) through the shared training loop
(`common.loop`), epoch by epoch over shuffled real images: metrics.csv, TensorBoard,
step checkpoints for `--resume`, and after every epoch a grid of samples from one
fixed noise batch (so the grids show one set of faces or digits taking shape). At the
end it saves the sampling generator (`generator.keras`), a progress GIF and the run's
summary. `generate` draws any number of images from a trained generator, as PNG files
or one uint8 array.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from common import backend, cli, images, runs
from common.cli import option
from common.errors import UserError
from common.loop import Phase, TrainingLoop
from projects.dcgan import data
from projects.dcgan.gan import GAN
from projects.dcgan.model import layout

PROJECT = "dcgan"
FIXED_NOISE_STREAM = 7919  # seeds the noise of the per-epoch sample grids, apart from training's


@dataclass
class Config(cli.CustomStepConfig):
    dataset: str = option(None, "train on a registered dataset (default: mnist, or the images in --data-dir when given)", choices=data.REGISTERED)
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

    def __post_init__(self):
        super().__post_init__()
        if self.distribute:
            raise UserError("--distribute is not supported by the DCGAN's custom training loop; train on one device")
        dataset = data.resolve_dataset(self)
        if self.conditional is None:
            self.conditional = dataset in data.REGISTERED
        if self.conditional and dataset == "folder":
            raise UserError("--conditional needs labelled images: --dataset mnist or fashion-mnist (or --tiny); a folder has no labels")
        if dataset == "mnist":
            self.dataset = "mnist"  # recorded, so that evaluate knows which classifier reads its images
        if self.image_size is None:
            self.image_size = {"tiny": 16, "folder": 64}.get(dataset, 28)
        self.mode = self.mode or data.default_mode(dataset)
        layout(self.image_size)
        cli.require_at_least_one(self, "width", "latent_dim", "samples")
        cli.require_not_negative(self, "discriminator_width")
        if not 0 <= self.ema < 1:
            raise UserError(f"--ema must be in [0, 1), got {self.ema}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.beta1 < 1:
            raise UserError(f"--beta1 must be in [0, 1), got {self.beta1}")


def fixed_labels(count, classes):
    """Labels for a grid or a balanced draw: 0, 1, ..., classes - 1, 0, 1, ... as (count, 1); None without classes."""
    return (np.arange(count, dtype=np.int32) % classes)[:, None] if classes else None


def sample_grid(gan, noise):
    """The fixed noise batch (and labels 0, 1, 2, ... for a conditional GAN) through the sampling generator, as one picture."""
    generated = data.to_uint8(gan.sample(noise, fixed_labels(len(noise), gan.classes)))
    columns = math.ceil(math.sqrt(len(generated)))
    scale = max(1, 128 // (generated.shape[1] * columns // 8))  # small images are shown larger
    return images.grid(generated, columns=columns, scale=min(scale, 3))


def progress_gif(frames, path, small=False):
    """The epoch grids as an animation; the last one lingers. `small`: at most 352 px and 16 colours, for a README."""
    pictures = [Image.open(frame).convert("RGB") for frame in frames]
    if small:
        for picture in pictures:
            picture.thumbnail((352, 352))
        pictures = [picture.quantize(16, dither=Image.Dither.NONE) for picture in pictures]
    durations = [400] * (len(pictures) - 1) + [2000]
    with runs.atomic_path(path) as temporary:
        pictures[0].save(temporary, save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return path


def train(args):
    started = time.time()
    config, resume_dir = cli.resolve_config(PROJECT, Config, args)
    x, labels, description = data.load(config)
    if len(x) < config.batch_size:
        raise UserError(f"only {len(x)} training images, fewer than --batch-size {config.batch_size}; lower --batch-size")
    run_dir = cli.open_run(PROJECT, config, resume_dir)
    print(f"{description}; backend {backend.name()}, {backend.describe_device()}")

    gan = GAN(config, channels=x.shape[-1], classes=int(labels.max()) + 1 if config.conditional else 0)
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

    runs.save_model(gan.sampler, run_dir / "generator.keras")
    runs.save_model(gan.discriminator, run_dir / "discriminator.keras")
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


def load_generator(model):
    path = runs.model_path(PROJECT, model, "generator.keras")
    generator = runs.load_model(path)
    noise_shape = generator.input_shape[0] if isinstance(generator.input_shape, list) else generator.input_shape
    if len(noise_shape) != 2 or len(generator.output_shape) != 4:
        raise UserError(f"{path} is not a generator (it maps {generator.input_shape} to {generator.output_shape})")
    return generator, path


def classes_of(generator):
    """How many classes a conditional generator draws (0 for an unconditional one)."""
    encoding = next((layer for layer in generator.layers if isinstance(layer, keras.layers.CategoryEncoding)), None)
    return encoding.num_tokens if encoding is not None else 0


def draw(generator, count, seed, label=None, batch_size=256):
    """`count` uint8 images (N, H, W, C) from noise seeded by `seed`.

    A conditional generator draws every class in turn (0, 1, 2, ...), or only `label`.
    """
    classes = classes_of(generator)
    if label is not None and not classes:
        raise UserError(f"--label {label}: this generator is not conditional (train one with --conditional)")
    if label is not None and not 0 <= label < classes:
        raise UserError(f"--label {label}: this generator draws classes 0 to {classes - 1}")
    latent_dim = generator.inputs[0].shape[-1]
    noise = np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)
    inputs = noise
    if classes:
        inputs = [noise, fixed_labels(count, classes) if label is None else np.full((count, 1), label, np.int32)]
    return data.to_uint8(generator.predict(inputs, batch_size=batch_size, verbose=0))


def generate(args):
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    out = Path(args.out)
    if out.suffix == ".npz" and out.exists():
        raise UserError(f"{out} already exists; choose another --out")
    if out.suffix != ".npz" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder; choose another --out")
    generator, path = load_generator(args.model)
    generated = draw(generator, args.n, args.seed, getattr(args, "label", None))
    if out.suffix == ".npz":
        with runs.atomic_path(out) as temporary:
            np.savez_compressed(temporary, images=generated)
    else:
        out.mkdir(parents=True, exist_ok=True)
        digits = len(str(args.n - 1))
        for index, image in enumerate(generated):
            images.save_image(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image), out / f"{index:0{digits}d}.png")
    print(f"{args.n} images of {'x'.join(map(str, generated.shape[1:]))} from {path} written to {out}")
