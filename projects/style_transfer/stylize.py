"""What style transfer does for users: `stylize` photos, by optimisation or with a trained network, and `export` it.

`stylize --content --style` repaints one photo by optimisation (`optimize.py`: slow,
exact, any painting) and writes a new folder with the result, snapshots of its
progress and its loss curve. `stylize --model --input` paints files and folders with a
network trained on one painting (`train.py`), one pass per image, same-size images
batched together. `export` writes that network as a self-contained uint8-in, uint8-out
model and checks that, reloaded, it paints what the trained one does.
"""

import csv
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import cli, images, runs
from common.config import option, require_at_least_one, require_not_negative
from common.errors import UserError
from projects.style_transfer import MIN_SIDE, PROJECT, data
from projects.style_transfer.train import TERMS

OUTPUTS = f"{PROJECT}/stylized"  # under runs/: apart from training runs, so --resume never picks one


@dataclass(frozen=True)
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
    seed: int = option(0, "seed of the noise start and of a random VGG (--backbone-weights random)")

    def __post_init__(self):
        require_at_least_one(self, "iterations")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        require_not_negative(self, "save_every", "content_weight", "style_weight", "tv_weight")
        for name in ("max_size", "style_size"):
            if getattr(self, name) is not None and getattr(self, name) < MIN_SIDE:
                raise UserError(f"--{name.replace('_', '-')} must be at least {MIN_SIDE}, got {getattr(self, name)}")

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


def stylize(args):
    """The `stylize` command: by optimisation (--content, --style) or with a trained network (--model, --input)."""
    config = cli.config_from_args(StylizeConfig, args)  # checks the typed settings: --max-size serves both ways
    if args.model or args.input:
        given = [f"--{name}" for name in ("content", "style") if getattr(config, name)]
        if given:
            raise UserError(f"{' and '.join(given)} belong to the optimisation; with --model, give --input only")
        if not args.input:
            raise UserError("give --input with the images or folders to stylize")
        return with_network(args, config)
    by_optimisation(config)
    return 0


# --- by optimisation ----------------------------------------------------------------------


def by_optimisation(config):
    """Optimise the photo, then write the result and how it got there; returns the folder."""
    # Imported here, not at the top, so that `--help` answers without loading TensorFlow.
    from common import backend
    from projects.style_transfer import losses, optimize

    if not config.content:
        raise UserError("give --content PHOTO and --style PAINTING (or --model and --input for a trained network)")
    if not config.style:
        raise UserError("give at least one --style PAINTING")
    losses.check_settings(config)  # bad layers or a missing weights file stop before any image is read
    blend = config.blend()
    max_size = config.max_size or 512
    photo = data.load(config.content, max_size)
    style_size = config.style_size or max(photo.shape[:2])
    paintings = [data.load(path, style_size, "--style-size") for path in config.style]
    backend.set_random_seed(config.seed)  # so that a random VGG (--backbone-weights random) is the same on every run
    loss = losses.perceptual_loss(config)  # builds the VGG: a bad weights file stops here, before any folder exists

    out = runs.new_run_dir(OUTPUTS, config.out)
    resolved = {"out": str(out), "max_size": max_size, "style_size": style_size, "blend": blend}
    runs.save_config(out, config, {"resolved": resolved, "command": "stylize", "backend": backend.name(),
                                   "versions": backend.versions()})
    height, width = photo.shape[:2]
    print(f"repainting {config.content} ({width}x{height}) in the style of {', '.join(config.style)}; "
          f"{config.iterations} iterations on {backend.name()}, {backend.describe_device()}")
    started = time.time()
    result, history = optimize.optimise(
        photo, paintings, blend, loss, config.iterations, config.lr, out, config.init, config.save_every,
        config.preserve_color, config.seed,
    )
    save_outputs(out, result, history, config, loss.weights)
    final = history.losses[-1]
    summary = {
        "metrics": {key: float(final[key]) for key in TERMS},
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
    from common import backend
    from projects.style_transfer import pictures

    images.save_image(data.to_image(result), out / "stylized.png")
    for iteration, snapshot in history.snapshots:
        images.save_image(data.to_image(snapshot), out / "progress" / f"iteration_{iteration:05d}.jpg")
    if len(history.snapshots) > 1:
        pictures.progress_gif(history.snapshots, out / "progress.gif")
    with runs.atomic_path(out / "losses.csv") as temporary:
        with open(temporary, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=["iteration", *TERMS])
            writer.writeheader()
            writer.writerows(history.losses)
    title = f"{config.iterations} iterations, {history.seconds_per_iteration:.2f} s each ({backend.name()})"
    pictures.loss_curve(history.losses, weights, out / "loss_curve.png", title)


# --- with a trained network -----------------------------------------------------------------


def with_network(args, config):
    """Every image through the trained network, batched by size; PNGs into a new (or empty) folder, under
    names unique within it, so no file is ever replaced. Returns the exit status: 1 when any input failed."""
    from projects.style_transfer.model import load_network

    path = runs.model_path(PROJECT, args.model)
    net = load_network(path)
    files = images.expand_inputs(args.input)
    max_size = config.max_size or 2048
    made_here = config.out is None or not Path(config.out).exists()  # an empty folder the user made stays theirs
    out = runs.new_run_dir(OUTPUTS, config.out)
    names, failures, count, seconds = set(), 0, 0, 0.0
    pending = defaultdict(list)  # image shape -> [(file, array)]: same-size images share a batch

    def flush(shape):
        nonlocal count, seconds
        batch = pending.pop(shape)
        started = time.perf_counter()
        outputs = paint(net, [array for _, array in batch], config.preserve_color)
        seconds += time.perf_counter() - started
        for (file, _), result in zip(batch, outputs):
            name = unique_name(Path(file).stem, names)
            images.save_image(data.to_image(result), out / f"{name}.png")
            print(f"{file}\t{out / f'{name}.png'}")
            count += 1

    for file in files:
        try:
            array = data.load(file, max_size)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        pending[array.shape].append((file, array))
        if len(pending[array.shape]) >= args.batch_size:
            flush(array.shape)
    for shape in list(pending):
        flush(shape)
    if not count:  # each failure has had its error line
        if made_here:
            out.rmdir()  # created for this call and still empty
        return 1
    print(f"stylized {count} images in {seconds:.1f} s of network time; results in {out}", file=sys.stderr)
    return 1 if failures else 0


def paint(net, photos, preserve_color=False):
    """The network's pictures of same-size float RGB photos, with each photo's colours when `preserve_color`."""
    import keras

    outputs = keras.ops.convert_to_numpy(net.predict_on_batch(np.stack(photos)))
    return [data.keep_colours(result, photo) if preserve_color else result for result, photo in zip(outputs, photos)]


def unique_name(stem, taken):
    name, number = stem, 2
    while name in taken:
        name, number = f"{stem}_{number}", number + 1
    taken.add(name)
    return name


def export(args):
    """Write the uint8-in, uint8-out model and check that, reloaded, it paints what the trained one does."""
    import keras

    from projects.style_transfer.model import inference_model, load_network

    path = runs.model_path(PROJECT, args.model)
    out = runs.export_file(path, args.out, "stylizer.keras", args.overwrite)  # before any work: the user's files stay
    net = load_network(path)
    exported = net if net.output.dtype == "uint8" else inference_model(net)
    runs.save_model(exported, out, PROJECT)

    # An odd size on purpose: the file alone must handle any image, exactly as the trained network does.
    x = np.random.default_rng(0).uniform(0, 255, (2, 67, 93, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(exported.predict_on_batch(x)).astype(np.int16)
    got = keras.ops.convert_to_numpy(load_network(out).predict_on_batch(x)).astype(np.int16)
    if got.shape != expected.shape or np.abs(got - expected).max() > 1:
        raise UserError(f"{out} does not paint like {path} after reloading; the export is not to be trusted")
    same = float(np.mean(got == expected))
    print(f"exported {out}; reloaded, it paints two 93x67 test images as {path.name} does ({same:.2%} of values identical, none off by more than 1)")
    return out
