"""What a trained captcha reader does for its users: read image files, and export itself.

`predict` reads your captcha images, files or folders, and prints one line per file:
path, text, confidence. `export` writes an inference-only model with the CTC
decoding built in (never over a file that exists, unless --overwrite), then reloads
it and checks that it reads exactly as the trained model does. `read` is how every
command (training's final test and `evaluate` too) runs a model over captchas.
"""

import sys
import time

import numpy as np

from common import images, runs
from common.errors import UserError, warn
from projects.captcha import PROJECT, data
from projects.captcha.labels import decode
from projects.captcha.model import alphabet_of, load, model_input_size, reader

INFERENCE_BATCH = 256


def predict(args):
    path = runs.model_path(PROJECT, args.model)
    prepared, kept, failures, stretched = [], [], 0, 0
    model = load(path)
    size = model_input_size(model)
    for file in images.expand_inputs(args.inputs):
        try:
            image = images.open_image(file, "L")
        except UserError as error:
            message = str(error)
            print(f"error: {message if message.startswith(str(file)) else f'{file}: {message}'}", file=sys.stderr)
            failures += 1
            continue
        stretched += abs(image.width / image.height / (size[0] / size[1]) - 1) > 0.1
        prepared.append(data.prepare(image, size))
        kept.append(file)
    if stretched:
        warn(f"{stretched} images have another shape than the {size[0]}x{size[1]} the model reads; they were stretched")
    if prepared:
        texts, confidence = read(inference_model(model, args.beam_width)[0], np.stack(prepared), alphabet_of(model))
        for file, text, probability in zip(kept, texts, confidence):
            print(f"{file}\t{text}\t{probability:.4f}")
    return 1 if failures else 0


def export(args):
    path = runs.model_path(PROJECT, args.model)
    out = runs.export_file(path, args.out, "inference.keras", args.overwrite)  # before any work: the user's files stay
    model = load(path)
    inference, decoding = inference_model(model, args.beam_width)
    runs.save_model(inference, out, PROJECT)

    # The promise of an export: the file alone reads exactly what the trained model reads.
    x, _, _ = data.CaptchaSpec(alphabet=alphabet_of(model), input_size=model_input_size(model)).make(64, 0, data.TEST_STREAM)
    expected, expected_confidence = read(inference, x, alphabet_of(model))
    reloaded = load(out)
    got, got_confidence = read(reloaded, x, alphabet_of(reloaded))
    if got != expected or not np.allclose(got_confidence, expected_confidence, rtol=1e-4, atol=1e-6):
        raise UserError(f"{out} does not read like {path} after reloading; the export is not to be trusted")
    print(f"exported {out} ({decoding}); reloaded, it reads 64 test captchas exactly as {path.name} does")
    return out


def inference_model(model, beam_width=None):
    """`model.reader`, with a clear message for a negative beam width; returns (model, how it decodes)."""
    if beam_width is not None and beam_width < 0:
        raise UserError(f"--beam-width must be 0 (greedy) or more, got {beam_width}")
    inference = reader(model, beam_width)
    width = inference.get_layer("decoder").beam_width
    return inference, f"beam search, width {width}" if width else "greedy decoding"


def read(inference, x, alphabet):
    """Texts and confidences for uint8 images (N, height, width, 1)."""
    labels, confidence = inference.predict(x, batch_size=INFERENCE_BATCH, verbose=0)
    return decode(labels, alphabet), np.asarray(confidence, np.float64)


def character_confidences(inference, x):
    """For each image, the confidence of each character of its greedy reading (a list of floats)."""
    import keras

    logits = keras.Model(inference.inputs, inference.get_layer("characters").output)
    return [confidences for _, confidences in map(greedy_characters, softmax(logits.predict(x, batch_size=INFERENCE_BATCH, verbose=0)))]


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def greedy_characters(probabilities):
    """Greedy CTC decoding of one image's frame probabilities (steps, classes; class 0 the blank):
    (the classes read, each one's confidence). Runs of one class are one character, as sure as
    the surest frame of its run."""
    best = probabilities.argmax(axis=-1)
    classes, confidences = [], []
    for step, label in enumerate(best):
        if label == 0:
            continue
        if step and best[step - 1] == label:
            confidences[-1] = max(confidences[-1], float(probabilities[step, label]))
        else:
            classes.append(int(label))
            confidences.append(float(probabilities[step, label]))
    return classes, confidences


def timed_read(inference, x, alphabet):
    """`read`, plus captchas per second once compiled (both batch shapes are warmed up first)."""
    inference.predict(x[:INFERENCE_BATCH], verbose=0)
    if len(x) % INFERENCE_BATCH:
        inference.predict(x[: len(x) % INFERENCE_BATCH], verbose=0)
    started = time.perf_counter()
    texts, confidence = read(inference, x, alphabet)
    return texts, confidence, len(x) / max(time.perf_counter() - started, 1e-9)
