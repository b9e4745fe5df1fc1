"""`bench`: what the README reports, measured on this machine.

1. The generator: its weights and the size of its `.keras` file, and the wall time of
   converting one 512x512 photo once compiled (median of five).
2. A short real run on the sample photos with the Hayao pictures as the style set, sized
   to fit about 20 minutes of a 2-core CPU: 128-px crops, batch 4, 8 initialisation
   epochs, the 200 discriminator-only warm-up steps, then 8 adversarial epochs of 20
   steps, at AnimeGANv2's generator learning rate. At AnimeGANv2's discriminator
   learning rate (4e-5) the discriminator of so short a run is still scoring everything
   alike when the generator follows it, and the generator drifts into a colour cast; the
   bench gives it five times that rate (on top of the default warm-up). (Five times both
   rates collapsed the generator into a flat colour within 100 steps.) The rest is the
   default recipe, whose three departures from AnimeGANv2 (the colour loss in the
   initialisation, the warm-up, the saved weight average) were found by this bench: see
   the README. Then the validation photos are converted by the generator as it was
   when the initialisation ended and as it is at the end, and compared with the photos
   and with the published AnimeGANv2 Hayao rendering of the same photos: how far in
   pixels, how far their colour distributions are (per YUV channel, the mean distance
   between sorted pixel values: blind to where the colours are, so blur and shifted
   lines do not count), how colourful (mean YUV chroma), how many edge pixels (Canny).
3. The table and the before/after picture go into the README.

Only the VGG16 trained for edge detection (HED) is available here, not ImageNet weights;
the run uses it (`--backbone vgg16 --backbone-weights PATH`).
"""

import time

import numpy as np
import pandas as pd
from PIL import Image

from common import backend, datasets, images, runs
from common.report import markdown_table, update_readme
from projects.animegan import FOLDER, STRIDE, convert, data, model
from projects.animegan import train as training

WEIGHTS = "weights/vgg16_hed_bsds500.weights.h5"  # under the data folder
# Sized for about 20 minutes of a 2-core CPU; the discriminator at five times AnimeGANv2's rate (see above).
RECIPE = dict(crop_size=128, batch_size=4, steps_per_epoch=20, init_epochs=8, epochs=16, init_lr=2e-4, lr=2e-5, d_lr=2e-4,
              val_count=4, preset="hayao", backbone="vgg16")


def paired_pictures(root, files, side):
    """The validation photos and their Hayao renderings, scaled to `side` on the shorter side, same sizes."""
    photos, hayao = [], []
    for path in files:
        photo = data.scaled(images.open_image(path), side)
        photo = photo.crop((0, 0, photo.width // STRIDE * STRIDE, photo.height // STRIDE * STRIDE))
        photos.append(np.asarray(photo))
        rendered = images.open_image(root / "hayao" / path.name).resize(photo.size, Image.LANCZOS)
        hayao.append(np.asarray(rendered))
    return photos, hayao


def yuv(pixels):
    return np.asarray(model.rgb_to_yuv(data.to_unit(pixels)[None]))[0]


def chroma(pixels):
    colour = yuv(pixels)
    return float(np.mean(np.hypot(colour[..., 1], colour[..., 2])))


def colour_distance(pixels, reference):
    """How far apart two pictures' colours are, wherever they sit: per YUV channel the mean distance
    between their sorted pixel values (the 1-D Wasserstein distance), averaged, in 0-255 steps."""
    a, b = yuv(pixels).reshape(-1, 3), yuv(reference).reshape(-1, 3)
    return float(np.mean(np.abs(np.sort(a, axis=0) - np.sort(b, axis=0))) * 255)


def edge_share(pixels):
    return float(data.canny(np.asarray(Image.fromarray(pixels).convert("L"))).mean())


def pixel_distance(pictures, references):
    """Mean absolute difference in 0-255 pixel values, averaged over the pictures."""
    return float(np.mean([np.abs(p.astype(float) - r).mean() for p, r in zip(pictures, references)]))


def describe(pictures, photos, references):
    """Mean over pictures: pixel distance to the photo and to the Hayao rendering, chroma, share of edge pixels."""
    return {
        "l1_to_photo": pixel_distance(pictures, photos),
        "l1_to_hayao": pixel_distance(pictures, references),
        "colour_to_hayao": float(np.mean([colour_distance(p, r) for p, r in zip(pictures, references)])),
        "chroma": float(np.mean([chroma(p) for p in pictures])),
        "edges": float(np.mean([edge_share(p) for p in pictures])),
    }


def comparison_grid(columns, path):
    """Rows of photo | after initialisation | after the adversarial phase | Hayao rendering, as a JPEG."""
    tiles = [tile for row in zip(*columns) for tile in row]
    height, width = min(tile.shape[0] for tile in tiles), min(tile.shape[1] for tile in tiles)
    canvas = images.grid(np.stack([tile[:height, :width] for tile in tiles]), columns=len(columns), scale=1)
    with runs.atomic_path(path) as temporary:
        canvas.save(temporary, quality=90)
    return path


def bench(args):
    started = time.time()
    root = datasets.data_dir(args.data_dir)
    samples = root / training.SAMPLES_DIR
    config = training.Config(photos=str(samples / "photo"), style=str(samples / "hayao"),
                             backbone_weights=str(root / WEIGHTS), **RECIPE)
    run_dir = training.train(config)
    summary = runs.read_json(run_dir / "summary.json")

    final = convert.Converter(run_dir / "model.keras", mixed_precision=False)
    seconds_512 = convert.seconds_per_photo(final, 512)
    fast = convert.Converter(run_dir / "model.keras")  # what `convert` uses here by default
    fast_seconds_512 = convert.seconds_per_photo(fast, 512) if fast.precision != "float32" else seconds_512
    initial = convert.Converter(run_dir / "init.keras")
    files = images.list_images(samples / "photo")[: config.val_count]
    side = training.training_side(config)
    photos, hayao = paired_pictures(samples, files, side)
    after_init = [initial(p) for p in photos]
    after_all = [final(p) for p in photos]
    fast_difference = float(np.mean([np.abs(fast(p).astype(int) - exact.astype(int)).mean()
                                     for p, exact in zip(photos, after_all)]))
    rows = {name: describe(pictures, photos, hayao)
            for name, pictures in [("photo", photos), ("after init", after_init), ("after adversarial", after_all),
                                   ("Hayao rendering", hayao)]}
    (FOLDER / "assets").mkdir(exist_ok=True)
    comparison_grid([photos, after_init, after_all, hayao], FOLDER / "assets" / "before_after.jpg")

    metrics = summary["metrics"]
    size_mb = (run_dir / "model.keras").stat().st_size / 1e6
    # Seconds per step, leaving out each phase's first epoch (it includes compiling the steps).
    seconds, steps = summary["epoch_seconds"], config.steps_per_epoch
    init_seconds = np.mean(seconds[1 : config.init_epochs]) / steps
    adversarial_seconds = np.mean(seconds[config.init_epochs + 1 :]) / steps
    warmup = next(row for row in pd.read_csv(run_dir / "metrics.csv").to_dict("records") if row["phase"] == "d_warmup")
    warmup_seconds = warmup["seconds"] / config.d_warmup_steps
    wall = time.time() - started
    generator = pd.DataFrame([{
        "generator": f"{summary['generator_parameters']:,} weights",
        "`.keras` file": f"{size_mb:.1f} MB",
        "convert 512x512 (after warm-up), default precision": f"{fast_seconds_512:.2f} s ({fast.precision})",
        "in float32": f"{seconds_512:.2f} s",
        "mean difference from float32": f"{fast_difference:.2f} of 255 levels",
        "frames/s on a GPU": "not measured (no GPU here)",
        "backend": summary["backend"],
        "hardware": summary["device"],
    }])
    run = pd.DataFrame([
        ("data", f"{len(images.list_images(samples / 'photo'))} photos, {len(images.list_images(samples / 'hayao'))} "
                 f"Hayao pictures (scaled to {side} px on the shorter side)"),
        ("recipe", f"{config.crop_size}-px crops, batch {config.batch_size}, {config.init_epochs} init + "
                   f"{config.d_warmup_steps} discriminator warm-up steps + {config.epochs - config.init_epochs} adversarial "
                   f"epochs of {steps} steps; lr init {config.init_lr:g}, G {config.lr:g}, D {config.d_lr:g}; generator "
                   f"weights averaged (--ema {config.ema:g}); Hayao weights, and colour {config.init_color_weight:g} in the "
                   "initialisation; VGG16 (HED weights)"),
        ("content loss, first → last init epoch",
         f"{metrics['init_content_first_epoch']:.3f} → {metrics['init_content_last_epoch']:.3f}"),
        ("seconds per step",
         f"init {init_seconds:.2f}, D warm-up {warmup_seconds:.2f}, adversarial (D + G) {adversarial_seconds:.2f}"),
        ("training wall time", f"{summary['wall_seconds'] / 60:.1f} min (`{run_dir.name}`)"),
        ("whole bench wall time", f"{wall / 60:.1f} min"),
    ], columns=["short run on the samples", ""])
    comparison = pd.DataFrame([{
        "validation photos (mean of 4)": name,
        "pixel distance to the photo": f"{row['l1_to_photo']:.1f}",
        "pixel distance to the Hayao rendering": f"{row['l1_to_hayao']:.1f}",
        "colour distance to the Hayao rendering": f"{row['colour_to_hayao']:.2f}",
        "chroma (YUV)": f"{row['chroma']:.4f}",
        "edge pixels": f"{row['edges'] * 100:.2f}%",
    } for name, row in rows.items()])
    table = "\n\n".join(markdown_table(frame) for frame in (generator, run, comparison))
    runs.write_json(run_dir / "bench.json", {"seconds_per_512_photo": fast_seconds_512, "precision": fast.precision,
                                             "float32_seconds_per_512_photo": seconds_512,
                                             "mean_difference_from_float32": fast_difference, "model_megabytes": size_mb,
                                             "comparison": rows, "bench_wall_seconds": wall,
                                             "backend": backend.name()})
    update_readme(FOLDER / "README.md", "bench", table)
    print(table)
