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
default 60 pixels high, keeping the captcha's aspect ratio), as uint8.
"""

import collections
import random
import string
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import captcha.image
import keras
import numpy as np
from PIL import Image, ImageFont

from common import images
from common.errors import UserError

DEFAULT_ALPHABET = string.digits + string.ascii_uppercase
LABEL_SEPARATOR = "_"

# Separate seeded streams, so that training, validation and test captchas never coincide.
TRAIN_STREAM, VALIDATION_STREAM, TEST_STREAM = 0, 1, 2


def parse_length(text):
    """"4" -> (4, 4); "4-6" -> (4, 6)."""
    low, dash, high = str(text).partition("-")
    try:
        low, high = int(low), int(high if dash else low)
    except ValueError:
        raise UserError(f"--length must be N or MIN-MAX (e.g. 4 or 4-6), got {text!r}") from None
    if not 1 <= low <= high:
        raise UserError(f"--length must be N or MIN-MAX with 1 <= MIN <= MAX, got {text!r}")
    return low, high


def check_alphabet(alphabet):
    if not alphabet:
        raise UserError("--alphabet is empty")
    repeated = sorted({c for c in alphabet if alphabet.count(c) > 1})
    if repeated:
        raise UserError(f"--alphabet lists {''.join(repeated)!r} more than once")
    if any(c.isspace() or c == LABEL_SEPARATOR for c in alphabet):
        raise UserError(f"--alphabet may not hold white space or {LABEL_SEPARATOR!r}")
    return alphabet


def input_size(width, height, input_height):
    """The network's (width, height) for captchas of `width` x `height`: `input_height` high, same aspect ratio."""
    return max(1, round(width * input_height / height)), input_height


def prepare(image, size):
    """A Pillow image as network input: grey, scaled to `size` (width, height), uint8 (height, width, 1)."""
    image = images.normalise(image, "L")
    if image.size != tuple(size):
        image = image.resize(tuple(size), Image.BILINEAR)
    return np.asarray(image, np.uint8)[..., None]


def encode(texts, alphabet, max_length):
    """Texts as class indices (character i of the alphabet is i + 1), padded with 0 to `max_length`."""
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    codes = np.zeros((len(texts), max_length), np.int32)
    for row, text in enumerate(texts):
        codes[row, : len(text)] = [index[c] for c in text]
    return codes


def decode(codes, alphabet):
    """Rows of class indices (0 and -1 ignored) as texts."""
    return ["".join(alphabet[c - 1] for c in row if 0 < c <= len(alphabet)) for row in np.asarray(codes)]


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


def label_from_name(path):
    """The label a file name carries: the name without extension, up to the first "_"."""
    return Path(path).stem.split(LABEL_SEPARATOR, 1)[0]


def label_problem(label, alphabet=None):
    """Why `label` cannot be used (None if it can): empty, or characters outside the alphabet."""
    if not label:
        return "an empty label"
    allowed = (lambda c: c in alphabet) if alphabet else (lambda c: c.isascii() and c.isalnum())
    if not all(allowed(c) for c in label):
        return "characters outside the alphabet" if alphabet else "characters other than letters and digits"
    return None


def warn(message):
    print(f"warning: {message}", file=sys.stderr)


@dataclass
class Folder:
    x: np.ndarray  # uint8 (N, height, width, 1)
    texts: list
    alphabet: str
    input_size: tuple  # (width, height)


def read_folder(folder, alphabet=None, size=None, input_height=60):
    """Labelled captchas from a folder, skipping (with a warning) files that cannot be used.

    `alphabet` and `size` (width, height) are a trained model's; without them the
    alphabet is the labels' characters and the size the most common image size
    scaled to `input_height`. Images of another size are scaled to it too, with a warning.
    """
    files = images.list_images(folder)
    skipped = collections.defaultdict(list)
    kept = []
    for file in files:
        label = label_from_name(file)
        problem = label_problem(label, alphabet)
        if problem:
            skipped[f"with {problem} in their names"].append(file.name)
            continue
        try:
            kept.append((file, label, images.open_image(file, "L")))
        except UserError:
            skipped["that are not readable images"].append(file.name)
    for reason, names in skipped.items():
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
    )
