"""Reading and tokenising text: one tokeniser for every project that reads words.

The word2vec project learns vectors from these tokens and the IMDB project looks
them up with the same tokens, so both import `tokenize` from here. It lower-cases,
turns HTML tags (IMDB reviews are full of `<br />`) into spaces and keeps runs of
letters and digits, with apostrophes inside a word ("don't") kept.

Files are read as UTF-8; bytes that are not UTF-8 are replaced (U+FFFD) and counted,
so a corpus with a few bad files still trains and the user hears about it once.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError, warn

HTML_TAG = re.compile(r"<[^>]{0,100}>")
TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
TEXT_SUFFIXES = {".txt", ".text", ".md", ""}


def tokenize(text):
    """Lower-cased word tokens of a text, HTML tags removed."""
    return TOKEN.findall(HTML_TAG.sub(" ", text.lower()))


@dataclass
class Reader:
    """Reads text files, counting the ones with bytes that are not UTF-8 for one warning at the end."""

    replaced: list = field(default_factory=list)

    def read(self, path):
        raw = Path(path).read_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.replaced.append(str(path))
            return raw.decode("utf-8", errors="replace")

    def warn(self):
        if self.replaced:
            example = self.replaced[0]
            warn(
                f"{len(self.replaced)} file(s) held bytes that are not UTF-8 (e.g. {example}); "
                "they were decoded with U+FFFD in their place"
            )


def text_files(folder):
    """Text files under a folder, recursively, in a stable order (hidden files and folders left out)."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def read_documents(path, reader=None):
    """Documents of a text corpus: each line of a file, or each file of a folder (recursively).

    A single file is taken one document per non-empty line (the usual layout of a
    word2vec corpus); in a folder every text file is one document.
    """
    path = Path(path)
    own_reader = reader is None
    reader = reader or Reader()
    if path.is_file():
        documents = [line for line in reader.read(path).splitlines() if line.strip()]
    elif path.is_dir():
        files = text_files(path)
        if not files:
            raise UserError(f"{path} holds no text files (.txt)")
        documents = [reader.read(p) for p in files]
    else:
        raise UserError(f"{path} does not exist")
    if own_reader:
        reader.warn()
    return documents
