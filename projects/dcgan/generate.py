"""Drawing images from a trained generator: `generate` writes them as PNG files or one uint8 array.

The noise is seeded, so a seed always draws the same images. A conditional generator
draws every class in turn (0, 1, 2, ...), or only the class `--label` asks for. A file
that exists already is never replaced, unless `--overwrite` says so.
"""

from pathlib import Path

import keras
import numpy as np
from PIL import Image

from common import images, runs
from common.errors import UserError
from projects.dcgan import PROJECT, data


def generate(args):
    out = Path(args.out)
    targets = output_files(out, args.n)
    for target in targets:  # before any work: an existing file is replaced only when the user said --overwrite
        runs.check_new_file(target, args.overwrite)
    generator, path = load_generator(args.model)
    generated = draw(generator, args.n, args.seed, getattr(args, "label", None))
    if out.suffix == ".npz":
        with runs.atomic_path(out) as temporary:
            np.savez_compressed(temporary, images=generated)
    else:
        for image, target in zip(generated, targets):
            images.save_image(Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image), target)
    print(f"{args.n} images of {'x'.join(map(str, generated.shape[1:]))} from {path} written to {out}")


def output_files(out, count):
    """The files `generate --out` writes: the .npz itself, or 0.png, 1.png, ... in the folder `out`."""
    if out.suffix == ".npz":
        return [out]
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; name a folder for PNG files, or a .npz file")
    digits = len(str(count - 1))
    return [out / f"{index:0{digits}d}.png" for index in range(count)]


def load_generator(model):
    """The generator that --model names (a run folder or generator.keras; default: the newest), and its path."""
    path = runs.model_path(PROJECT, model, "generator.keras")
    generator = runs.load_model(path, PROJECT)
    noise_shape = generator.input_shape[0] if isinstance(generator.input_shape, list) else generator.input_shape
    if len(noise_shape) != 2 or len(generator.output_shape) != 4:
        raise UserError(f"{path} is not a generator (it maps {generator.input_shape} to {generator.output_shape})")
    return generator, path


def draw(generator, count, seed, label=None, batch_size=256):
    """`count` uint8 images (N, H, W, C) from noise seeded by `seed`.

    A conditional generator draws every class in turn (0, 1, 2, ...), or only `label`.
    """
    classes = classes_of(generator)
    if label is not None and not classes:
        raise UserError(f"--label {label}: this generator is not conditional (train one with --conditional)")
    if label is not None and not 0 <= label < classes:
        raise UserError(f"--label {label}: this generator draws classes 0 to {classes - 1}")
    latent_dim = generator.inputs[0].shape[-1]
    noise = np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)
    inputs = noise
    if classes:
        inputs = [noise, fixed_labels(count, classes) if label is None else np.full((count, 1), label, np.int32)]
    return data.to_uint8(generator.predict(inputs, batch_size=batch_size, verbose=0))


def classes_of(generator):
    """How many classes a conditional generator draws (0 for an unconditional one)."""
    encoding = next((layer for layer in generator.layers if isinstance(layer, keras.layers.CategoryEncoding)), None)
    return encoding.num_tokens if encoding is not None else 0


def fixed_labels(count, classes):
    """Labels for a grid or a balanced draw: 0, 1, ..., classes - 1, 0, 1, ... as (count, 1); None without classes."""
    return (np.arange(count, dtype=np.int32) % classes)[:, None] if classes else None
