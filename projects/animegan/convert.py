"""Turning photos, folders of photos and videos into anime with a trained generator; exporting it.

The generator is fully convolutional, so a photo of any size goes in whole: it is
padded (by reflection) up to a multiple of the generator's stride of 4 and the
output cropped back, so the result has exactly the photo's size. Very large photos
are first scaled down to `--max-side` (memory and time grow with the pixels), with
a note. Videos are converted frame by frame at their own frame rate; the sound is
dropped. Outputs that exist already stop the command before any work, unless
`--overwrite` is given; the input itself is never written over.

`export` writes the generator for inference, in float32, into a folder (a new or empty
one, or with `--overwrite` one holding an earlier export): a `.keras` file (any backend)
and, on TensorFlow, a SavedModel for TF Serving and TFLite converters
(`common.backend.export_saved_model`). Both are reloaded and checked against the
trained generator before the command says it is done.
"""

import importlib
import itertools
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
        self.model = runs.load_model(model_path, PROJECT)
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


def output_path(source, out, kind, overwrite=False):
    """Where a conversion goes: --out, or beside the input as <name>_anime (a file, a folder or a video).

    Checked before any work: an existing output is refused unless `overwrite`, and the input
    itself (or, for a folder, the input folder) is never an output.
    """
    source = Path(source)
    if out:
        target = Path(out)
    elif kind == "folder":
        target = source.parent / f"{source.name}_anime"
    else:
        suffix = source.suffix.lower() if kind == "video" or source.suffix.lower() in OUTPUT_SUFFIXES else ".png"
        target = source.with_name(f"{source.stem}_anime{suffix}")
    if target.resolve() == source.resolve():
        raise UserError(f"--out {target} is the input itself; choose another --out (the input is never written over)")
    if kind == "folder":
        if target.exists() and not target.is_dir():
            raise UserError(f"--out {target} is a file; name a folder for the converted images")
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise UserError(f"{target} already exists and is not an empty folder; choose another --out, "
                            "or pass --overwrite to replace the converted images in it")
        return target
    if kind == "image" and target.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserError(f"--out {target}: give an image file name ({', '.join(sorted(OUTPUT_SUFFIXES))})")
    if kind == "video" and not data.is_video(target):
        raise UserError(f"--out {target}: give a video file name ({', '.join(sorted(data.VIDEO_SUFFIXES))})")
    return runs.check_new_file(target, overwrite)


def save_picture(pixels, path):
    image = Image.fromarray(pixels)
    try:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            with runs.atomic_path(path) as temporary:
                image.save(temporary, quality=95)
            return path
        return images.save_image(image, path)
    except OSError as error:
        raise UserError(f"cannot write {path} ({error.strerror or error})") from None


def convert_image(converter, source, target):
    """One photo, read already scaled down to --max-side (a large JPEG is decoded at a reduced scale)."""
    image, original = images.open_within(source, converter.max_side)
    if image.size != original:
        print(f"note: {source}: {original[0]}x{original[1]} scaled down to {image.width}x{image.height} "
              f"(--max-side {converter.max_side})")
    return save_picture(converter(np.asarray(image)), target)


def convert_folder(converter, folder, target, overwrite=False):
    """Every image of a folder; a file that cannot be read or written is reported in one line and skipped.

    Returns the number of failures. A folder this call created is removed again when nothing was converted.
    """
    import keras

    files = images.list_images(folder)
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {target} ({error.strerror}); choose another --out") from None
    progress = keras.utils.Progbar(len(files), unit_name="image", verbose=1 if sys.stdout.isatty() else 0)
    failures, names = 0, output_names(files)
    for path in files:
        try:
            convert_image(converter, path, runs.check_new_file(target / names[path], overwrite))
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
        progress.add(1)
    if failures == len(files):
        if created:
            target.rmdir()
        print(f"none of the {len(files)} images of {folder} could be converted; nothing written")
    else:
        print(f"{len(files) - failures} of {len(files)} images converted into {target}")
    return failures


def output_names(files):
    """The output name of each image of a folder: its own, or <stem>.png for a format not written; never two alike
    (photo.gif beside photo.png becomes photo.gif.png)."""
    names, taken = {}, set()
    for path in sorted(files, key=lambda p: p.suffix.lower() not in OUTPUT_SUFFIXES):  # files that keep their name first
        own = path.stem + (path.suffix.lower() if path.suffix.lower() in OUTPUT_SUFFIXES else ".png")
        candidates = itertools.chain([own, f"{path.name}.png"], (f"{path.name}-{n}.png" for n in itertools.count(2)))
        names[path] = next(name for name in candidates if name not in taken)
        taken.add(names[path])
    return names


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
    overwrite = getattr(args, "overwrite", False)
    target = output_path(source, args.out, kind, overwrite)
    converter = Converter(runs.model_path(PROJECT, args.model), args.max_side, getattr(args, "mixed_precision", None))
    started = time.perf_counter()
    if kind == "folder":
        return 1 if convert_folder(converter, source, target, overwrite) else 0
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
    out = export_folder(Path(args.out) if args.out else path.parent / "export", args.onnx, getattr(args, "overwrite", False))
    generator = Converter(path, mixed_precision=False).model
    out.mkdir(parents=True, exist_ok=True)

    sample = np.random.default_rng(0).uniform(-1, 1, (1, 64, 96, 3)).astype(np.float32)
    expected = np.asarray(generator.predict_on_batch(sample))
    check = lambda name, got: _check_same(name, expected, got)

    keras_file = runs.save_model(generator, out / "generator.keras", PROJECT)
    reloaded = runs.load_model(keras_file, PROJECT)
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


def export_folder(out, onnx=False, overwrite=False):
    """The export's folder, checked before any work: new or empty, or (with `overwrite`) one whose export files may be replaced."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; export writes a folder (generator.keras, saved_model/): name a new or empty one")
    if not out.exists() and out.suffix == ".keras":
        raise UserError(f"--out {out}: export writes a folder (generator.keras, saved_model/); name a folder, not a .keras file")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"{out} already exists and is not an empty folder; choose another --out, "
                            "or pass --overwrite to replace the export in it")
        runs.check_new_file(out / "generator.keras", overwrite)
        if onnx:
            runs.check_new_file(out / "generator.onnx", overwrite)
        if (out / "saved_model").exists() and not (out / "saved_model").is_dir():
            raise UserError(f"{out / 'saved_model'} is a file, where the SavedModel folder goes; move it or choose another --out")
    return out


def _check_same(name, expected, got):
    if not np.allclose(np.asarray(got), expected, atol=1e-4):
        raise UserError(f"{name} does not convert like the trained generator after reloading; the export is not to be trusted")
