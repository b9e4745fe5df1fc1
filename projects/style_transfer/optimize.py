"""Style transfer by optimisation (Gatys et al., 2016): change the pixels until the image has the
photo's content and the painting's style.

The image itself is the only trainable variable. It starts as the photo (or as noise,
`--init noise`), and every iteration takes one Adam step on its pixel values along the
gradient of the perceptual loss, through the frozen VGG, then clips them to [0, 255].
Adam on pixels gets to a good picture in a few hundred steps; its step size is in pixel
values, so `--lr 4` means no pixel moves by much more than 4 per step. Several paintings
blend by mixing their Gram matrices. The iterations run through the shared training
loop (`common.loop`), in epochs of `--save-every` iterations, for its progress bar, its
stop on a NaN loss and its TensorBoard logs (no checkpoints: a few hundred steps on one
picture are not worth resuming). After each epoch the current image is kept, so a user
can watch it converge, and every iteration's losses are logged for the curve.

`--preserve-color` does luminance-only transfer: the photo and the painting are reduced
to their luminance (the painting's matched to the photo's mean and spread), the
transfer runs on those, and the result's luminance is put under the photo's colours.
"""

import csv
import time
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from common import backend, cli, images, runs
from common.cli import option
from common.errors import UserError
from common.loop import Phase, TrainingLoop
from projects.style_transfer import data, losses, pictures
from projects.style_transfer.losses import PerceptualLoss

OUTPUTS = "style_transfer/stylized"  # under runs/: apart from training runs, so --resume never picks one


@dataclass
class StylizeConfig:
    """The optimisation's settings; its defaults are the recipe of the README's gallery."""

    content: str = option(None, "the photo to repaint")
    style: list = option(None, "a painting; repeat --style to blend several", action="append", type=str)
    style_weights: str = option(None, "share of each --style, comma-separated, e.g. 0.7,0.3 (default: equal)")
    out: str = option(None, "folder to create for the results (default: runs/style_transfer/stylized/<timestamp>)")
    max_size: int = option(None, "longer side of the result in pixels; bigger photos are scaled down (default: 512, or 2048 with --model)", type=int)
    style_size: int = option(None, "longer side the paintings are scaled to (default: the result's)", type=int)
    iterations: int = option(300, "Adam steps on the pixels")
    lr: float = option(4.0, "Adam step size, in pixel values (0-255)")
    init: str = option("content", "start from the photo or from noise", choices=("content", "noise"))
    content_weight: float = option(1.0, "weight of the content loss")
    style_weight: float = option(10.0, "weight of the style loss")
    tv_weight: float = option(1.0, "weight of the total-variation loss (smoothness)")
    content_layers: str = option("block4_conv2", "VGG layers whose feature maps define content, comma-separated")
    style_layers: str = option(
        "block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1", "VGG layers whose Gram matrices define style"
    )
    preserve_color: bool = option(False, "keep the photo's colours: transfer on luminance only")
    save_every: int = option(25, "save the image every N iterations, to watch it converge (0: never)")
    backbone: str = option("vgg19", "VGG network that measures content and style", choices=("vgg16", "vgg19"))
    backbone_weights: str = option("imagenet", "its weights: imagenet (downloaded by Keras), a local weights file, or random")
    seed: int = option(0, "seed of the noise start")

    def __post_init__(self):
        if self.iterations < 1:
            raise UserError(f"--iterations must be at least 1, got {self.iterations}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        cli.require_not_negative(self, "save_every")
        for name in ("max_size", "style_size"):
            if getattr(self, name) is not None and getattr(self, name) < data.MIN_SIDE:
                raise UserError(f"--{name.replace('_', '-')} must be at least {data.MIN_SIDE}, got {getattr(self, name)}")
        losses.check_settings(self)

    def blend(self):
        """The share of each painting, summing to 1."""
        count = len(self.style or [])
        if self.style_weights is None:
            return [1.0 / count] * count
        try:
            shares = [float(value) for value in self.style_weights.split(",")]
        except ValueError:
            raise UserError(f"--style-weights must be numbers separated by commas, got {self.style_weights!r}") from None
        if len(shares) != count:
            raise UserError(f"--style-weights gives {len(shares)} weights for {count} --style images")
        if min(shares) < 0 or sum(shares) <= 0:
            raise UserError(f"--style-weights must be non-negative and not all zero, got {self.style_weights}")
        return [share / sum(shares) for share in shares]


@dataclass
class History:
    """What an optimisation run leaves behind besides the image: losses per iteration, snapshots, speed."""

    losses: list = field(default_factory=list)  # dicts: iteration, loss, content, style, tv
    snapshots: list = field(default_factory=list)  # (iteration, float RGB array)
    seconds_per_iteration: float = 0.0
    compile_seconds: float = 0.0


class Recorder(keras.callbacks.Callback):
    """Each iteration's losses into a History, and its speed: the first iteration (which compiles) apart from the rest."""

    def __init__(self, history):
        super().__init__()
        self.history = history

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        iteration, now = self.params["loop"].step, time.perf_counter()
        self.history.losses.append({"iteration": iteration, **logs})
        if iteration == 1:
            self.history.compile_seconds, self.first = now - self.started, now
        else:
            self.history.seconds_per_iteration = (now - self.first) / (iteration - 1)


def optimise(photo, paintings, blend, loss, iterations, lr, out, init="content", save_every=0, preserve_color=False, seed=0):
    """Repaint `photo` (float RGB (H, W, 3)) in the style of `paintings` (each (h, w, 3)).

    `loss` is a PerceptualLoss; `blend` the share of each painting. `out` is the folder
    the training loop writes its metrics.csv and TensorBoard logs to. Returns (image, History).
    """
    original = photo
    if preserve_color:
        photo = data.luminance(photo)
        paintings = [data.match_luminance(painting, photo) for painting in paintings]
    batch = ops.convert_to_tensor(photo[None], "float32")
    content_targets = loss.content_targets(batch)
    style_targets = loss.style_targets(paintings, blend)

    if init == "noise":
        start = np.random.default_rng(seed).uniform(0, 255, photo.shape).astype(np.float32)
    else:
        start = photo.astype(np.float32)
    image = keras.Variable(start[None], name="image")
    optimizer = keras.optimizers.Adam(learning_rate=float(lr))

    def loss_fn(content_targets, style_targets):
        return loss(image.value, content_targets, style_targets)

    update = backend.gradient_step(loss_fn, [image], optimizer)
    history = History()
    loop = TrainingLoop(out, {"image": [image], "optimizer": optimizer.variables}, seed, unit="iterations",
                        checkpoint_steps=None, callbacks=[Recorder(history)])

    def step(at):
        total, terms = update(content_targets, style_targets)
        image.assign(ops.clip(image.value, 0.0, 255.0))
        return {"loss": total, **terms}

    def keep():
        snapshot = keras.ops.convert_to_numpy(image.value)[0]
        history.snapshots.append((loop.step, data.keep_colours(snapshot, original) if preserve_color else snapshot))

    if save_every:
        keep()
    every = save_every or max(1, iterations // 10)  # without snapshots, ten epochs still show the progress
    end_epoch = (lambda epoch, logs: keep()) if save_every else None
    loop.run([Phase("optimise", step, every, iterations // every, end_epoch=end_epoch),
              Phase("optimise", step, iterations % every, end_epoch=end_epoch)])  # the iterations left over
    result = keras.ops.convert_to_numpy(image.value)[0]
    if preserve_color:
        result = data.keep_colours(result, original)
    return result, history


def perceptual_loss(config):
    """The PerceptualLoss a config (optimisation or training) names."""
    return PerceptualLoss(
        config.backbone,
        config.backbone_weights,
        config.content_layers,
        config.style_layers,
        config.content_weight,
        config.style_weight,
        config.tv_weight,
    )


def run(config):
    """The `stylize --content --style` command: optimise, then write the result and how it got there."""
    if not config.content:
        raise UserError("give --content PHOTO and --style PAINTING (or --model and --input for a trained network)")
    if not config.style:
        raise UserError("give at least one --style PAINTING")
    blend = config.blend()
    max_size = config.max_size or 512
    photo = data.load(config.content, max_size)
    style_size = config.style_size or max(photo.shape[:2])
    paintings = [data.load(path, style_size, "--style-size") for path in config.style]
    loss = perceptual_loss(config)  # builds the VGG: a bad weights file stops here, before any folder exists

    out = runs.new_run_dir(OUTPUTS, config.out)
    config.out, config.max_size = str(out), max_size
    runs.save_config(out, config, {"command": "stylize", "backend": backend.name(), "versions": backend.versions()})
    height, width = photo.shape[:2]
    print(f"repainting {config.content} ({width}x{height}) in the style of {', '.join(config.style)}; "
          f"{config.iterations} iterations on {backend.name()}, {backend.describe_device()}")
    started = time.time()
    result, history = optimise(
        photo, paintings, blend, loss, config.iterations, config.lr, out, config.init, config.save_every,
        config.preserve_color, config.seed,
    )
    save_outputs(out, result, history, config, loss.weights)
    final = history.losses[-1]
    summary = {
        "metrics": {key: float(final[key]) for key in ("loss", "content", "style", "tv")},
        "iterations": config.iterations,
        "size": [width, height],
        "seconds_per_iteration": round(history.seconds_per_iteration, 4),
        "first_iteration_seconds": round(history.compile_seconds, 2),
        "wall_seconds": round(time.time() - started, 1),
        "backend": backend.name(),
        "device": backend.describe_device(),
        "versions": backend.versions(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    runs.write_json(out / "summary.json", summary)
    print(f"{history.seconds_per_iteration:.3f} s per iteration at {width}x{height}; result in {out / 'stylized.png'}")
    return out


def save_outputs(out, result, history, config, weights):
    """stylized.png, progress/ snapshots and progress.gif, losses.csv and loss_curve.png."""
    images.save_image(data.to_image(result), out / "stylized.png")
    for iteration, snapshot in history.snapshots:
        images.save_image(data.to_image(snapshot), out / "progress" / f"iteration_{iteration:05d}.jpg")
    if len(history.snapshots) > 1:
        pictures.progress_gif(history.snapshots, out / "progress.gif")
    with runs.atomic_path(out / "losses.csv") as temporary:
        with open(temporary, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=["iteration", "loss", "content", "style", "tv"])
            writer.writeheader()
            writer.writerows(history.losses)
    title = f"{config.iterations} iterations, {history.seconds_per_iteration:.2f} s each ({backend.name()})"
    pictures.loss_curve(history.losses, weights, out / "loss_curve.png", title)
