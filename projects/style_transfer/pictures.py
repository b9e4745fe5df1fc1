"""Pictures of style transfer at work: the loss curve, the progress GIF, the gallery.

The loss curve is a matplotlib chart (`common.charts`) on a log scale, one line per
weighted term; the progress GIF animates the snapshots an optimisation saved; the
gallery is a montage with one row per painting: photo, painting, optimisation result,
fast-network result.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common import charts, images, runs
from projects.style_transfer import data


def loss_curve(losses, weights, path, title):
    """Weighted loss terms per iteration on a log scale; `losses` are dicts with iteration and each term."""
    iterations = np.array([row["iteration"] for row in losses])
    series = {"total": np.array([row["loss"] for row in losses])}
    for name in ("content", "style", "tv"):
        if weights.get(name):
            series[f"{name} x {weights[name]:g}"] = np.array([row[name] for row in losses]) * weights[name]
    # A log scale has no zero: each line keeps its positive values.
    positive = {label: (iterations[values > 0], values[values > 0]) for label, values in series.items()}
    return charts.curves(positive, path, title=title, xlabel="iteration", ylabel="weighted loss", logy=True)


def progress_gif(snapshots, path, max_size=320, seconds_per_frame=0.4):
    """The saved snapshots as an animated GIF, the last one held longer."""
    frames = [images.shrink_to(data.to_image(array), max_size) for _, array in snapshots]
    durations = [int(seconds_per_frame * 1000)] * (len(frames) - 1) + [2000]
    with runs.atomic_path(path) as temporary:
        frames[0].save(temporary, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path


def gallery(rows, path, tile=256, captions=("photo", "painting", "optimisation", "fast network")):
    """One row per painting, each a list of float RGB arrays (or None), shown side by side at `tile` pixels high."""
    font = ImageFont.load_default(size=14)
    scaled = [[None if a is None else fit_height(data.to_image(a), tile) for a in row] for row in rows]
    widths = [max(image.width for image in column if image is not None) for column in zip(*scaled)]
    pad, caption_h = 6, 22
    canvas = Image.new("RGB", (sum(widths) + pad * (len(widths) + 1), caption_h + len(rows) * (tile + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for column, width in enumerate(widths):
        draw.text((x, 4), captions[column], fill="black", font=font)
        for row, images_in_row in enumerate(scaled):
            image = images_in_row[column]
            if image is not None:
                canvas.paste(image, (x + (width - image.width) // 2, caption_h + row * (tile + pad)))
        x += width + pad
    with runs.atomic_path(path) as temporary:
        canvas.save(temporary, quality=88)
    return path


def fit_height(image, height):
    return image.resize((max(1, round(image.width * height / image.height)), height), Image.LANCZOS)
