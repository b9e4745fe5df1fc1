"""Reading word2vec files (text or binary) into gensim `KeyedVectors`, with clear errors.

The word2vec project writes these files and the IMDB project reads them (as do other
tools: Google's word2vec, fastText's .vec files, GloVe with a header line), so reading
them lives here once. The format is sniffed from the content, not the file name.
"""

from pathlib import Path

from common.errors import UserError


def is_binary(path):
    """Whether a word2vec file is binary: the line after the header is not a word and N printable values
    (a text file with a malformed number is still a text file, and is reported as one)."""
    with open(path, "rb") as stream:
        header, first = stream.readline(), stream.readline(1 << 20)
    numbers = header.split()
    if len(numbers) != 2 or not all(n.isdigit() for n in numbers):
        raise UserError(f"{path} is not a word2vec file: its first line should be '<words> <dimensions>'")
    fields = first.decode("utf-8", errors="replace").split()
    printable = all(value.isascii() and value.isprintable() for value in fields[1:])
    return not (printable and len(fields) == int(numbers[1]) + 1)


def load(path):
    """gensim KeyedVectors from a word2vec text or binary file, whatever its name."""
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    binary = is_binary(path)
    try:
        vectors = KeyedVectors.load_word2vec_format(str(path), binary=binary, unicode_errors="replace")
    except Exception as error:  # gensim raises many types for a malformed file; each means "not this format"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{path} is not a valid word2vec {'binary' if binary else 'text'} file ({reason})") from None
    if len(vectors) == 0:
        raise UserError(f"{path} holds no word vectors")
    return vectors
