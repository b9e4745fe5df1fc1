"""Captchas to read: generated on the fly with the `captcha` package, or a folder of your own.

Generated captchas are an endless training stream (every batch is new, drawn in
worker threads while the model trains, so the model never sees the same picture
twice) plus fixed validation and test sets drawn from their own seeded streams, so
they are the same in every run with the same seed and never overlap the training
pictures. The package draws its randomness from Python's `secrets`, which cannot be
seeded; `render` lends it a seeded stand-in for the length of one call. Threads,
not processes: a training step runs outside Python's lock, so one thread drawing
captchas keeps pace, and nothing forks a process that TensorFlow or JAX runs in.

A folder of your own captchas is labelled by file name: `7Z8Y.png` or
`7Z8Y_0042.jpg` read "7Z8Y" (everything before the first "_"). Its alphabet and
image size come from the data. Files that cannot be used (a name that is no label,
an unreadable image) are skipped with one warning line per reason.

Every picture goes to the network grey and scaled to the model's input size (by
default 60 pixels high, keeping the captcha's aspect ratio), as uint8. `load`
assembles what a training run reads, and what it found out on the way (the
alphabet, the input size, the fonts), from its config.
"""

import collections
import math
import random
import sys
import threading
from dataclasses import dataclass, replace

import captcha.image
import keras
import numpy as np
from PIL import Image, ImageFont

from common import datasets, images
from common.errors import UserError, warn
from projects.captcha.labels import DEFAULT_ALPHABET, encode, label_from_name, label_problem, parse_length
from projects.captcha.model import check_fits

TINY = {"train": 256, "validation": 64, "test": 128}  # captchas per epoch, validation and test with --tiny

# Separate seeded streams, so that training, validation and test captchas never coincide.
TRAIN_STREAM, VALIDATION_STREAM, TEST_STREAM = 0, 1, 2


@dataclass
class Captchas:
    """What a training run reads, and what it found out from its settings and data."""

    train: object  # a CaptchaStream, or (x, y) arrays from a folder
    validation: tuple  # (x, y)
    held_out: object  # callable returning (x, texts), read once training has finished; None: nothing held out
    alphabet: str
    input_size: tuple  # (width, height)
    fonts: tuple  # the generated captchas' font files (empty: the captcha package's own); None for a folder
    description: str

    def resolved(self):
        """What the run's config.json records under "resolved"."""
        found = {"alphabet": self.alphabet, "input_size": list(self.input_size)}
        if self.fonts is not None:
            found["fonts"] = list(self.fonts)
        return found


def load(config):
    """The captchas a training config asks for: a folder of your own, or generated ones."""
    return load_folder(config) if config.data_dir else load_generated(config)


def load_folder(config):
    """A folder's captchas, a seeded `--val-split` of them held out for validation and the final score."""
    folder = read_folder(config.data_dir, config.alphabet, input_height=config.input_height)
    if len(folder.texts) < 2:
        raise UserError(f"{config.data_dir} holds only one usable captcha; training needs at least two")
    max_length = max(map(len, folder.texts))
    check_fits(folder.input_size, max_length)
    y = encode(folder.texts, folder.alphabet, max_length)
    kept, held = datasets.holdout(len(y), config.val_split, config.seed)
    return Captchas(
        train=(folder.x[kept], y[kept]),
        validation=(folder.x[held], y[held]),
        held_out=lambda: (folder.x[held], [folder.texts[i] for i in held]),
        alphabet=folder.alphabet,
        input_size=folder.input_size,
        fonts=None,
        description=f"{config.data_dir}: {len(kept)} train, {len(held)} held-out captchas, "
        f"{len(folder.alphabet)} characters, up to {max_length} long",
    )


def load_generated(config):
    """The endless training stream, the seeded validation set and (read later) the held-out set."""
    spec = captcha_spec(config, check_fonts(config.fonts))
    check_fits(spec.input_size, spec.max_length)
    sizes = TINY if config.tiny else {
        "train": config.steps_per_epoch * config.batch_size, "validation": config.val_size, "test": config.test_size
    }
    steps = math.ceil(sizes["train"] / config.batch_size)
    x_val, y_val, _ = generate(spec, sizes["validation"], config.seed, VALIDATION_STREAM, label="validation captchas")

    def held_out():
        x, _, texts = generate(spec, sizes["test"], config.seed, TEST_STREAM, label="test captchas")
        return x, texts

    return Captchas(
        train=CaptchaStream(
            spec.emphasised(config.emphasise, config.emphasis), config.batch_size, steps, config.seed, config.workers
        ),
        validation=(x_val, y_val),
        held_out=held_out if sizes["test"] else None,
        alphabet=spec.alphabet,
        input_size=spec.input_size,
        fonts=spec.fonts,
        description=f"generated{' (tiny)' if config.tiny else ''} {spec.width}x{spec.height} captchas of "
        f"{config.length} characters from {len(spec.alphabet)}: {steps * config.batch_size} fresh each epoch, "
        f"{len(y_val)} validation, {sizes['test']} held-out",
    )


def captcha_spec(config, fonts, alphabet=None, size=None):
    """The generated captchas a config describes, in `fonts` (a trained model's alphabet and input size win)."""
    low, high = parse_length(config.length)
    return CaptchaSpec(
        alphabet=alphabet or config.alphabet or DEFAULT_ALPHABET,
        min_length=low,
        max_length=high,
        width=config.captcha_width,
        height=config.captcha_height,
        fonts=tuple(fonts),
        input_size=tuple(size or input_size(config.captcha_width, config.captcha_height, config.input_height)),
    )


def input_size(width, height, input_height):
    """The network's (width, height) for captchas of `width` x `height`: `input_height` high, same aspect ratio."""
    return max(1, round(width * input_height / height)), input_height


def prepare(image, size):
    """A Pillow image as network input: grey, scaled to `size` (width, height), uint8 (height, width, 1)."""
    image = images.normalise(image, "L")
    if image.size != tuple(size):
        image = image.resize(tuple(size), Image.BILINEAR)
    return np.asarray(image, np.uint8)[..., None]


# --- generated captchas -----------------------------------------------------------------


class _SeededSecrets:
    """The three functions of `secrets` that the captcha package calls, drawn from a seeded generator."""

    def __init__(self, rng):
        self._rng = rng

    def randbelow(self, n):
        return self._rng.randrange(n)

    def randbits(self, k):
        return self._rng.getrandbits(k)

    def choice(self, sequence):
        return self._rng.choice(sequence)


_render_lock = threading.Lock()


def render(generator, text, rng):
    """Draw `text` with a `captcha.image.ImageCaptcha`, every random choice taken from `rng` (a random.Random)."""
    with _render_lock:
        original = captcha.image.secrets
        captcha.image.secrets = _SeededSecrets(rng)
        try:
            return generator.generate_image(text)
        finally:
            captcha.image.secrets = original


def check_fonts(fonts):
    """Comma-separated font files as a tuple, each checked to load."""
    found = tuple(f.strip() for f in (fonts or "").split(",") if f.strip())
    for font in found:
        try:
            ImageFont.truetype(font, 40)
        except OSError as error:
            raise UserError(f"--fonts: {font} is not a readable TrueType/OpenType font ({error})") from None
    return found


def seeded_rng(*words):
    """A random.Random seeded from several non-negative integers (seed, stream, epoch, batch, ...)."""
    state = np.random.SeedSequence(list(words)).generate_state(4)
    return random.Random(int.from_bytes(state.tobytes(), "little"))


@dataclass(frozen=True)
class CaptchaSpec:
    """What the generated captchas look like, and the network's input size for them."""

    alphabet: str = DEFAULT_ALPHABET
    min_length: int = 4
    max_length: int = 4
    width: int = 160
    height: int = 60
    fonts: tuple = ()
    input_size: tuple = (160, 60)
    weights: tuple = ()  # relative odds of each alphabet character; () draws them evenly

    def emphasised(self, characters, factor):
        """The same captchas with `characters` drawn `factor` times as often as the others."""
        if not characters or factor == 1:
            return self
        return replace(self, weights=tuple(factor if c in characters else 1.0 for c in self.alphabet))

    def generator(self):
        return captcha.image.ImageCaptcha(self.width, self.height, fonts=list(self.fonts) or None)

    def make(self, count, *seed_words, generator=None):
        """`count` captchas from the stream named by `seed_words`: (uint8 images, int32 labels, texts)."""
        rng = seeded_rng(*seed_words)
        generator = generator or self.generator()
        weights = self.weights or None
        texts = [
            "".join(rng.choices(self.alphabet, weights, k=rng.randint(self.min_length, self.max_length)))
            for _ in range(count)
        ]
        x = np.stack([prepare(render(generator, text, rng), self.input_size) for text in texts])
        return x, encode(texts, self.alphabet, self.max_length), texts


class CaptchaStream(keras.utils.PyDataset):
    """The endless training stream: `steps` batches an epoch, each one freshly drawn.

    Batch `i` of epoch `e` comes from the seeded stream (seed, TRAIN_STREAM, e, i).
    With two or more `workers`, that many threads draw batches ahead of the training step.
    (A resumed run starts the stream afresh: the batches are new to the model all the same.)
    """

    def __init__(self, spec, batch_size, steps, seed, workers):
        super().__init__(workers=max(1, workers), max_queue_size=8)
        self.spec, self.batch_size, self.steps, self.seed = spec, batch_size, steps, seed
        self.epoch = 0
        self._generator = None

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        if self._generator is None:  # made once: it caches the fonts
            self._generator = self.spec.generator()
        x, y, _ = self.spec.make(self.batch_size, self.seed, TRAIN_STREAM, self.epoch, index, generator=self._generator)
        return x, y

    def on_epoch_end(self):
        self.epoch += 1


def generate(spec, count, seed, stream, chunk=250, label="captchas"):
    """A fixed set of `count` captchas from a seeded stream, drawn `chunk` at a time (each chunk seeded by its place)."""
    progress = keras.utils.Progbar(count, verbose=1 if sys.stdout.isatty() else 0, unit_name=label)
    generator, parts = spec.generator(), []
    for number, start in enumerate(range(0, count, chunk)):
        parts.append(spec.make(min(chunk, count - start), seed, stream, number, generator=generator))
        progress.add(len(parts[-1][2]))
    x, y, texts = zip(*parts)
    return np.concatenate(x), np.concatenate(y), [text for part in texts for text in part]


# --- folders of labelled captchas -------------------------------------------------------


@dataclass
class Folder:
    x: np.ndarray  # uint8 (N, height, width, 1)
    texts: list
    alphabet: str
    input_size: tuple  # (width, height)
    skipped: int = 0  # files of the folder that could not be used (each warned about)


def read_folder(folder, alphabet=None, size=None, input_height=60):
    """Labelled captchas from a folder, skipping (with a warning) files that cannot be used.

    `alphabet` and `size` (width, height) are a trained model's; without them the
    alphabet is the labels' characters and the size the most common image size
    scaled to `input_height`. Images of another size are scaled to it too, with a warning.
    """
    files = images.list_images(folder)
    misnamed = collections.defaultdict(list)
    kept = []
    for file in files:
        label = label_from_name(file)
        problem = label_problem(label, alphabet)
        if problem:
            misnamed[f"with {problem} in their names"].append(file.name)
            continue
        try:
            kept.append((file, label, images.open_image(file, "L")))
        except UserError as error:  # its own line: the reason (corrupt, too many pixels, ...) is the file's
            warn(f"{error}; skipped")
    for reason, names in misnamed.items():
        examples = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        warn(f"skipped {len(names)} of {len(files)} files in {folder} {reason} ({examples})")
    if not kept:
        raise UserError(f"{folder} holds no usable labelled captchas (name them by their text, e.g. 7Z8Y.png or 7Z8Y_0042.jpg)")

    sizes = collections.Counter(image.size for _, _, image in kept)
    common = sizes.most_common(1)[0][0]
    if size is None:
        size = input_size(*common, input_height)
    odd = {s: n for s, n in sizes.items() if s != common}
    if odd:
        listed = ", ".join(f"{n} of {w}x{h}" for (w, h), n in sorted(odd.items(), key=lambda item: -item[1])[:3])
        warn(
            f"{sum(odd.values())} of the images in {folder} are not {common[0]}x{common[1]} like the others ({listed}); "
            "they are scaled to fit"
        )
    alphabet = alphabet or "".join(sorted({c for _, label, _ in kept for c in label}))
    return Folder(
        x=np.stack([prepare(image, size) for _, _, image in kept]),
        texts=[label for _, label, _ in kept],
        alphabet=alphabet,
        input_size=tuple(size),
        skipped=len(files) - len(kept),
    )
