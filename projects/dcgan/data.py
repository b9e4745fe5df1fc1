"""The images a GAN learns from: MNIST or Fashion-MNIST, a folder of your own, or a tiny generated set.

Everything becomes one uint8 array (N, size, size, channels) held in memory: the
registry's 28 px digits as they are (or resized for another --image-size), a folder's
images opened in whatever mode they come in (grey, RGBA, palette, CMYK, 16-bit),
centre-cropped to a square and resized. A file that cannot be read (corrupt, not an
image, too many pixels to decode safely) is skipped with one warning line naming it.
Training batches are scaled to [-1, 1], the range of the tanh output.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from common import datasets, images
from common.errors import UserError
from projects.dcgan import DATASETS

TINY_COUNT = 256


def load(dataset, data_dir, size, mode, seed):
    """The training images: (uint8 (N, size, size, channels), int labels (N,) or None for a folder, a one-line description).

    `dataset` is "mnist", "fashion-mnist", "folder" (the images in `data_dir`) or "tiny"; `mode` is "grey" or "rgb".
    """
    pillow_mode = "L" if mode == "grey" else "RGB"
    if dataset == "tiny":
        x, labels = tiny_shapes(TINY_COUNT, size, pillow_mode, seed)
        return x, labels, f"tiny generated set: {len(x)} {size}x{size} {mode} shapes"
    if dataset == "folder":
        x, skipped = read_folder(data_dir, size, pillow_mode)
        return x, None, f"{data_dir}: {len(x)} images as {size}x{size} {mode}" + (f" ({skipped} skipped)" if skipped else "")
    (x_train, y_train), _ = datasets.load_idx_dataset(dataset, data_dir)
    x = resize_all(x_train, size, pillow_mode)
    return x, y_train.astype(np.int32), f"{dataset}: {len(x)} training images as {size}x{size} {mode}"


def load_real(dataset, data_dir=None):
    """A registered dataset's ((train images, labels), (test images, labels)), images uint8 (N, 28, 28, 1)."""
    return tuple((x[..., None], y) for x, y in datasets.load_idx_dataset(dataset, data_dir))


def resize_all(x, size, mode):
    """Registry digits (N, 28, 28) as (N, size, size, channels)."""
    if x.shape[1:3] != (size, size):
        x = np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.LANCZOS)) for image in x])
    if mode == "RGB":
        return np.repeat(x[..., None], 3, axis=-1)
    return x[..., None]


def read_folder(folder, size, mode):
    """Every readable image of a folder, cropped and resized to size x size; (array, files skipped)."""
    folder = Path(folder)
    try:
        files = images.list_images(folder)
    except UserError as error:
        if folder.is_dir() and any((folder / name).is_dir() for name in DATASETS):
            raise UserError(f"{error}; to train on the registry's data in it, pass --dataset mnist or fashion-mnist") from None
        raise
    print(f"reading {len(files)} images from {folder} ...", flush=True)
    opened = images.open_all(files, mode)
    x = np.stack([np.asarray(images.fit(image, (size, size))) for _, image in opened])
    return (x[..., None] if x.ndim == 3 else x), len(files) - len(opened)


def tiny_shapes(count, size, mode, seed):
    """Filled squares (label 0) and discs (label 1) of random size, place and colour on a dark ground: learnable in seconds."""
    rng = np.random.default_rng(seed)
    channels = 1 if mode == "L" else 3
    x = np.zeros((count, size, size, channels), np.uint8)
    for index in range(count):
        canvas = Image.new(mode, (size, size), 0)
        radius = rng.uniform(0.2, 0.35) * size
        cx, cy = rng.uniform(radius, size - radius, 2)
        colour = tuple(int(c) for c in rng.integers(128, 256, channels))
        box = [cx - radius, cy - radius, cx + radius, cy + radius]
        draw = ImageDraw.Draw(canvas)
        (draw.ellipse if index % 2 else draw.rectangle)(box, fill=colour[0] if channels == 1 else colour)
        x[index] = np.asarray(canvas).reshape(size, size, channels)
    return x, np.arange(count, dtype=np.int32) % 2


def to_unit_range(batch):
    """uint8 images to float32 in [-1, 1]."""
    return batch.astype(np.float32) / 127.5 - 1.0


def to_uint8(generated):
    """Generated images in [-1, 1] to uint8."""
    return np.clip(np.rint((np.asarray(generated, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
