"""Captcha texts: lengths, alphabets, labels taken from file names, and texts as class indices.

Kept free of Keras, so that the command line checks `--length` and `--alphabet`
without loading it. Index 0 is CTC's blank (and pads short labels); character i
of the alphabet is class i + 1.
"""

import string
from pathlib import Path

import numpy as np

from common.errors import UserError

DEFAULT_ALPHABET = string.digits + string.ascii_uppercase
LABEL_SEPARATOR = "_"


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
