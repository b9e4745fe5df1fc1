"""Training the fast style-transfer network on one painting (`train`), and scoring it (`evaluate`).

`train` fits a transform network (`model.py`) to one painting: every step draws a batch
of random crops of the content photos, runs them through the network, and takes an
Adam step on the perceptual loss (`losses.py`) between the network's output and the
crops (content) and the painting (style), with `common.backend.gradient_step`. It trains
through the shared training loop (`common.loop`): a progress bar, metrics.csv,
TensorBoard, step checkpoints (weights, optimiser state) for `--resume`, which
continues with the very batches the run would have drawn, and after every epoch a
sample image. The final model.keras stylizes any image size in one pass
(`stylize --model`, in `stylize.py`); `evaluate` scores it with the loss it was trained on.
"""

import sys
import time
from dataclasses import dataclass

import numpy as np

from common import cli, images, runs
from common.config import CustomStepConfig, group_option, option, require_at_least_one, require_not_negative
from common.errors import UserError
from projects.style_transfer import MIN_SIDE, PROJECT

TERMS = ("loss", "content", "style", "tv")
TINY = {"crop_size": 32, "steps_per_epoch": 4, "speed_size": 64}  # --tiny: sized to its 48-pixel generated photos


@dataclass(frozen=True)
class Config(CustomStepConfig):
    SEVERAL_PROCESSES = True  # in a group, each process steps on its share of every batch (common.group_steps)

    style: str = option(None, "the painting the network learns to paint like")
    content_dir: list = option(None, "folder of content photos to train on; repeat for several", action="append", type=str)
    data_dir: str = option(None, "one more folder of content photos (the shared flag; same as --content-dir)")
    epochs: int = option(14, "epochs; each ends with a checkpoint, a sample image and a line of metrics.csv")
    steps_per_epoch: int = option(40, "training steps per epoch, each on a fresh batch of random crops")
    batch_size: int = option(4, "crops per training step")
    lr: float = option(1e-3, "Adam learning rate")
    crop_size: int = option(128, "side of the square training crops, pixels")
    photo_size: int = option(512, "photos are first scaled so their shorter side is at most this; crops are 1x to that size")
    style_size: int = option(320, "longer side the painting is scaled to for its Gram matrices")
    filters: int = option(16, "channels of the network's first layer (x2 and x4 deeper); Johnson et al. used 32")
    residual_blocks: int = option(5, "residual blocks at a quarter of the resolution")
    content_weight: float = option(1.0, "weight of the content loss")
    style_weight: float = option(100.0, "weight of the style loss")
    tv_weight: float = option(1.0, "weight of the total-variation loss (smoothness)")
    content_layers: str = option("block2_conv2", "VGG layers whose feature maps define content, comma-separated")
    style_layers: str = option(
        "block1_conv2,block2_conv2,block3_conv3,block4_conv3", "VGG layers whose Gram matrices define style"
    )
    backbone: str = option("vgg19", "VGG network that measures content and style", choices=("vgg16", "vgg19"))
    backbone_weights: str = option("imagenet", "its weights: imagenet (downloaded by Keras), a local weights file, or random")
    distribute: bool = group_option()

    def __post_init__(self):
        super().__post_init__()
        require_at_least_one(self, "steps_per_epoch", "filters", "residual_blocks")
        require_not_negative(self, "content_weight", "style_weight", "tv_weight")
        for name in ("crop_size", "photo_size", "style_size"):
            if getattr(self, name) < MIN_SIDE:
                raise UserError(f"--{name.replace('_', '-')} must be at least {MIN_SIDE}, got {getattr(self, name)}")

    def content_folders(self):
        return list(self.content_dir or []) + ([self.data_dir] if self.data_dir else [])


def train(config, resume_dir=None):
    """Fit the network to the painting; returns the run folder (model.keras, samples/, metrics.csv, summary.json)."""
    # Imported here, not at the top, so that `--help` answers without loading TensorFlow.
    import keras

    from common import backend
    from common.loop import Phase, TrainingLoop
    from projects.style_transfer import data, losses
    from projects.style_transfer.model import build_transform_net

    started = time.time()
    losses.check_settings(config)  # bad layers or a missing weights file stop before any photo is read
    crop_size, steps_per_epoch = training_sizes(config)
    photos, painting, description = load(config)
    backend.set_random_seed(config.seed)  # so that a random VGG (--backbone-weights random) is the same on --resume
    loss = losses.perceptual_loss(config)  # builds the VGG: bad weights stop here, before any run folder exists
    resolved = {"crop_size": crop_size, "steps_per_epoch": steps_per_epoch, "photos": len(photos),
                "painting_size": [painting.shape[1], painting.shape[0]]}
    run_dir = cli.open_run(PROJECT, config, resume_dir, resolved=resolved)
    print(f"{description}; style {config.style or 'generated stripes'}; {crop_size} px crops, batch {config.batch_size}; "
          f"backend {backend.name()}, {backend.describe_device()}")

    net = build_transform_net(config.filters, config.residual_blocks)
    optimizer = keras.optimizers.Adam(float(config.lr))
    style_targets = loss.style_targets([painting])

    def loss_fn(photos, style_targets):
        stylized = net(photos, training=True)
        content_targets = {k: keras.ops.stop_gradient(v) for k, v in loss.content_targets(photos).items()}
        return loss(stylized, content_targets, style_targets)

    update = backend.gradient_step(loss_fn, net.trainable_variables, optimizer, shared_inputs=1)  # the photos
    loop = TrainingLoop(run_dir, {"net": net.variables, "optimizer": optimizer.variables}, config.seed,
                        resume=resume_dir is not None, checkpoint_steps=config.checkpoint_every)
    crops = data.Crops(photos, crop_size, config.batch_size, config.seed)
    sample = np.asarray(images.shrink_to(photos[0], 256), np.float32)[None]

    def step(at):  # the crops are a function of the step alone, so a resumed run draws the same ones
        total, terms = update(crops.batch(at.epoch * steps_per_epoch + at.index), style_targets)
        return {"loss": total, **terms}

    def end_epoch(epoch, logs):
        loop.save_sample(data.to_image(net.predict_on_batch(sample)[0]), f"epoch_{epoch + 1:03d}.jpg")

    last = loop.run([Phase("train", step, steps_per_epoch, config.epochs, samples_per_step=config.batch_size,
                           end_epoch=end_epoch)])
    runs.save_model(net, run_dir / "model.keras", PROJECT)

    speed_size = TINY["speed_size"] if config.tiny else 512
    speed = seconds_per_image(net, speed_size)
    print(f"stylizing one {speed_size}x{speed_size} image takes {speed:.3f} s (after warm-up)")
    cli.finish_run(
        run_dir,
        config,
        started,
        loop,
        {name: last[name] for name in TERMS},
        steps=config.epochs * steps_per_epoch,
        resumed=resume_dir is not None,
        parameters=net.count_params(),
        stylize_seconds=round(speed, 4),
        stylize_size=speed_size,
    )
    loop.discard_checkpoint()  # the run is finished: model.keras is what it made
    print(f"run saved in {run_dir}")
    return run_dir


def training_sizes(config):
    """(crop size, steps per epoch): the config's, or with --tiny the ones its small generated photos allow."""
    if config.tiny:
        return TINY["crop_size"], min(config.steps_per_epoch, TINY["steps_per_epoch"])
    return config.crop_size, config.steps_per_epoch


def load(config):
    """(photos, painting, description): the content photos (Pillow images) and the painting (float RGB);
    --tiny makes both up."""
    from projects.style_transfer import data

    if config.tiny:
        photos = data.tiny_photos(seed=config.seed)
        painting = data.load(config.style, config.style_size) if config.style else data.tiny_painting()
        return photos, painting, f"{len(photos)} generated photos (tiny)"
    if not config.style:
        raise UserError("give --style PAINTING (and --content-dir PHOTOS), or --tiny to try the pipeline")
    folders = config.content_folders()
    if not folders:
        raise UserError("give --content-dir with a folder of photos to train on (repeat it for several folders)")
    painting = data.load(config.style, config.style_size, "--style-size")
    photos = data.content_photos(folders, config.photo_size)
    return photos, painting, f"{len(photos)} photos from {', '.join(folders)}"


def seconds_per_image(net, size=512, repeats=5):
    """Median seconds to stylize one size x size image, after two warm-up passes (tracing, compiling)."""
    import keras

    x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    for _ in range(2):
        net.predict_on_batch(x)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        keras.ops.convert_to_numpy(net.predict_on_batch(x))
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def evaluate(args):
    """Perceptual losses of a trained network's outputs on photos, beside the photos' own (the starting point)."""
    import keras

    from common import backend
    from projects.style_transfer import data, losses
    from projects.style_transfer.model import load_network

    if args.max_size is not None and args.max_size < MIN_SIDE:
        raise UserError(f"--max-size must be at least {MIN_SIDE}, got {args.max_size}")
    path = runs.model_path(PROJECT, args.model)
    net = load_network(path)  # first: another project's model is refused before its settings are read
    saved = runs.run_config(path)
    overrides = {k: v for k, v in (("style", args.style), ("backbone_weights", args.backbone_weights)) if v}
    if not saved and "style" not in overrides:
        raise UserError(f"{path} has no run config beside it; give --style (and --backbone, --backbone-weights)")
    known = {k: v for k, v in saved.items() if k in Config.__dataclass_fields__ and k not in ("out", "tiny", "data_dir")}
    config = Config(**{**known, "content_dir": None, **overrides, **({"backbone": args.backbone} if args.backbone else {})})
    backend.set_random_seed(config.seed)  # as in training: a random VGG is the one the network was trained with
    loss = losses.perceptual_loss(config)
    painting = data.load(config.style, config.style_size, "--style-size") if config.style else data.tiny_painting()
    style_targets = loss.style_targets([painting])
    files = images.expand_inputs(args.input)
    rows, failures = [], 0
    for file in files:
        try:
            photo = data.load(file, args.max_size or 512)[None]
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        content_targets = loss.content_targets(photo)
        stylized = keras.ops.clip(keras.ops.cast(net.predict_on_batch(photo), "float32"), 0.0, 255.0)
        row = {"file": str(file)}
        for label, image in (("photo", photo), ("stylized", stylized)):
            total, terms = loss(keras.ops.convert_to_tensor(image, "float32"), content_targets, style_targets)
            row.update({f"{label}_{name}": float(value) for name, value in {"loss": total, **terms}.items()})
        rows.append(row)
    if not rows:
        raise UserError("none of the inputs could be read")
    mean = {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key != "file"}
    print(f"{len(rows)} photos, style {config.style}; mean over photos (weights: {loss.weights}):")
    print(f"{'':10s}" + "".join(f"{name:>12s}" for name in TERMS))
    for label in ("photo", "stylized"):
        print(f"{label:10s}" + "".join(f"{mean[f'{label}_{name}']:12.4g}" for name in TERMS))
    result = runs.write_json(path.parent / "evaluation.json", {"model": str(path), "style": config.style, "mean": mean, "photos": rows})
    print(f"saved {result}")
    return 1 if failures else 0
