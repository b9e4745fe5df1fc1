"""Turning photos, folders of photos and videos into anime with a trained generator; exporting it.

The generator is fully convolutional, so a photo of any size goes in whole: it is
padded (by reflection) up to a multiple of the generator's stride of 4 and the
output cropped back, so the result has exactly the photo's size. Very large photos
are first scaled down to `--max-side` (memory and time grow with the pixels), with
a note. Videos are converted frame by frame at their own frame rate; the sound is
dropped. Nothing is overwritten: outputs that exist already stop the command.

`export` writes the generator for inference, in float32: a `.keras` file (any backend)
and, on TensorFlow, a SavedModel for TF Serving and TFLite converters
(`common.backend.export_saved_model`). Both are reloaded and checked against the
trained generator before the command says it is done.
"""

import importlib
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import images, runs
from common.errors import UserError
from projects.animegan import PROJECT, STRIDE, data

MIN_SIDE = 16  # the generator's reflection padding needs a few pixels at a quarter of the size
OUTPUT_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


class Converter:
    """A trained generator that maps uint8 RGB pictures (H, W, 3) of any size to anime pictures of the same size."""

    def __init__(self, model_path, max_side=2048, mixed_precision=None):
        if max_side < MIN_SIDE:
            raise UserError(f"--max-side must be at least {MIN_SIDE}, got {max_side}")
        from common import backend

        importlib.import_module("projects.animegan.model")  # registers the generator's custom layer before loading
        self.model = runs.load_model(model_path)
        shape = self.model.input_shape
        if not (isinstance(shape, tuple) and len(shape) == 4 and shape[-1] == 3 and self.model.output_shape[-1] == 3):
            raise UserError(f"{model_path} is not an AnimeGAN generator (it takes {shape}, not RGB images)")
        if mixed_precision is None:
            mixed_precision = backend.has_fast_half_precision()
        self.precision = backend.half_precision_policy() if mixed_precision else "float32"
        if mixed_precision:
            self.model = computing_in(self.model, self.precision)
        self.max_side = max_side

    def fit_size(self, image):
        """A Pillow image scaled down to `max_side` when larger; (image, note or None)."""
        fitted = images.shrink_to(image, self.max_side)
        if fitted is image:
            return image, None
        return fitted, f"{image.width}x{image.height} scaled down to {fitted.width}x{fitted.height} (--max-side {self.max_side})"

    def __call__(self, pixels):
        pixels = np.asarray(pixels, np.uint8)
        height, width = pixels.shape[:2]
        pad_h = max(MIN_SIDE, -(-height // STRIDE) * STRIDE) - height
        pad_w = max(MIN_SIDE, -(-width // STRIDE) * STRIDE) - width
        padded = np.pad(data.to_unit(pixels), ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        output = self.model.predict_on_batch(padded[None])
        return data.to_pixels(np.asarray(output)[0, :height, :width])


def computing_in(model, policy):
    """A copy of `model` that computes in `policy` (e.g. mixed_bfloat16) with the same weights; its output stays float32."""
    import keras

    last = model.layers[-1]

    def rebuild(layer):
        dtype = "float32" if layer is last else policy
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    copy = keras.models.clone_model(model, clone_function=rebuild)
    copy.set_weights(model.get_weights())
    return copy


def output_path(source, out, kind):
    """Where a conversion goes: --out, or beside the input as <name>_anime (a file, a folder or a video)."""
    source = Path(source)
    if out:
        target = Path(out)
    elif kind == "folder":
        target = source.parent / f"{source.name}_anime"
    else:
        suffix = source.suffix.lower() if kind == "video" or source.suffix.lower() in OUTPUT_SUFFIXES else ".png"
        target = source.with_name(f"{source.stem}_anime{suffix}")
    if kind == "folder":
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UserError(f"{target} already exists and is not an empty folder; choose another --out")
    elif target.exists():
        raise UserError(f"{target} already exists; choose another --out (nothing is overwritten)")
    elif kind == "image" and target.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(f"--out {target}: give an image file name ({', '.join(sorted(OUTPUT_SUFFIXES))})")
    elif kind == "video" and not data.is_video(target):
        raise UserError(f"--out {target}: give a video file name ({', '.join(sorted(data.VIDEO_SUFFIXES))})")
    return target


def save_picture(pixels, path):
    image = Image.fromarray(pixels)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        with runs.atomic_path(path) as temporary:
            image.save(temporary, quality=95)
        return path
    return images.save_image(image, path)


def convert_image(converter, source, target):
    image = images.open_image(source)
    image, note = converter.fit_size(image)
    if note:
        print(f"note: {source}: {note}")
    return save_picture(converter(np.asarray(image)), target)


def convert_folder(converter, folder, target):
    """Every image of a folder; unreadable files are reported one line each and skipped."""
    import keras

    files = images.list_images(folder)
    target.mkdir(parents=True, exist_ok=True)
    progress = keras.utils.Progbar(len(files), unit_name="image", verbose=1 if sys.stdout.isatty() else 0)
    failures = 0
    for path in files:
        name = path.stem + (path.suffix.lower() if path.suffix.lower() in OUTPUT_SUFFIXES else ".png")
        try:
            convert_image(converter, path, target / name)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
        progress.add(1)
    print(f"{len(files) - failures} of {len(files)} images converted into {target}")
    return failures


def convert_video(converter, source, target):
    """Frame by frame at the source's frame rate, written atomically; the sound is not kept."""
    import keras

    frames, fps, count = data.read_video(source)
    written, note = 0, None
    progress = keras.utils.Progbar(count, unit_name="frame", verbose=1 if sys.stdout.isatty() else 0)
    with runs.atomic_path(target) as temporary:
        writer = data.video_writer(temporary, fps)
        try:
            for frame in frames:
                image, note = converter.fit_size(Image.fromarray(frame))
                if image.width % 2 or image.height % 2:  # H.264 in yuv420p needs even sides
                    image = image.crop((0, 0, image.width // 2 * 2, image.height // 2 * 2))
                writer.append_data(converter(np.asarray(image)))
                written += 1
                progress.add(1)
        finally:
            writer.close()
        if not written:
            raise UserError(f"{source}: the video has no frames that could be decoded")
    if note:
        print(f"note: frames {note}")
    print(f"{written} frames at {fps:g} frames/s converted into {target} (without sound)")
    return target


def convert(args):
    source = Path(args.input)
    if not source.exists():
        raise UserError(f"--input {source}: no such file or folder")
    kind = "folder" if source.is_dir() else "video" if data.is_video(source) else "image"
    target = output_path(source, args.out, kind)
    converter = Converter(runs.model_path(PROJECT, args.model), args.max_side, getattr(args, "mixed_precision", None))
    started = time.perf_counter()
    if kind == "folder":
        return 1 if convert_folder(converter, source, target) else 0
    if kind == "video":
        convert_video(converter, source, target)
    else:
        convert_image(converter, source, target)
        print(f"{source} → {target} ({time.perf_counter() - started:.2f} s)")
    return 0


def seconds_per_photo(converter, side=512, repeats=5):
    """Median wall time of converting one side x side photo, after a warm-up call (compilation)."""
    photo = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    converter(photo)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        converter(photo)
        timings.append(time.perf_counter() - started)
    return float(np.median(timings))


def export(args):
    """generator.keras (and saved_model/ on TensorFlow, generator.onnx with --onnx), each checked after reloading."""
    from common import backend

    path = runs.model_path(PROJECT, args.model)
    generator = Converter(path, mixed_precision=False).model
    out = Path(args.out) if args.out else path.parent / "export"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    sample = np.random.default_rng(0).uniform(-1, 1, (1, 64, 96, 3)).astype(np.float32)
    expected = np.asarray(generator.predict_on_batch(sample))
    check = lambda name, got: _check_same(name, expected, got)

    keras_file = runs.save_model(generator, out / "generator.keras")
    reloaded = runs.load_model(keras_file)
    check(keras_file, reloaded.predict_on_batch(sample))
    written = [keras_file]
    if backend.name() == "tensorflow":
        saved = out / "saved_model"
        check(saved, backend.export_saved_model(generator, saved, sample))
        written.append(saved)
    else:
        print(f"note: a TensorFlow SavedModel needs the TensorFlow backend (this is {backend.name()}); "
              "run export with KERAS_BACKEND=tensorflow for one")
    if args.onnx:
        onnx_file = out / "generator.onnx"
        try:
            generator.export(str(onnx_file), format="onnx", verbose=False)
        except Exception as error:  # missing converter packages or an unsupported op: both end here for the user
            raise UserError(f"ONNX export failed ({str(error).strip().splitlines()[0]}); it needs the tf2onnx and onnx "
                            f"packages. The .keras file{' and SavedModel' if len(written) > 1 else ''} in {out} were written") from None
        written.append(onnx_file)
    print("exported and checked after reloading: " + ", ".join(str(p) for p in written))
    print(f"inputs: RGB in [-1, 1], (batch, height, width, 3), sides a multiple of {STRIDE}; outputs the same, in [-1, 1]")
    return out


def _check_same(name, expected, got):
    if not np.allclose(np.asarray(got), expected, atol=1e-4):
        raise UserError(f"{name} does not convert like the trained generator after reloading; the export is not to be trusted")
