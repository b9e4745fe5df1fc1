"""The demo's pages: one per project, each a form and the function that answers it with the project's own code.

A page finds its models the way the project's commands do (the newest finished run,
or the runs the user named with `--run`), loads each once and keeps it, and answers
a form with an `Answer`: lines of text, labelled bars, pictures. Nothing here
computes what a model does: every answer calls the project's predict, generate,
stylize, convert or play functions. Project modules are imported inside the
functions, so that `python -m demo --help` answers without loading Keras.
"""

import argparse
import functools
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from common import images, runs
from common.errors import UserError


@dataclass(frozen=True)
class Field:
    """One input of a page's form; `kind` is text, textarea, number, select, checkbox or image
    (an uploaded picture, or a drawing on the page when `drawing`)."""

    name: str
    label: str
    kind: str = "text"
    default: object = ""
    choices: tuple = ()
    drawing: bool = False


@dataclass
class Answer:
    """What a page shows: lines of text, (label, probability) bars, (caption, picture) pairs;
    a picture is a Pillow image or the bytes of a GIF."""

    lines: list = field(default_factory=list)
    bars: list = field(default_factory=list)
    pictures: list = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    """`find(named paths)` returns the models' paths (a UserError when there is none);
    `answer(paths, form values, uploaded file or None)` returns an Answer."""

    key: str
    title: str
    train: str
    about: str
    fields: tuple
    find: Callable
    answer: Callable
    model_label: Callable = None  # given, the form lists the models found by this label and the user picks one


# --- reading the form ---------------------------------------------------------------------


class FlagParser(argparse.ArgumentParser):
    """A project's own command-line flags, read from a form: a bad value is a UserError, not an exit."""

    def error(self, message):
        raise UserError(message)


def project_args(add_flags, flags):
    """The Namespace a project's command would get from `flags`: its defaults, types and checks."""
    parser = FlagParser(add_help=False)
    add_flags(parser)
    return parser.parse_args([str(flag) for flag in flags])


def whole_number(form, name, low, high):
    value = str(form.get(name, "")).strip()
    try:
        number = int(value)
    except ValueError:
        raise UserError(f"{name}: give a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise UserError(f"{name}: give a number from {low} to {high}, got {number}")
    return number


def needs_upload(upload):
    if upload is None:
        raise UserError("choose a picture first")
    return upload


def newest(project, filename="model.keras"):
    """A `find` for pages with one model: the one named, else the newest finished run's."""

    def find(named):
        return [runs.model_path(project, named[-1] if named else None, filename)]

    return find


def every_run(project, filename="model.keras"):
    """A `find` for pages that offer several models (each a style, a kind): those named, else every finished run's."""

    def find(named):
        if named:
            return [runs.model_path(project, path, filename) for path in named]
        found = sorted((runs.RUNS_DIR / project).glob(f"*/{filename}"), key=lambda path: path.stat().st_mtime)
        if not found:
            runs.latest_model(project, filename)  # the one-line "no trained model" error
        return found[::-1]

    return find


# --- MNIST ----------------------------------------------------------------------------------


@functools.cache
def mnist_model(path):
    from projects.mnist_cnn import PROJECT

    return runs.load_model(path, PROJECT), runs.run_config(path).get("dataset", "mnist")


def read_digit(paths, form, upload):
    from projects.mnist_cnn import data

    model, dataset = mnist_model(paths[0])
    seen = data.prepare(images.open_image(needs_upload(upload), "L"), dataset)
    probabilities = model.predict(seen[None, ..., None], verbose=0)[0]
    names = data.CLASS_NAMES[dataset]
    best = int(probabilities.argmax())
    return Answer(
        lines=[f"prediction: {names[best]} ({probabilities[best]:.1%})"],
        bars=[(name, float(p)) for name, p in zip(names, probabilities)],
        pictures=[("the 28x28 picture the model saw", Image.fromarray(seen).resize((112, 112), Image.NEAREST))],
    )


# --- captcha --------------------------------------------------------------------------------


@functools.cache
def captcha_reader(path):
    from projects.captcha.model import alphabet_of, load, model_input_size
    from projects.captcha.predict import inference_model

    model = load(path)
    return inference_model(model)[0], alphabet_of(model), model_input_size(model)


def read_captcha(paths, form, upload):
    from projects.captcha import data
    from projects.captcha.predict import character_confidences, read
    from projects.captcha.train import held_out_again

    inference, alphabet, size = captcha_reader(paths[0])
    lines = []
    if upload is None:
        seed = whole_number(form, "seed", 0, 2**31 - 1)
        x, truth, _ = held_out_again(paths[0], alphabet, size, count=1, seed=seed)
        lines.append(f"generated captcha (seed {seed}) reads {truth[0]!r}")
    else:
        x = data.prepare(images.open_image(upload, "L"), size)[None]
    texts, confidence = read(inference, x, alphabet)
    each = ", ".join(f"{character} {sure:.0%}" for character, sure in zip(texts[0], character_confidences(inference, x)[0]))
    lines[:0] = [f"reading: {texts[0]!r}, confidence {confidence[0]:.1%}", f"each character: {each or 'none read'}"]
    picture = Image.fromarray(x[0, ..., 0]).resize((size[0] * 3, size[1] * 3), Image.NEAREST)
    return Answer(lines=lines, pictures=[(f"what the model read ({size[0]}x{size[1]})", picture)])


# --- word2vec -------------------------------------------------------------------------------


@functools.cache
def word_vectors(path):
    from common import word2vec_format

    return word2vec_format.load(path)


def neighbours(paths, form, upload):
    from projects.word2vec.vectors import nearest

    vectors = word_vectors(paths[0])
    top = whole_number(form, "top", 1, 50)
    word = form.get("word", "").strip().lower()
    analogy = [form.get(name, "").strip().lower() for name in ("a", "b", "c")]
    if not word and not all(analogy):
        raise UserError("type a word, or the three words of an analogy")
    answer = Answer()
    if word:
        answer.lines += [f"nearest to {word}:"] + [f"  {n}  {s:.3f}" for n, s in nearest(vectors, [word], top)[word]]
    if all(analogy):
        missing = [w for w in analogy if w not in vectors.key_to_index]
        if missing:
            raise UserError(f"not in the vocabulary: {', '.join(missing)}")
        a, b, c = analogy
        found = vectors.most_similar(positive=[b, c], negative=[a], topn=top)
        answer.lines += [f"{a} : {b} :: {c} : ?"] + [f"  {n}  {s:.3f}" for n, s in found]
    return answer


# --- IMDB -----------------------------------------------------------------------------------


def imdb_models(named):
    """The newest run of each model kind (or the runs named)."""
    from projects.imdb_sentiment import PROJECT
    from projects.imdb_sentiment.predict import MODEL_FILES, model_file

    if named:
        return [model_file(path) for path in named]
    newest_of_kind = {}
    found = [path for name in set(MODEL_FILES.values()) for path in (runs.RUNS_DIR / PROJECT).glob(f"*/{name}")]
    for path in sorted(found, key=lambda path: path.stat().st_mtime):  # oldest first: the newest of a kind stays
        kind = runs.run_config(path).get("kind", "lstm")
        if MODEL_FILES.get(kind) == path.name:
            newest_of_kind[kind] = path
    if not newest_of_kind:
        model_file(None)  # the one-line "no trained model" error
    return list(newest_of_kind.values())


@functools.cache
def sentiment_model(path):
    from projects.imdb_sentiment.predict import trained_model

    return trained_model(path)


def read_review(paths, form, upload):
    from common import text
    from projects.imdb_sentiment.data import LABELS

    tokens = text.tokenize(form.get("review", ""))
    if not tokens:
        raise UserError("the review holds no words; type one")
    answer = Answer()
    for path in paths:
        trained = sentiment_model(path)
        probability = float(trained.probabilities([tokens])[0])
        positive = probability >= 0.5
        note = "" if trained.knows(tokens) else " (none of its words is in this model's vocabulary)"
        answer.lines.append(f"{trained.kind}: {LABELS[positive]}, {probability if positive else 1 - probability:.1%}{note}")
        answer.bars.append((f"{trained.kind}: P(positive)", probability))
    return answer


# --- DCGAN ----------------------------------------------------------------------------------


@functools.cache
def generator(path):
    from projects.dcgan.generate import load_generator

    return load_generator(path)[0]


def draw_grid(paths, form, upload):
    from projects.dcgan.generate import classes_of, draw

    model = generator(paths[0])
    count = whole_number(form, "count", 1, 100)
    seed = whole_number(form, "seed", 0, 2**31 - 1)
    classes = classes_of(model)
    label = None
    if str(form.get("label", "")).strip():
        if not classes:
            raise UserError("this generator is not conditional: leave the class empty")
        label = whole_number(form, "label", 0, classes - 1)
    drawn = draw(model, count, seed, label)
    which = f"class {label}" if label is not None else f"classes 0 to {classes - 1} in turn" if classes else "unconditional"
    return Answer(lines=[f"{count} images of {drawn.shape[2]}x{drawn.shape[1]}, seed {seed}, {which}"],
                  pictures=[("generated", images.grid(drawn, columns=min(count, 10), scale=max(1, 96 // drawn.shape[1])))])


# --- style transfer -------------------------------------------------------------------------


@functools.cache
def style_network(path):
    from projects.style_transfer.model import load_network

    return load_network(path)


def style_name(path):
    painting = runs.run_config(path).get("style")
    return f"{Path(path).parent.name}: {Path(painting).name if painting else 'generated stripes'}"


def stylize(paths, form, upload):
    from projects.style_transfer import data
    from projects.style_transfer.stylize import paint

    chosen = [path for path in paths if style_name(path) == form.get("model", style_name(paths[0]))]
    if not chosen:
        raise UserError(f"no style {form.get('model')!r}; choose one of the list")
    size = whole_number(form, "max_size", 16, 2048)
    photo = data.load(needs_upload(upload), size)
    painted = paint(style_network(chosen[0]), [photo], bool(form.get("preserve_color")))[0]
    return Answer(lines=[f"{style_name(chosen[0])}, {photo.shape[1]}x{photo.shape[0]} pixels"],
                  pictures=[("photo", data.to_image(photo)), ("stylized", data.to_image(painted))])


# --- AnimeGAN -------------------------------------------------------------------------------


@functools.cache
def anime_converter(path):
    from projects.animegan.convert import Converter

    return Converter(path, max_side=2048)


def to_anime(paths, form, upload):
    converter = anime_converter(paths[0])
    photo, original = images.open_within(needs_upload(upload), whole_number(form, "max_side", 16, converter.max_side))
    lines = [f"{photo.width}x{photo.height} pixels"]
    if photo.size != original:
        lines.append(f"scaled down from {original[0]}x{original[1]}")
    return Answer(lines=lines, pictures=[("photo", photo), ("anime", Image.fromarray(converter(np.asarray(photo))))])


# --- Tang poems -----------------------------------------------------------------------------


@functools.cache
def poet(path):
    from projects.tang_poetry.generate import load

    return load(path)


def write_poems(paths, form, upload):
    from projects.tang_poetry.__main__ import add_generate_flags
    from projects.tang_poetry.generate import check_args, write_poems

    flags = ["--form", form.get("form", "5-jueju"), "--temperature", form.get("temperature", ""),
             "--n", form.get("n", ""), "--seed", form.get("seed", "")]
    for name in ("acrostic", "prefix"):
        if str(form.get(name, "")).strip():
            flags += [f"--{name}", form[name].strip()]
    args = project_args(add_generate_flags, flags)
    check_args(args)
    return Answer(lines="\n\n".join(write_poems(poet(paths[0]), args)).splitlines())


# --- game agent -----------------------------------------------------------------------------


@functools.cache
def agent(path):
    from projects.flappy_dqn.evaluate import load_agent

    return load_agent(path)


def play_game(paths, form, upload):
    from projects.flappy_dqn.__main__ import add_play_flags
    from projects.flappy_dqn.play import record_game, write_video

    args = project_args(add_play_flags, ["--out", "game.gif", "--episode", form.get("episode", ""),
                                         "--seconds", form.get("seconds", "")])
    screens, score, fps = record_game(agent(paths[0]), args)
    with tempfile.TemporaryDirectory(prefix="demo-") as folder:
        video = Path(folder) / "game.gif"
        write_video(screens, video, fps)
        return Answer(lines=[f"score {score:.0f} on evaluation seed {args.episode} ({len(screens)} pictures)"],
                      pictures=[("the agent playing", video.read_bytes())])


PAGES = (
    Page("mnist", "MNIST", "train-mnist", "Draw a digit (or upload a picture of one): the ten class probabilities, and what the model saw.",
         (Field("image", "picture", "image", drawing=True),), newest("mnist_cnn"), read_digit),
    Page("captcha", "Captcha", "train-captcha", "Upload a captcha, or leave the picture out to read a generated one.",
         (Field("image", "captcha (optional)", "image"), Field("seed", "seed of a generated captcha", "number", 0)),
         newest("captcha"), read_captcha),
    Page("word2vec", "word2vec", "train-word2vec", "Nearest neighbours of a word, and analogies a : b :: c : ?",
         (Field("word", "word"), Field("a", "a"), Field("b", "b"), Field("c", "c"), Field("top", "how many", "number", 8)),
         newest("word2vec", "vectors.bin"), neighbours),
    Page("imdb", "IMDB", "train-imdb", "Type a review: positive or negative, from the newest model of each kind.",
         (Field("review", "review", "textarea", "A wonderful film, with a moving story and great actors."),),
         imdb_models, read_review),
    Page("dcgan", "DCGAN", "train-dcgan", "A grid of generated images; a conditional model draws the class asked for.",
         (Field("label", "class (empty: all in turn)"), Field("count", "images", "number", 20), Field("seed", "seed", "number", 0)),
         newest("dcgan", "generator.keras"), draw_grid),
    Page("style", "Style transfer", "train-style", "A photo repainted by a trained fast network (one style per run).",
         (Field("image", "photo", "image"), Field("max_size", "longer side (pixels)", "number", 512),
          Field("preserve_color", "keep the photo's colours", "checkbox", False)),
         every_run("style_transfer"), stylize, model_label=style_name),
    Page("animegan", "AnimeGAN", "train-animegan", "A photo in, its anime version out, side by side.",
         (Field("image", "photo", "image"), Field("max_side", "longer side at most (pixels)", "number", 1024)),
         newest("animegan"), to_anime),
    Page("poetry", "Tang poems", "train-poetry", "Poems by form, as an acrostic (藏头诗) or continuing a first line.",
         (Field("form", "form", "select", "5-jueju", ("5-jueju", "7-jueju", "5-lushi", "7-lushi", "free")),
          Field("acrostic", "acrostic, one character a line"), Field("prefix", "first line"),
          Field("temperature", "temperature", "number", 0.8), Field("n", "poems", "number", 2), Field("seed", "seed", "number", 0)),
         newest("tang_poetry"), write_poems),
    Page("flappy", "Game agent", "train-flappy", "The trained agent playing a game on an evaluation seed it never trained on.",
         (Field("episode", "evaluation seed", "number", 0), Field("seconds", "at most (seconds)", "number", 20)),
         newest("flappy_dqn"), play_game),
)


def png_bytes(picture):
    """A page's picture as the bytes of a file the browser shows: a Pillow image as PNG, a GIF as it is."""
    if isinstance(picture, bytes):
        return picture
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()
