"""The poems: found, read, cleaned, deduplicated, split, and turned into token ids.

The Complete Tang Poems of the chinese-poetry project come as JSON files, one list
of `{author, title, paragraphs, id}` per file, a paragraph being one couplet
(`秦川雄帝宅，函谷壯皇居。`). A user's own corpus can be a UTF-8 text file with one
poem per line, or a folder of JSON files of that shape.

Cleaning drops editorial notes (`（一作…）`), restoration brackets and quotation
marks, and reduces the punctuation to two marks: `，` inside a couplet and `。` at
its end (`、；：` become `，`, `！？` become `。`). A poem that still holds anything
but Han characters (a `□` for a lost character, digits, an unclosed note) is left
out, and so is one with a character found fewer than `min_count` times in the whole
collection; both are counted. The collection repeats poems under different authors,
so identical texts are removed *before* the split: otherwise a test poem could sit in
the training set too, and the copy figure would be false.

A poem becomes token ids: START, its characters with the punctuation closing each
line, END. Ids 0-5 are fixed (padding, unknown, start, end, `，`, `。`); the
characters follow by frequency in the training poems, up to `vocabulary_size`, the
rest sharing the unknown id.
"""

import json
import re
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import datasets
from common.errors import UserError
from common.text import Reader

DATASET, ARCHIVE, FOLDER_NAME = "chinese-poetry-tang", "chinese-poetry-tang.tar.gz", "chinese-poetry/quantangshi"
PAD, UNKNOWN, START, END, COMMA, STOP = range(6)
SPECIAL = ("<pad>", "<unk>", "<s>", "</s>", "，", "。")
FIRST_CHARACTER = 6
FORCED = (COMMA, STOP, END)  # what a regulated form dictates; perplexity leaves them out
VOCABULARY_FILE = "vocabulary.json"

# Regulated forms: (characters per line, lines). "free" has neither.
FORMS = {"5-jueju": (5, 4), "7-jueju": (7, 4), "5-lushi": (5, 8), "7-lushi": (7, 8)}
FORM_NAMES = (*FORMS, "free")

NOTE = re.compile(r"（[^（）]*）|\([^()]*\)")
DROPPED_MARKS = re.compile(r"[\[\]《》「」『』〈〉\s]")
COMMAS, STOPS = "，,、；;：:", "。.！!？?"
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def clean_text(text):
    """A poem's text with notes and marks removed and punctuation reduced to ， and 。; None when odd characters remain."""
    text = DROPPED_MARKS.sub("", NOTE.sub("", text))
    text = "".join("，" if c in COMMAS else "。" if c in STOPS else c for c in text)
    text = re.sub(r"[，。]+", lambda m: "。" if "。" in m.group() else "，", text).lstrip("，。")
    if not text:
        return None
    if text[-1] != "。":
        text = text.rstrip("，") + "。"
    if any(c not in "，。" and not HAN.fullmatch(c) for c in text):
        return None
    return text


def lines(text):
    """A cleaned poem's lines, without their punctuation."""
    return [line for line in re.split("[，。]", text) if line]


def form_of(text):
    """The regulated form of a cleaned poem (5-jueju, 7-lushi, ...) or "free"."""
    found = lines(text)
    for name, (length, count) in FORMS.items():
        if len(found) == count and all(len(line) == length for line in found):
            return name
    return "free"


# --- Finding and reading ----------------------------------------------------------------


def find_corpus(data_dir=None):
    """The extracted chinese-poetry/quantangshi/ folder, or the archive, under --data-dir, $DATA_DIR or the Keras cache.

    Never downloaded: upstream publishes the JSON files, not the registered archive.
    """
    registered = datasets.REGISTRY[DATASET][ARCHIVE]
    if data_dir and not Path(data_dir).is_dir():
        raise UserError(f"--data-dir {data_dir} is not a folder")
    roots = [Path(data_dir)] if data_dir else [datasets.data_dir(), datasets.keras_cache_dir()]
    for root in roots:
        for candidate in (root / FOLDER_NAME, root / registered.path, root / "quantangshi"):
            if candidate.exists():
                return candidate
    raise UserError(f"the Tang poems are missing: put {registered.path} (or its extracted {FOLDER_NAME}/ folder) in {roots[0]}; "
                    f"the poems are the JSON files of {registered.url} (its 全唐诗 folder)")


def read_corpus(path):
    """The raw poem texts (couplets joined) of the archive, a folder of JSON files, or a text file of one poem per line."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_file() and tarfile.is_tarfile(path):
        texts = read_archive(path)
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if not p.name.startswith("authors"))
        if not files:
            raise UserError(f"{path} holds no JSON files of poems")
        reader = Reader()
        texts = [text for file in files for text in poems_of(json_of(reader.read(file), file), file)]
        reader.warn()
    else:
        reader = Reader()
        texts = [line.strip() for line in reader.read(path).splitlines() if line.strip()]
        reader.warn()
    if not texts:
        raise UserError(f"{path} holds no poems")
    return texts


def read_archive(path):
    texts = []
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name.startswith("poet.") and name.endswith(".json"):
                    raw = archive.extractfile(member).read()
                    texts += poems_of(json_of(raw.decode("utf-8", errors="replace"), f"{path}:{member.name}"), member.name)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise UserError(f"{path} is truncated or corrupt ({error}); delete it and fetch it again") from None
    return texts


def json_of(text, where):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{where} is not valid JSON ({error})") from None


def poems_of(value, where):
    """The texts of a JSON list of {paragraphs: [couplet, ...]} objects; one line naming the expected shape otherwise."""
    if not isinstance(value, list) or not all(isinstance(p, dict) and isinstance(p.get("paragraphs"), list) for p in value):
        raise UserError(f"{where} is not a list of poems like [{{\"title\": ..., \"paragraphs\": [\"秦川雄帝宅，函谷壯皇居。\", ...]}}]")
    return ["".join(str(line) for line in poem["paragraphs"]) for poem in value]


# --- Cleaning, deduplication, split -------------------------------------------------------


@dataclass
class Corpus:
    train: list
    validation: list
    test: list
    counts: dict  # what cleaning did: read, odd, rare, duplicates, kept, per form


def prepare(texts, min_count=2, seed=0, script="traditional", held_out=0.05):
    """Clean, deduplicate (before the split), then split the poems by a seeded shuffle: `held_out` of them for
    validation, as many for the test, the rest (90% by default) for training."""
    counts = {"read": len(texts)}
    if script == "simplified":
        texts = to_simplified(texts)
    cleaned = [clean_text(t) for t in texts]
    counts["odd_characters"] = sum(t is None for t in cleaned)
    cleaned = [t for t in cleaned if t]
    frequency = Counter(c for t in cleaned for c in t)
    kept = [t for t in cleaned if min(frequency[c] for c in t) >= min_count]
    counts["rare_characters"] = len(cleaned) - len(kept)
    unique = list(dict.fromkeys(kept))
    counts["duplicates"] = len(kept) - len(unique)
    counts["kept"] = len(unique)
    if not unique:
        raise UserError(f"no poem is left after cleaning ({counts['read']} read: {counts['odd_characters']} with odd or "
                        f"missing characters, {counts['rare_characters']} with rare ones)")
    forms = Counter(form_of(t) for t in unique)
    counts["forms"] = {name: forms.get(name, 0) for name in FORM_NAMES}
    order = np.random.default_rng(seed).permutation(len(unique))
    held = int(round(len(unique) * held_out))
    cut_train, cut_validation = len(unique) - 2 * held, len(unique) - held
    pick = lambda part: [unique[i] for i in part]
    return Corpus(pick(order[:cut_train]), pick(order[cut_train:cut_validation]), pick(order[cut_validation:]), counts)


def to_simplified(texts):
    import opencc

    converter = opencc.OpenCC("t2s")
    return [converter.convert(t) for t in texts]


def load(config):
    """The prepared corpus that `config` names: --tiny, --poems (a user's own), or the Tang poems."""
    if config.tiny:
        texts = tiny_corpus(config.seed)
    else:
        texts = read_corpus(config.poems or find_corpus(config.data_dir))
    return prepare(texts, config.min_count, config.seed, config.script, config.val_split)


# --- The tiny generated corpus ------------------------------------------------------------

TINY_CHARACTERS = "春夏秋冬山水風花雪月江河日夜天雲高遠長青白紅人歸來去"
PLANTED = "明"  # every tiny poem's second line starts with it


def tiny_corpus(seed, count=240):
    """Five-character jueju of random characters, except that the second line always starts with 明."""
    rng = np.random.default_rng(seed)
    alphabet = list(TINY_CHARACTERS)
    poems = []
    for _ in range(count):
        rows = ["".join(rng.choice(alphabet, 5)) for _ in range(4)]
        rows[1] = PLANTED + rows[1][1:]
        poems.append(f"{rows[0]}，{rows[1]}。{rows[2]}，{rows[3]}。")
    return poems


# --- Vocabulary and encoding --------------------------------------------------------------


@dataclass
class Vocabulary:
    tokens: list  # tokens[i] is id i's token

    def __post_init__(self):
        self.ids = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self):
        return len(self.tokens)

    @classmethod
    def build(cls, poems, size):
        frequency = Counter(c for poem in poems for c in poem if c not in "，。")
        return cls(list(SPECIAL) + [c for c, _ in frequency.most_common(size)])

    def encode(self, poem):
        """START, the poem's characters and punctuation, END."""
        return [START, *(self.ids.get(c, UNKNOWN) for c in poem), END]

    def decode(self, ids):
        return "".join(self.tokens[i] for i in ids if i >= COMMA or i == UNKNOWN)

    def save(self, path):
        Path(path).write_text(json.dumps(self.tokens, ensure_ascii=False))

    @classmethod
    def load(cls, path):
        return cls(json.loads(Path(path).read_text()))


def sequences(poems, vocabulary, max_length):
    """(inputs, targets, weights): each poem's ids shifted by one, cut to `max_length` and padded with 0 (weight 0)."""
    x = np.zeros((len(poems), max_length), np.int32)
    y = np.zeros((len(poems), max_length), np.int32)
    for row, poem in enumerate(poems):
        ids = vocabulary.encode(poem)[: max_length + 1]
        x[row, : len(ids) - 1], y[row, : len(ids) - 1] = ids[:-1], ids[1:]
    return x, y, (y != PAD).astype(np.float32)
