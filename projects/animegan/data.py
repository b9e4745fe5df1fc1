"""Images for AnimeGAN: folders of photos and anime pictures, their edge-smoothed copies, crops, videos.

Edge smoothing is how AnimeGAN (after CartoonGAN) teaches the discriminator that soft
edges are not anime: find the edges of an anime picture (Canny: Sobel gradients, thin
to one pixel along the gradient, keep strong edges and the weak ones touching them),
widen them by a 5x5 dilation, and replace just those pixels by a 5x5 Gaussian blur.
The discriminator sees these copies as fakes, so the generator must draw crisp lines.

Training images are held in memory, scaled so their shorter side is `scale` times the
crop size (never below it), and every step draws random crops. Videos are read and
written frame by frame with imageio's ffmpeg plugin (its own ffmpeg binary ships in
the imageio-ffmpeg wheel); sound is not kept.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from common import images
from common.errors import UserError, warn

CANNY_LOW, CANNY_HIGH = 100, 200  # thresholds on |dI/dx| + |dI/dy| of 0-255 grey (AnimeGAN's cv2.Canny(100, 200))
SMOOTH_KERNEL = 5
# The taps OpenCV uses for its default Gaussian of the small odd sizes, rather than its sigma formula.
SMALL_GAUSSIANS = {1: [1.0], 3: [0.25, 0.5, 0.25], 5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
                   7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125]}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}


# --- edge smoothing -----------------------------------------------------------------------


def canny(grey, low=CANNY_LOW, high=CANNY_HIGH):
    """Canny edges of a 2-D grey array in [0, 255], as booleans (3x3 Sobel, no pre-blur, like OpenCV)."""
    grey = np.asarray(grey, np.float32)
    gx = ndimage.sobel(grey, axis=1, mode="nearest")
    gy = ndimage.sobel(grey, axis=0, mode="nearest")
    magnitude = np.abs(gx) + np.abs(gy)

    # Non-maximum suppression: keep a pixel only if it is the peak across the edge, comparing it with
    # its two neighbours along the gradient, the direction rounded to 0, 45, 90 or 135 degrees.
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    direction = np.digitize(angle, [22.5, 67.5, 112.5, 157.5]) % 4  # 0: across x, 1: 45°, 2: across y, 3: 135°
    padded = np.pad(magnitude, 1)
    h, w = magnitude.shape
    shifted = lambda dy, dx: padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
    neighbours = {0: ((0, 1), (0, -1)), 1: ((1, 1), (-1, -1)), 2: ((1, 0), (-1, 0)), 3: ((1, -1), (-1, 1))}
    peak = np.zeros_like(magnitude, bool)
    for index, (first, second) in neighbours.items():
        is_peak = (magnitude >= shifted(*first)) & (magnitude > shifted(*second))
        peak |= (direction == index) & is_peak

    # Hysteresis: weak edges survive only when connected (8 ways) to a strong one.
    weak = peak & (magnitude > low)
    strong = peak & (magnitude > high)
    labels, count = ndimage.label(weak, structure=np.ones((3, 3)))
    keep = np.zeros(count + 1, bool)
    keep[np.unique(labels[strong])] = True
    keep[0] = False
    return keep[labels]


def gaussian_kernel(size=SMOOTH_KERNEL):
    """OpenCV's default Gaussian for a kernel size (`cv2.getGaussianKernel(size, 0)`, which AnimeGAN's edge
    smoothing takes), 2-D, summing to 1: OpenCV's fixed taps up to size 7, beyond it sigma = 0.3 * ((size - 1) / 2 - 1) + 0.8."""
    if size in SMALL_GAUSSIANS:
        line = np.array(SMALL_GAUSSIANS[size])
    else:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
        offsets = np.arange(size) - (size - 1) / 2
        line = np.exp(-(offsets**2) / (2 * sigma**2))
    line = line / line.sum()
    return np.outer(line, line)


def edge_smooth(rgb, kernel_size=SMOOTH_KERNEL):
    """An anime picture (H, W, 3) uint8 with the pixels on and near its edges Gaussian-blurred."""
    rgb = np.asarray(rgb, np.uint8)
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    near_edges = ndimage.binary_dilation(canny(grey), structure=np.ones((kernel_size, kernel_size), bool))
    kernel = gaussian_kernel(kernel_size)
    blurred = np.stack(
        [ndimage.convolve(rgb[..., c].astype(np.float32), kernel, mode="mirror") for c in range(3)], axis=-1
    )
    smoothed = rgb.copy()
    smoothed[near_edges] = np.clip(np.rint(blurred[near_edges]), 0, 255).astype(np.uint8)
    return smoothed


def prepare(args):
    """The `prepare` command: the edge-smoothed copies of --style's pictures, into --out."""
    return smooth_folder(args.style, args.out)


def smooth_folder(style_dir, out_dir=None):
    """Write the edge-smoothed copy of every image of `style_dir` into `out_dir` (default: `<style>_smooth`).

    Copies already there are kept, never overwritten. A file that cannot be read is one
    warning line and skipped; when no copy could be made (and none was there), one error,
    and a folder this call created is removed again. Returns the output folder.
    """
    import keras

    files = images.list_images(style_dir)
    out_dir = Path(out_dir) if out_dir else default_smooth_dir(style_dir)
    if out_dir.resolve() == Path(style_dir).resolve():
        raise UserError(f"--out {out_dir} is the style folder itself; choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file; name a folder for the edge-smoothed copies")
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {out_dir} ({error.strerror}); choose another --out") from None
    written, kept, skipped = 0, 0, []
    progress = keras.utils.Progbar(len(files), unit_name="image")
    for path in files:
        target = out_dir / f"{path.stem}.png"
        if target.exists():
            kept += 1
        else:
            try:
                image = images.open_image(path)
            except UserError as error:
                warn(f"{error}; skipped")
                skipped.append(str(error))
            else:
                images.save_image(Image.fromarray(edge_smooth(np.asarray(image))), target)
                written += 1
        progress.add(1)
    if not written and not kept:
        if created:
            out_dir.rmdir()
        raise UserError(f"none of the {len(files)} files in {style_dir} is a readable image ({skipped[0]}); nothing prepared")
    print(f"{out_dir}: {written} edge-smoothed images written, {kept} already there"
          + (f", {len(skipped)} unreadable skipped" if skipped else ""))
    return out_dir


def default_smooth_dir(style_dir):
    style_dir = Path(style_dir)
    return style_dir.parent / f"{style_dir.name}_smooth"


# --- training images ----------------------------------------------------------------------


@dataclass
class Pictures:
    """What training draws its crops from, and the validation photos every epoch shows."""

    photos: list  # uint8 (H, W, 3) arrays, scaled
    style: list  # uint8 (H, W, 6): an anime picture and its edge-smoothed copy
    validation: np.ndarray  # float32 in [-1, 1], (count, side, side, 3)
    description: str
    resolved: dict  # what config.json records of them: folders, counts, the training side

    def photo_crops(self, count, size, rng):
        return random_crops(self.photos, count, size, rng)

    def anime_crops(self, count, size, rng):
        """Random anime crops and the same crops of their edge-smoothed copies."""
        pairs = random_crops(self.style, count, size, rng)
        return pairs[..., :3], pairs[..., 3:]


def scaled(image, short_side):
    """A Pillow image resized so its shorter side is `short_side` pixels."""
    factor = short_side / min(image.size)
    size = (max(short_side, round(image.width * factor)), max(short_side, round(image.height * factor)))
    return image.resize(size, Image.LANCZOS)


def read_folder(folder, short_side, flag):
    """Every readable image of a folder as uint8 arrays scaled to `short_side`; unreadable ones skipped with a warning."""
    try:
        files = images.list_images(folder)
    except UserError as error:
        raise UserError(f"{flag}: {error}") from None
    return [np.asarray(scaled(image, short_side)) for _, image in images.open_all(files)], files


def read_style(style_dir, smooth_dir, short_side):
    """Anime pictures and their edge-smoothed copies, stacked as (H, W, 6) uint8 so a crop takes both.

    Copies come from `smooth_dir` (matched by file name, as `prepare` writes them), or
    are made here in memory when there is no such folder.
    """
    files = images.list_images(style_dir) if Path(style_dir).is_dir() else None
    if files is None:
        raise UserError(f"--style: {style_dir} is not a folder")
    prepared = {p.stem: p for p in images.list_images(smooth_dir)} if smooth_dir and Path(smooth_dir).is_dir() else {}
    pairs, made = [], 0
    for path, image in images.open_all(files):
        anime = np.asarray(scaled(image, short_side))
        if path.stem in prepared:
            smooth = images.open_image(prepared[path.stem])
            if smooth.size != image.size:
                raise UserError(f"{prepared[path.stem]} is {smooth.size[0]}x{smooth.size[1]}, its anime image {path} "
                                f"{image.size[0]}x{image.size[1]}; run prepare again into an empty folder")
            smooth = np.asarray(scaled(smooth, short_side))
        else:
            smooth = edge_smooth(anime)
            made += 1
        pairs.append(np.concatenate([anime, smooth], axis=-1))
    return pairs, made


def check_enough(count, batch_size, flag, folder):
    if count < batch_size:
        raise UserError(
            f"{flag} {folder} holds {count} usable image{'s' * (count != 1)}, fewer than --batch-size {batch_size}; "
            "add images or lower --batch-size"
        )


def random_crops(arrays, count, size, rng):
    """`count` random size x size crops from randomly chosen arrays, as float32 in [-1, 1]."""
    crops = []
    for index in rng.choice(len(arrays), count, replace=len(arrays) < count):
        array = arrays[index]
        top = rng.integers(0, array.shape[0] - size + 1)
        left = rng.integers(0, array.shape[1] - size + 1)
        crops.append(array[top : top + size, left : left + size])
    return to_unit(np.stack(crops))


def to_unit(pixels):
    """uint8 pixels → float32 in [-1, 1], the generator's range."""
    return np.asarray(pixels, np.float32) / 127.5 - 1.0


def to_pixels(values):
    """Generator output in [-1, 1] → uint8 pixels."""
    return np.clip(np.rint((np.asarray(values, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def before_after(validation, outputs, caption):
    """A grid of validation photos (in [-1, 1]), each followed by its conversion."""
    tiles = np.empty((2 * len(validation),) + validation.shape[1:], np.uint8)
    tiles[0::2], tiles[1::2] = to_pixels(validation), to_pixels(outputs)
    captions = ["photo", caption] * len(validation)
    return images.grid(tiles, columns=4, captions=captions, scale=1 if validation.shape[1] >= 128 else 2)


def tiny_images(count, size, seed):
    """A tiny generated set: soft-shaded 'photos' and flat-coloured 'anime' pictures with dark outlines."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    photos, anime = [], []
    for _ in range(count):
        a, b, c = rng.uniform(0.2, 0.8, (3, 3))
        photo = np.stack([a[i] + 0.3 * np.sin(6 * b[i] * xx + 4 * c[i] * yy) for i in range(3)], -1)
        photos.append(photo + rng.normal(0, 0.05, photo.shape))
        picture = np.ones((size, size, 3)) * rng.uniform(0.6, 1.0, 3)
        for _ in range(3):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
            distance = np.hypot(yy - cy, xx - cx)
            picture[distance < r] = rng.uniform(0.0, 1.0, 3)
            picture[np.abs(distance - r) < 0.03] = 0.05
        anime.append(picture)
    as_pixels = lambda batch: [np.clip(np.rint(p * 255), 0, 255).astype(np.uint8) for p in batch]
    return as_pixels(photos), as_pixels(anime)


# --- videos -------------------------------------------------------------------------------


def is_video(path):
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_video(path):
    """(frames iterator of (H, W, 3) uint8, frames per second, frame count or None) of a video file."""
    import imageio.v2 as imageio

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
        meta = reader.get_meta_data()
    except Exception as error:  # imageio/ffmpeg raise several types for a file they cannot decode
        raise UserError(f"{path}: not a video that can be decoded ({_first_line(error)})") from None

    def frames():
        try:
            for frame in reader:
                yield np.asarray(frame)[..., :3]
        except Exception as error:
            raise UserError(f"{path}: decoding failed partway ({_first_line(error)})") from None
        finally:
            reader.close()

    count = meta.get("nframes")  # ffmpeg's estimate from the duration; inf when unknown
    return frames(), float(meta.get("fps") or 25.0), int(count) if count and math.isfinite(count) else None


def video_writer(path, fps):
    """An imageio writer of H.264 video at `fps`; frame sides must be even (yuv420p)."""
    import imageio.v2 as imageio

    return imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", quality=8, macro_block_size=1,
                              output_params=["-pix_fmt", "yuv420p"])


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
