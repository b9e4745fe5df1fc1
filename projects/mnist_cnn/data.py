"""MNIST-style data: the real sets, a tiny generated set, and users' own digit pictures.

Users' pictures are prepared the way MNIST itself was made (LeCun et al.): grey,
light ink on a dark background, the digit's bounding box scaled to fit 20x20
keeping its aspect ratio, then placed in a 28x28 frame so that its centre of mass
sits at the centre. A photo of a digit on paper (dark on light) is inverted first.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common import datasets
from common.errors import UserError

CLASS_NAMES = datasets.CLASS_NAMES


def load(dataset, data_dir=None, tiny=False, seed=0):
    """((x_train, y_train), (x_test, y_test)) as uint8 images (N, 28, 28, 1) and int labels.

    `tiny` generates digits instead (1,024 to train on, 256 to test on) from `seed`.
    """
    if tiny:
        splits = (tiny_digits(1024, seed=seed), tiny_digits(256, seed=seed + 1))
    else:
        splits = datasets.load_idx_dataset(dataset, data_dir)
    return tuple((images[..., None], labels) for images, labels in splits)


def split_validation(x, y, fraction, seed):
    """((x, y) to train on, (x, y) held out for validation: a seeded random `fraction`; None at 0)."""
    if fraction <= 0:
        return (x, y), None
    kept, held = datasets.holdout(len(x), fraction, seed)
    return (x[kept], y[kept]), (x[held], y[held])


def tiny_digits(count, seed=0):
    """Digits 0-9 drawn with Pillow's font at random size, position and slant, MNIST-style.

    Easy enough to learn in seconds, real enough that a model trained on it reads
    rendered digits, which is what the smoke tests need.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = np.zeros((count, 28, 28), np.uint8)
    for index, label in enumerate(labels):
        canvas = Image.new("L", (56, 56), 0)
        font = ImageFont.load_default(size=int(rng.integers(30, 44)))
        ImageDraw.Draw(canvas).text((28, 28), str(label), fill=255, font=font, anchor="mm")
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
        images[index] = mnist_style(canvas)
        images[index] = np.clip(images[index] + rng.normal(0, 8, (28, 28)), 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def mnist_style(image, box=20):
    """A grey Pillow image of one digit as a 28x28 uint8 array prepared like MNIST."""
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = float(np.median(border))
    if background > 127:  # dark ink on light paper: MNIST is the other way round
        pixels, background = 255.0 - pixels, 255.0 - background
    ink = np.clip(pixels - background, 0, None)
    if ink.max() < 16:
        raise UserError("no digit found (the image is blank or has almost no contrast)")
    ink = ink / ink.max() * 255.0
    rows, cols = np.nonzero(ink > 0.25 * 255)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]

    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(ink.astype(np.uint8)).resize(size, Image.LANCZOS), dtype=np.float32)

    frame = np.zeros((28, 28), np.float32)
    total = digit.sum()
    centre_y, centre_x = (np.indices(digit.shape) * digit).reshape(2, -1).sum(1) / total
    top = int(np.clip(round(14 - centre_y), 0, 28 - digit.shape[0]))
    left = int(np.clip(round(14 - centre_x), 0, 28 - digit.shape[1]))
    frame[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.clip(frame, 0, 255).astype(np.uint8)


def fashion_style(image):
    """Fashion-MNIST was made by fitting the item into 28x28, light item on black."""
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if np.median(border) > 127:
        pixels = 255.0 - pixels
    item = Image.fromarray(pixels.astype(np.uint8))
    item.thumbnail((28, 28), Image.LANCZOS)
    frame = Image.new("L", (28, 28), 0)
    frame.paste(item, ((28 - item.width) // 2, (28 - item.height) // 2))
    return np.asarray(frame, np.uint8)


def prepare(image, dataset):
    return mnist_style(image) if dataset == "mnist" else fashion_style(image)
