"""Reading, normalising and writing images with Pillow, and labelled image grids.

Users hand us whatever they have: PNG or JPEG, grey, RGB, RGBA, palette, CMYK or
16-bit, rotated by an EXIF tag. Everything goes through `open_image`, which turns
each of those into plain 8-bit "L" or "RGB" or says in one line why it cannot.
"""

import contextlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from common import runs
from common.errors import UserError, warn

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def open_image(path, mode="RGB"):
    """Open an image file as 8-bit `mode` ("L" or "RGB"), upright, transparency on white."""
    path = Path(path)
    with warnings.catch_warnings():  # Pillow's warning below its hard pixel limit: the image opens, and is fine
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with readable_image(path) as image:
            image.load()
    return normalise(ImageOps.exif_transpose(image), mode)


@contextlib.contextmanager
def readable_image(path):
    """`Image.open(path)`, with every way of failing (missing, unreadable, not an image, too
    many pixels to decode safely) turned into one `UserError` line that names the file."""
    try:
        with Image.open(path) as image:
            yield image
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except PermissionError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror})") from None
    except Image.DecompressionBombError:
        raise UserError(
            f"{path}: more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, too many to open safely; shrink it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UserError(f"{path}: not a readable image ({error})") from None


def normalise(image, mode="RGB"):
    """Convert any Pillow image mode to 8-bit "L" or "RGB"."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _high_depth_to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert(mode)


def _high_depth_to_8bit(image):
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
    else:  # integer modes: scale by the type's range, not the image's, to keep contrast honest
        low, high = 0.0, 65535.0 if values.max() > 255 else 255.0
    scaled = (values - low) / max(high - low, 1e-12) * 255.0
    return Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), "L")


def list_images(folder):
    """Image files in a folder (not recursive), sorted; a clear error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def open_all(files, mode="RGB"):
    """Open every file that can be opened, as `mode`; one warning line counts the ones skipped.

    Returns [(path, image)]; a clear error when none of them could be read.
    """
    opened, skipped = [], []
    for path in files:
        try:
            opened.append((Path(path), open_image(path, mode)))
        except UserError as error:
            warn(f"{error}; skipped")
            skipped.append(str(error))
    if not opened:
        raise UserError(f"none of the {len(files)} files is a readable image ({skipped[0]})" if files else "no image files given")
    return opened


def fit(image, size):
    """Centre-crop a Pillow image to the aspect ratio of `size` (width, height), then resize it to `size`."""
    return ImageOps.fit(image, tuple(size), Image.LANCZOS)


def expand_inputs(paths):
    """Files and folders from a command line, as a flat list of files.

    A folder without images is a warning when other inputs remain, an error when none do.
    """
    files = []
    for path in map(Path, paths):
        try:
            files.extend(list_images(path) if path.is_dir() else [path])
        except UserError as error:
            warn(f"{error}; skipped")
    if not files:
        raise UserError(f"no image files in {', '.join(map(str, paths))}")
    return files


def to_uint8(images):
    """Float images in [0, 1] (or already uint8) as uint8."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def save_image(image, path):
    """Write a Pillow image atomically: a crash mid-write never leaves half a file."""
    with runs.atomic_path(path) as temporary:
        image.save(temporary)
    return Path(path)


def grid(images, columns=10, captions=None, marked=None, scale=2, padding=2):
    """Tile N images (N, H, W) or (N, H, W, C) into one picture.

    `captions` puts a line of text under each tile; `marked` (booleans) draws a red
    frame around the tiles to call out, e.g. wrong predictions.
    """
    images = to_uint8(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    count, height, width = images.shape[:3]
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    tile_w, tile_h = width * scale, height * scale
    caption_h = 12 if captions is not None else 0
    cell_w, cell_h = tile_w + 2 * padding, tile_h + 2 * padding + caption_h
    canvas = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for index, array in enumerate(images):
        x = (index % columns) * cell_w + padding
        y = (index // columns) * cell_h + padding
        tile = Image.fromarray(array).convert("RGB").resize((tile_w, tile_h), Image.NEAREST)
        canvas.paste(tile, (x, y))
        is_marked = marked is not None and marked[index]
        if is_marked:
            draw.rectangle([x - padding, y - padding, x + tile_w + padding - 1, y + tile_h + padding - 1], outline="red", width=padding)
        if captions is not None:
            draw.text((x, y + tile_h + 1), str(captions[index]), fill="red" if is_marked else "black")
    return canvas


def open_within(path, max_size, mode="RGB"):
    """`open_image`, shrunk (aspect ratio kept) so that its longer side is at most `max_size` pixels.

    Returns (image, original (width, height)), so a caller can tell the user when a big
    photo was scaled down. JPEGs are decoded at a reduced scale straight away, so a
    10,000-pixel photo costs little time and memory; Pillow's decompression-bomb
    warning is moot for an image about to be shrunk, and its hard limit becomes a message.
    """
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with readable_image(path) as image:
            stored_size = image.size
            if max_size:
                image.draft(image.mode, (max_size, max_size))
            image.load()
    upright = ImageOps.exif_transpose(image)
    turned = upright.size != image.size
    original = stored_size[::-1] if turned else stored_size
    upright = normalise(upright, mode)
    return shrink_to(upright, max_size), tuple(original)


def shrink_to(image, longest):
    """A Pillow image scaled down (aspect ratio kept) so that its longer side is at most `longest` pixels."""
    if not longest or max(image.size) <= longest:
        return image
    scale = longest / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
