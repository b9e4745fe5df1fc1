"""The benchmark behind the README: both methods on the shared paintings and photos, timed.

For each (painting, photo) pair it repaints the photo by optimisation and trains a
fast network on the painting, then writes the README's table, the gallery (photo,
painting, optimisation, fast network, fast network with the photo's colours) and the
first optimisation's loss curve and progress GIF into `assets/`.
"""

import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from common import backend, datasets, images, runs
from common.errors import UserError
from common.report import markdown_table, update_readme
from projects.style_transfer import FOLDER, data, losses, optimize, pictures
from projects.style_transfer.model import load_network
from projects.style_transfer.stylize import StylizeConfig, by_optimisation
from projects.style_transfer.train import Config, train

# What `make bench-style` runs, sized to fit about 25 minutes on 2 CPU cores (see the README).
BENCH = {
    "weights": "weights/vgg16_hed_bsds500.weights.h5",
    "pairs": [  # (painting, photo) per gallery row
        ("style/paintings/starry_night_vangogh_1889.jpg", "style/photos/tubingen_neckarfront.jpg"),
        ("style/paintings/great_wave_hokusai.jpg", "style/photos/golden_gate.jpg"),
    ],
    "photo_folders": ["style/photos", "animegan-samples/photo"],
    "iterations": 100,  # the default is 300; 100 already paints well, and two of them at 512 px fit the time
    "size": 512,
}

GALLERY_CAPTIONS = ("photo", "painting", "optimisation", "fast network", "fast network, colours kept")


def bench(args):
    root = datasets.data_dir(args.data_dir)
    needed = [BENCH["weights"], *BENCH["photo_folders"], *(path for pair in BENCH["pairs"] for path in pair)]
    missing = [name for name in needed if not (root / name).exists()]
    if missing:
        raise UserError(f"the bench needs {', '.join(missing)} under {root}; set DATA_DIR or --data-dir")
    started = time.time()
    backbone = {"backbone": "vgg16", "backbone_weights": str(root / BENCH["weights"])}
    results, gallery = [], []
    for painting, photo in BENCH["pairs"]:
        painting, photo = root / painting, root / photo
        optimised = by_optimisation(StylizeConfig(
            content=str(photo), style=[str(painting)], iterations=BENCH["iterations"], max_size=BENCH["size"], **backbone
        ))
        trained = train(Config(style=str(painting), content_dir=[str(root / folder) for folder in BENCH["photo_folders"]],
                               **backbone))
        content = data.load(photo, BENCH["size"])
        painted = keras.ops.convert_to_numpy(load_network(trained / "model.keras").predict_on_batch(content[None]))[0]
        results.append((painting, photo, optimised, trained))
        gallery.append([content, data.load(painting, BENCH["size"]), data.load(optimised / "stylized.png", BENCH["size"]),
                        painted, data.keep_colours(painted, content)])
    square = square_speed(root / BENCH["pairs"][0][1], root / BENCH["pairs"][0][0], backbone)
    assets = FOLDER / "assets"
    pictures.gallery(gallery, assets / "gallery.jpg", captions=GALLERY_CAPTIONS)
    first = results[0][2]
    for name in ("loss_curve.png", "progress.gif"):
        shutil.copy(first / name, assets / name)
    table = bench_table(results, square, time.time() - started)
    update_readme(FOLDER / "README.md", "bench", table)
    print(table)


def square_speed(photo, painting, backbone, iterations=6):
    """Seconds per optimisation iteration on a 512x512 image (the first, compiling, one left out)."""
    square = np.asarray(images.fit(data.to_image(data.load(photo, 2 * BENCH["size"])), (BENCH["size"],) * 2), np.float32)
    loss = losses.perceptual_loss(StylizeConfig(**backbone))
    with tempfile.TemporaryDirectory() as out:  # only the speed is kept
        _, history = optimize.optimise(square, [data.load(painting, BENCH["size"])], [1.0], loss, iterations, 4.0, out)
    return history.seconds_per_iteration


def bench_table(results, square, seconds):
    """The README's table: one row per pair, then a line on the 512x512 speed and the whole bench."""
    rows = []
    for painting, photo, optimised, trained in results:
        opt = runs.read_json(optimised / "summary.json")
        net = runs.read_json(trained / "summary.json")
        settings = runs.run_config(trained / "model.keras")
        resolved = runs.run_config(trained / "model.keras", "resolved")
        rows.append({
            "painting": Path(painting).stem,
            "photo": Path(photo).stem,
            "optimisation: iterations, size": f"{opt['iterations']}, {opt['size'][0]}x{opt['size'][1]}",
            "s / iteration": f"{opt['seconds_per_iteration']:.2f}",
            "optimisation wall time": f"{opt['wall_seconds'] / 60:.1f} min",
            "fast net: training": f"{net['steps']} steps x {settings['batch_size']} crops of {resolved['crop_size']} px",
            "training wall time": f"{net['wall_seconds'] / 60:.1f} min",
            "s per 512x512 image (after warm-up)": f"{net['stylize_seconds']:.3f}",
        })
    return (markdown_table(pd.DataFrame(rows)) + "\n\n"
            f"Optimisation at 512x512: {square:.2f} s per iteration. Whole bench: {seconds / 60:.1f} min on "
            f"{backend.name()}, {backend.describe_device()}. Images per second on a GPU: not measured (no GPU here).")
