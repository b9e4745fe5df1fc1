"""Pictures of style transfer at work: the loss curve, the progress GIF, the gallery.

Drawn with Pillow alone (no plotting library): a loss curve on a log scale, one line
per term; an animated GIF of the snapshots an optimisation saved; and a gallery with
one row per painting: photo, painting, optimisation result, fast-network result.
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common import images, runs
from projects.style_transfer import data

COLOURS = {"loss": "black", "content": "#1f77b4", "style": "#d62728", "tv": "#2ca02c"}


def loss_curve(losses, weights, path, title, size=(760, 420)):
    """Weighted loss terms per iteration on a log scale; `losses` are dicts with iteration and each term."""
    width, height = size
    left, right, top, bottom = 70, 150, 40, 50
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    font, small = ImageFont.load_default(size=16), ImageFont.load_default(size=12)
    draw.text((left, 10), title, fill="black", font=font)
    iterations = np.array([row["iteration"] for row in losses], np.float64)
    series = {"loss": np.array([row["loss"] for row in losses])}
    for name in ("content", "style", "tv"):
        if weights.get(name):
            series[name] = np.array([row[name] for row in losses]) * weights[name]
    positive = np.concatenate([values[values > 0] for values in series.values()] or [np.ones(1)])
    low, high = math.floor(math.log10(positive.min())), math.ceil(math.log10(positive.max()))
    high = max(high, low + 1)
    plot_w, plot_h = width - left - right, height - top - bottom
    x_of = lambda i: left + (i - iterations.min()) / max(1, np.ptp(iterations)) * plot_w
    y_of = lambda v: top + (high - math.log10(max(v, 10.0**low))) / (high - low) * plot_h
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="grey")
    for power in range(low, high + 1):
        y = y_of(10.0**power)
        draw.line([left, y, left + plot_w, y], fill="#e5e5e5")
        draw.text((8, y - 7), f"1e{power}", fill="black", font=small)
    for tick in np.linspace(iterations.min(), iterations.max(), 6):
        draw.text((x_of(tick) - 10, top + plot_h + 6), f"{tick:.0f}", fill="black", font=small)
    draw.text((left + plot_w // 2 - 30, height - 22), "iteration", fill="black", font=small)
    for row, (name, values) in enumerate(series.items()):
        points = [(x_of(i), y_of(v)) for i, v in zip(iterations, values) if v > 0]  # a log scale has no zero
        if len(points) > 1:
            draw.line(points, fill=COLOURS[name], width=2 if name == "loss" else 1)
        label = "total" if name == "loss" else f"{name} x {weights[name]:g}"
        draw.line([width - right + 12, top + 12 + row * 20, width - right + 32, top + 12 + row * 20], fill=COLOURS[name], width=2)
        draw.text((width - right + 38, top + 5 + row * 20), label, fill="black", font=small)
    return images.save_image(canvas, path)


def progress_gif(snapshots, path, max_size=320, seconds_per_frame=0.4):
    """The saved snapshots as an animated GIF, the last one held longer."""
    frames = [data.shrink(data.to_image(array), max_size) for _, array in snapshots]
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
