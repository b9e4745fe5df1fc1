"""Command line of neural style transfer: `python -m projects.style_transfer train|stylize|evaluate|export|bench`.

`stylize --content --style` repaints a photo by optimisation (slow, exact, any
painting); `train --style --content-dir` fits a fast network to one painting, and
`stylize --model --input` then paints files or folders with it in one pass. `bench`
measures both on the shared real data and writes the table and pictures into the README.
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from common import backend, cli, images, runs
from common.errors import UserError
from common.report import update_readme
from projects.style_transfer import data, optimize, pictures
from projects.style_transfer import train as fast

HERE = Path(__file__).resolve().parent


def add_stylize_flags(parser):
    cli.add_config_flags(parser, optimize.StylizeConfig)
    fast_mode = parser.add_argument_group("with a trained network (instead of --content and --style)")
    fast_mode.add_argument("--model", help="run folder, model.keras or an exported .keras file of a trained network")
    fast_mode.add_argument("--input", nargs="+", help="images or folders of images to stylise")
    fast_mode.add_argument("--batch-size", type=int, default=4, help="images of the same size stylised together (default: 4)")


def stylize(args):
    if args.model or args.input:
        given = [f"--{name}" for name in ("content", "style") if getattr(args, name, None)]
        if given:
            raise UserError(f"{' and '.join(given)} belong to the optimisation; with --model, give --input only")
        if not args.input:
            raise UserError("give --input with the images or folders to stylise")
        if args.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
        return fast.stylize(args)
    optimize.run(cli.config_from_args(optimize.StylizeConfig, args))
    return 0


def add_model_flags(parser):
    parser.add_argument("--model", help="run folder or .keras file of a trained network (default: the newest)")


def add_evaluate_flags(parser):
    add_model_flags(parser)
    parser.add_argument("--input", nargs="+", required=True, help="photos or folders of photos to score")
    parser.add_argument("--max-size", type=int, help="longer side the photos are scaled down to (default: 512)")
    parser.add_argument("--style", help="the painting to score against (default: the one the network was trained on)")
    parser.add_argument("--backbone", choices=("vgg16", "vgg19"), help="VGG to score with (default: the training run's)")
    parser.add_argument("--backbone-weights", help="its weights (default: the training run's)")


def add_export_flags(parser):
    add_model_flags(parser)
    parser.add_argument("--out", help="the .keras file to write (default: stylizer.keras beside the model)")


# --- bench ------------------------------------------------------------------------------

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


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="the folder with style/, animegan-samples/ and weights/ (default: $DATA_DIR)")


def bench(args):
    root = Path(args.data_dir or os.environ.get("DATA_DIR") or "data")
    needed = [BENCH["weights"], *BENCH["photo_folders"], *(path for pair in BENCH["pairs"] for path in pair)]
    missing = [name for name in needed if not (root / name).exists()]
    if missing:
        raise UserError(f"the bench needs {', '.join(missing)} under {root}; set DATA_DIR or --data-dir")
    started = time.time()
    backbone = {"backbone": "vgg16", "backbone_weights": str(root / BENCH["weights"])}
    results, gallery = [], []
    for painting, photo in BENCH["pairs"]:
        painting, photo = root / painting, root / photo
        optimised = optimize.run(optimize.StylizeConfig(
            content=str(photo), style=[str(painting)], iterations=BENCH["iterations"], max_size=BENCH["size"], **backbone
        ))
        trained = fast.train(argparse.Namespace(
            style=str(painting), content_dir=[str(root / folder) for folder in BENCH["photo_folders"]], **backbone
        ))
        content = data.load(photo, BENCH["size"])
        painted = keras.ops.convert_to_numpy(runs.load_model(trained / "model.keras").predict_on_batch(content[None]))[0]
        results.append((painting, photo, optimised, trained))
        gallery.append([content, data.load(painting, BENCH["size"]), data.load(optimised / "stylized.png", BENCH["size"]),
                        painted, data.keep_colours(painted, content)])
    square = square_speed(root / BENCH["pairs"][0][1], root / BENCH["pairs"][0][0], backbone)
    assets = HERE / "assets"
    pictures.gallery(gallery, assets / "gallery.jpg", captions=GALLERY_CAPTIONS)
    first = results[0][2]
    for name in ("loss_curve.png", "progress.gif"):
        shutil.copy(first / name, assets / name)
    table = bench_table(results, square, time.time() - started)
    update_readme(HERE / "README.md", "bench", table)
    print(table)


def square_speed(photo, painting, backbone, iterations=6):
    """Seconds per optimisation iteration on a 512x512 image (the first, compiling, one left out)."""
    square = np.asarray(images.fit(data.to_image(data.load(photo, 2 * BENCH["size"])), (BENCH["size"],) * 2), np.float32)
    loss = optimize.perceptual_loss(optimize.StylizeConfig(**backbone))
    with tempfile.TemporaryDirectory() as out:  # only the speed is kept
        _, history = optimize.optimise(square, [data.load(painting, BENCH["size"])], [1.0], loss, iterations, 4.0, out)
    return history.seconds_per_iteration


def bench_table(results, square, seconds):
    lines = [
        "| painting | photo | optimisation: iterations, size | s / iteration | optimisation wall time "
        "| fast net: training | training wall time | s per 512x512 image (after warm-up) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for painting, photo, optimised, trained in results:
        opt = runs.read_json(optimised / "summary.json")
        net = runs.read_json(trained / "summary.json")
        config = runs.read_json(trained / "config.json")["config"]
        lines.append(
            f"| {Path(painting).stem} | {Path(photo).stem} | {opt['iterations']}, {opt['size'][0]}x{opt['size'][1]} "
            f"| {opt['seconds_per_iteration']:.2f} | {opt['wall_seconds'] / 60:.1f} min "
            f"| {net['steps']} steps x {config['batch_size']} crops of {config['crop_size']} px "
            f"| {net['wall_seconds'] / 60:.1f} min | {net['stylise_seconds']:.3f} |"
        )
    lines.append("")
    lines.append(f"Optimisation at 512x512: {square:.2f} s per iteration. Whole bench: {seconds / 60:.1f} min on "
                 f"{backend.name()}, {backend.describe_device()}. Images per second on a GPU: not measured (no GPU here).")
    return "\n".join(lines)


COMMANDS = {
    "train": ("train a fast network on one painting (defaults: the README's recipe)", cli.train_flags(fast.Config), fast.train),
    "stylize": ("repaint a photo: by optimisation (--content, --style) or with a trained network (--model, --input)",
                add_stylize_flags, stylize),
    "evaluate": ("content, style and smoothness losses of a trained network's outputs on photos", add_evaluate_flags, fast.evaluate),
    "export": ("write a self-contained uint8-in, uint8-out model and check that it reloads the same", add_export_flags, fast.export),
    "bench": ("measure both methods on the shared paintings and photos, write the README table and pictures", add_bench_flags, bench),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.style_transfer", __doc__.splitlines()[0], COMMANDS)
