"""Images in and out of style transfer: photos and paintings at a working size, training crops, kept colours.

Photos arrive in any mode and size (`common.images` makes them upright 8-bit RGB);
here they become float32 arrays of RGB values in [0, 255], the range the VGG and the
transform network read, scaled down (never up) to the size asked for. Training draws
random crops of random size from the content photos, a fresh batch for every step
from a seed and the step number, so a resumed run sees exactly the batches it would
have seen. `--preserve-color` keeps the photo's colours and takes only the luminance
of the stylized image (Gatys et al., "Preserving color in neural artistic style transfer").
"""

import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from common import images
from common.errors import UserError, warn
from projects.style_transfer import MIN_SIDE


def note(message):
    """One `note: ...` line on stderr: what was done to an input, which is not a problem."""
    print(f"note: {message}", file=sys.stderr)


def load(path, max_size, flag="--max-size"):
    """An image file as float32 RGB (height, width, 3), its longer side at most `max_size`; a note when shrunk."""
    image, (width, height) = images.open_within(path, max_size)
    if min(image.size) < MIN_SIDE:
        raise UserError(f"{path}: {image.width}x{image.height} pixels is too small; images need at least {MIN_SIDE} on each side")
    if (width, height) != image.size:
        note(f"{path} is {width}x{height} pixels; working at {image.width}x{image.height} ({flag} {max_size})")
    return np.asarray(image, np.float32)


def to_image(array):
    """Float RGB values in [0, 255] (or uint8) as a Pillow image."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return Image.fromarray(array, "RGB")


# --- colour -----------------------------------------------------------------------------


def luminance(array):
    """The luma (Y of YCbCr) of RGB values, as a grey RGB float image."""
    y = np.asarray(array, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(y[..., None], 3, axis=-1)


def match_luminance(painting, photo):
    """The painting's luminance shifted and scaled to the photo's mean and spread, so only texture transfers."""
    source, target = luminance(painting), luminance(photo)
    matched = (source - source.mean()) / (source.std() + 1e-6) * target.std() + target.mean()
    return np.clip(matched, 0, 255)


def keep_colours(stylized, photo):
    """The stylized image's luminance with the photo's chroma (Cb, Cr)."""
    stylized = to_image(stylized)
    y = stylized.convert("YCbCr").getchannel("Y")
    photo = to_image(photo)
    if photo.size != stylized.size:
        photo = photo.resize(stylized.size, Image.LANCZOS)
    _, cb, cr = photo.convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"), np.float32)


# --- training photos --------------------------------------------------------------------


def content_photos(folders, short_side):
    """Every readable image of the folders, scaled so that its shorter side is at most `short_side`.

    Unreadable files are skipped with one warning line, and too small ones with one each; no usable image is an error.
    """
    files = [path for folder in folders for path in images.list_images(folder)]
    photos = []
    for path, image in images.open_all(files):
        scale = short_side / min(image.size)
        if scale < 1:
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
        if min(image.size) < MIN_SIDE:
            warn(f"{path} is only {image.width}x{image.height} pixels; left out")
            continue
        photos.append(image)
    if not photos:
        raise UserError(f"no photo of at least {MIN_SIDE}x{MIN_SIDE} pixels in {', '.join(map(str, folders))}")
    return photos


class Crops:
    """Batches of random crops: each a random photo, a random square of it (from the crop size to the
    photo's shorter side) scaled to `crop_size`, flipped left-right half the time."""

    def __init__(self, photos, crop_size, batch_size, seed):
        self.photos, self.crop_size, self.batch_size, self.seed = photos, crop_size, batch_size, seed

    def batch(self, step):
        rng = np.random.default_rng([self.seed, step])
        batch = np.empty((self.batch_size, self.crop_size, self.crop_size, 3), np.float32)
        for index in range(self.batch_size):
            photo = self.photos[rng.integers(len(self.photos))]
            shorter = min(photo.size)
            side = int(rng.integers(min(self.crop_size, shorter), shorter + 1))
            left, top = int(rng.integers(photo.width - side + 1)), int(rng.integers(photo.height - side + 1))
            crop = photo.crop((left, top, left + side, top + side)).resize((self.crop_size,) * 2, Image.BILINEAR)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            batch[index] = np.asarray(crop, np.float32)
        return batch


# --- tiny generated data (--tiny) -------------------------------------------------------


def tiny_photos(count=8, size=48, seed=0):
    """Blurred random shapes on colour gradients: stand-ins for photos, made in milliseconds."""
    rng = np.random.default_rng(seed)
    photos = []
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for _ in range(count):
        low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        gradient = low + (high - low) * ramp[:, None, None] * np.ones((1, size, 1), np.float32)
        image = to_image(gradient)
        draw = ImageDraw.Draw(image)
        for _ in range(4):
            x, y = rng.integers(0, size, 2)
            r = int(rng.integers(4, size // 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        photos.append(image.filter(ImageFilter.GaussianBlur(1)))
    return photos


def tiny_painting(size=48):
    """Diagonal stripes in two colours: a style with an unmistakable texture."""
    y, x = np.mgrid[:size, :size]
    stripes = ((x + y) // 4) % 2 == 0
    return np.where(stripes[..., None], [230, 120, 30], [20, 40, 160]).astype(np.float32)
