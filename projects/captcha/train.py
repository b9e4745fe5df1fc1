"""Training, evaluation, prediction and export for the captcha reader.

`train` fits the reader on an endless stream of generated captchas (or on a folder
of your own) with the shared callbacks (resumable, logged), then reads a held-out
set once: 10,000 fresh captchas from their own seed, or the folder's held-out part.
It writes the run's summary and a picture of captchas with what the model read,
mistakes framed in red. `evaluate` scores a saved model in depth (full-sequence and
per-character accuracy, the most confused characters); `predict` reads your files;
`export` writes an inference-only model (decoding built in) and checks that it
reloads and reads exactly as the trained one does.
"""

import collections
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import backend, callbacks, cli, images, runs, training
from common.cli import option
from common.errors import UserError
from projects.captcha import data
from projects.captcha.model import WIDTH_PER_STEP, alphabet_of, build_model, compile_model, reader, time_steps

PROJECT = "captcha"
TINY = {"train": 256, "validation": 64, "test": 128}  # captchas per epoch, validation and test with --tiny
INFERENCE_BATCH = 256


@dataclass
class Config(training.TrainingConfig):
    data_dir: str = option(
        None, "folder of your own captchas, labelled by file name (7Z8Y.png, 7Z8Y_0042.jpg); default: generated captchas"
    )
    epochs: int = option(26, "training epochs")
    batch_size: int = option(64, "captchas per training step")
    lr: float = option(2e-3, "peak learning rate")
    warmup: float = option(0.03, "share of all steps over which the learning rate rises linearly from 0 to --lr")
    clipnorm: float = option(5.0, "clip the gradients' global norm to this (0: off): CTC's early gradients can be huge")
    steps_per_epoch: int = option(250, "training steps per epoch on generated captchas, each on a fresh batch")
    alphabet: str = option(None, "characters to read (default: 0-9A-Z when generating; a folder's label characters)")
    length: str = option("4", "characters per generated captcha: N, or MIN-MAX for variable length (e.g. 4-6)")
    captcha_width: int = option(160, "width of generated captchas, pixels")
    captcha_height: int = option(60, "height of generated captchas, pixels")
    fonts: str = option(None, "comma-separated font files for generated captchas (default: the captcha package's own)")
    input_height: int = option(60, "captchas are scaled to this height, keeping their aspect ratio, for the network")
    rnn_units: int = option(128, "units per direction of the two bidirectional GRU layers")
    dropout: float = option(0.1, "dropout between the convolutions and the GRUs")
    val_size: int = option(2000, "generated validation captchas (fixed by the seed, the same every epoch)")
    test_size: int = option(10000, "freshly generated held-out captchas read once training has finished")
    val_split: float = option(0.1, "fraction of a folder held out for validation and the final score")
    emphasise: str = option("O0", "characters the training stream draws more often than the rest (the hardest to tell apart)")
    emphasis: float = option(8.0, "how many times as often the --emphasise characters are drawn while training (1: evenly)")
    workers: int = option(2, "threads drawing captchas ahead of the training step (0 or 1: none ahead)")
    mixed_precision: bool = option(
        None,
        "compute in float16 (GPU) / bfloat16 (CPU), weights kept in float32 (default: on where the hardware computes it "
        "natively: a GPU, or a CPU with AVX-512 BF16 or AMX, where it trains a fifth faster)",
        type=bool,
    )

    def __post_init__(self):
        super().__post_init__()
        data.parse_length(self.length)
        if self.alphabet is not None:
            data.check_alphabet(self.alphabet)
        data.check_fonts(self.fonts)
        cli.require_at_least_one(self, "steps_per_epoch", "captcha_width", "captcha_height", "rnn_units", "val_size")
        cli.require_not_negative(self, "seed", "test_size", "workers")
        if self.input_height < 16:
            raise UserError(f"--input-height must be at least 16, got {self.input_height}")
        if self.emphasis <= 0:
            raise UserError(f"--emphasis must be positive, got {self.emphasis}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.val_split < 1:
            raise UserError(f"--val-split must be in (0, 1), got {self.val_split}")


def captcha_spec(config, alphabet=None, input_size=None):
    """The generated captchas a config describes (a trained model's alphabet and input size win)."""
    low, high = data.parse_length(config.length)
    return data.CaptchaSpec(
        alphabet=alphabet or config.alphabet or data.DEFAULT_ALPHABET,
        min_length=low,
        max_length=high,
        width=config.captcha_width,
        height=config.captcha_height,
        fonts=data.check_fonts(config.fonts),
        input_size=tuple(input_size or data.input_size(config.captcha_width, config.captcha_height, config.input_height)),
    )


@dataclass
class Captchas:
    """What training needs: a training source, validation arrays, the alphabet, the input size, the held-out set."""

    train: object  # a data.CaptchaStream, or (x, y) arrays from a folder
    validation: tuple  # (x, y)
    alphabet: str
    input_size: tuple  # (width, height)
    held_out: object  # callable returning (x, texts), read once training has finished
    description: str


def split(count, fraction, seed):
    order = np.random.default_rng(seed).permutation(count)
    cut = min(count - 1, max(1, int(round(count * fraction))))
    return order[cut:], order[:cut]


def load(config):
    """The data a config asks for; fills in `config.alphabet` so the run's config.json records it."""
    if config.data_dir:
        folder = data.read_folder(config.data_dir, config.alphabet, input_height=config.input_height)
        if len(folder.texts) < 2:
            raise UserError(f"{config.data_dir} holds only one usable captcha; training needs at least two")
        config.alphabet = folder.alphabet
        max_length = max(map(len, folder.texts))
        check_fits(folder.input_size, max_length)
        y = data.encode(folder.texts, folder.alphabet, max_length)
        kept, held = split(len(y), config.val_split, config.seed)
        return Captchas(
            train=(folder.x[kept], y[kept]),
            validation=(folder.x[held], y[held]),
            alphabet=folder.alphabet,
            input_size=folder.input_size,
            held_out=lambda: (folder.x[held], [folder.texts[i] for i in held]),
            description=f"{config.data_dir}: {len(kept)} train, {len(held)} held-out captchas, "
            f"{len(folder.alphabet)} characters, up to {max_length} long",
        )

    spec = captcha_spec(config)
    config.alphabet = spec.alphabet
    check_fits(spec.input_size, spec.max_length)
    sizes = TINY if config.tiny else {
        "train": config.steps_per_epoch * config.batch_size, "validation": config.val_size, "test": config.test_size
    }
    steps = math.ceil(sizes["train"] / config.batch_size)
    x_val, y_val, _ = data.generate(spec, sizes["validation"], config.seed, data.VALIDATION_STREAM, label="validation captchas")

    def held_out():
        x, _, texts = data.generate(spec, sizes["test"], config.seed, data.TEST_STREAM, label="test captchas")
        return x, texts

    return Captchas(
        train=data.CaptchaStream(
            spec.emphasised(config.emphasise, config.emphasis), config.batch_size, steps, config.seed, config.workers
        ),
        validation=(x_val, y_val),
        alphabet=spec.alphabet,
        input_size=spec.input_size,
        held_out=held_out if sizes["test"] else None,
        description=f"generated{' (tiny)' if config.tiny else ''} {spec.width}x{spec.height} captchas of "
        f"{config.length} characters from {len(spec.alphabet)}: {steps * config.batch_size} fresh each epoch, "
        f"{len(y_val)} validation, {sizes['test']} held-out",
    )


def check_fits(input_size, max_length):
    """CTC needs a time step per character and a blank between repeats: 2 * length - 1 steps."""
    steps = time_steps(input_size[0])
    if steps < 2 * max_length - 1:
        raise UserError(
            f"labels of {max_length} characters need an input at least {(2 * max_length - 1) * WIDTH_PER_STEP} pixels wide, "
            f"the captchas scale to {input_size[0]}; raise --input-height"
        )


def model_input_size(model):
    """(width, height) the model reads."""
    height, width = model.input_shape[1:3]
    return width, height


# --- reading and scoring ----------------------------------------------------------------


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
    return data.decode(labels, alphabet), np.asarray(confidence, np.float64)


def timed_read(inference, x, alphabet):
    """`read`, plus captchas per second once compiled (both batch shapes are warmed up first)."""
    inference.predict(x[:INFERENCE_BATCH], verbose=0)
    if len(x) % INFERENCE_BATCH:
        inference.predict(x[: len(x) % INFERENCE_BATCH], verbose=0)
    started = time.perf_counter()
    texts, confidence = read(inference, x, alphabet)
    return texts, confidence, len(x) / max(time.perf_counter() - started, 1e-9)


def align(truth, reading):
    """Pairs (true character, read character) along a minimal edit path; "" marks a missing or extra one."""
    rows, cols = len(truth) + 1, len(reading) + 1
    cost = np.zeros((rows, cols), np.int32)
    cost[:, 0], cost[0, :] = np.arange(rows), np.arange(cols)
    for i in range(1, rows):
        for j in range(1, cols):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (truth[i - 1] != reading[j - 1]))
    pairs, i, j = [], rows - 1, cols - 1
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (truth[i - 1] != reading[j - 1]):
            pairs.append((truth[i - 1], reading[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            pairs.append((truth[i - 1], ""))
            i -= 1
        else:
            pairs.append(("", reading[j - 1]))
            j -= 1
    return pairs[::-1]


def score(truth, readings):
    """Full-sequence accuracy, character accuracy (1 - edits / characters), per character, confusions."""
    seen, right, confusions = collections.Counter(), collections.Counter(), collections.Counter()
    for text, reading in zip(truth, readings):
        for true, read_as in align(text, reading):
            if true:
                seen[true] += 1
                right[true] += true == read_as
            if true != read_as:
                confusions[(true, read_as)] += 1
    characters = max(1, sum(seen.values()))
    return {
        "sequence_accuracy": float(np.mean([t == r for t, r in zip(truth, readings)])) if truth else 0.0,
        "character_accuracy": max(0.0, 1.0 - sum(confusions.values()) / characters),
        "per_character": {c: right[c] / seen[c] for c in sorted(seen)},
        "confusions": confusions,
    }


def confusion_lines(confusions, count=10):
    shown = lambda c: c or "(nothing)"
    return [f"  {shown(t)} read as {shown(r)}: {n}" for (t, r), n in confusions.most_common(count)]


def prediction_grid(x, truth, readings, path, count=40, mistakes=10):
    """The first captchas, then (when there are any) some of the mistakes, each with what was read."""
    wrong = [i for i, (t, r) in enumerate(zip(truth, readings)) if t != r][:mistakes]
    chosen = [i for i in range(min(len(x), count - len(wrong))) if i not in wrong] + wrong
    captions = [readings[i] if truth[i] == readings[i] else f"{readings[i] or '-'} (true {truth[i]})" for i in chosen]
    marked = [truth[i] != readings[i] for i in chosen]
    picture = images.grid(x[chosen, ..., 0], columns=5, captions=captions, marked=marked, scale=1)
    return images.save_image(picture, path)


# --- commands ---------------------------------------------------------------------------


def train(args):
    started = time.time()
    config, resume_dir = cli.resolve_config(PROJECT, Config, args)
    captchas = load(config)
    run_dir = cli.open_run(PROJECT, config, resume_dir)
    print(f"{captchas.description}; input {captchas.input_size[0]}x{captchas.input_size[1]}; "
          f"backend {backend.name()}, {backend.describe_device()}")

    if isinstance(captchas.train, data.CaptchaStream):
        steps_per_epoch, fit_data = len(captchas.train), {"x": captchas.train}
    else:
        x_train, y_train = captchas.train
        steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
        fit_data = {"x": x_train, "y": y_train, "batch_size": config.batch_size}
    samples_per_epoch = steps_per_epoch * config.batch_size if "y" not in fit_data else len(fit_data["y"])

    scope, replicas = backend.distribution_scope(config.distribute)
    with scope:
        model = build_model(config, (captchas.input_size[1], captchas.input_size[0], 1), captchas.alphabet)
        compile_model(model, config, config.epochs * steps_per_epoch)
    validation = backend.fit_to_replicas(replicas, config.batch_size, *captchas.validation)
    if replicas > 1:
        print(f"training on {replicas} replicas")
        if "y" in fit_data:
            fit_data["x"], fit_data["y"] = backend.fit_to_replicas(replicas, config.batch_size, fit_data["x"], fit_data["y"])
    run_callbacks, throughput = callbacks.standard(
        run_dir, steps_per_epoch, samples_per_epoch, monitor="val_sequence_accuracy", patience=config.early_stopping
    )
    model.fit(
        **fit_data,
        epochs=config.epochs,
        validation_data=validation,
        validation_batch_size=INFERENCE_BATCH,
        callbacks=run_callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if callbacks.diverged(model, run_callbacks):
        raise UserError(f"training stopped early (loss became NaN); try a lower --lr. Run kept in {run_dir}")
    runs.save_model(model, run_dir / "model.keras")

    metrics, extra = {}, {}
    if captchas.held_out is not None and config.final_test:
        x_test, truth = captchas.held_out()
        readings, _, speed = timed_read(reader(model), x_test, captchas.alphabet)
        result = score(truth, readings)
        metrics = {"test_sequence_accuracy": result["sequence_accuracy"], "test_character_accuracy": result["character_accuracy"]}
        extra = {"test_captchas": len(truth), "inference_captchas_per_second": round(speed, 1)}
        prediction_grid(x_test, truth, readings, run_dir / "samples" / "test_predictions.png")
        print(f"held-out {len(truth)} captchas: full-sequence accuracy {result['sequence_accuracy']:.4f}, "
              f"character accuracy {result['character_accuracy']:.4f}; reads {speed:.0f} captchas/s")
    cli.finish_run(
        run_dir,
        config,
        started,
        throughput,
        metrics,
        training_captchas=config.epochs * samples_per_epoch,
        resumed=resume_dir is not None,
        replicas=replicas,
        parameters=model.count_params(),
        **extra,
    )
    print(f"run saved in {run_dir}")
    return run_dir


def _trained_config(saved):
    fields = ("length", "captcha_width", "captcha_height", "fonts", "seed", "tiny", "test_size", "data_dir")
    return Config(**{k: saved[k] for k in fields if k in saved})


def evaluate(args):
    path = runs.model_path(PROJECT, args.model)
    model = runs.load_model(path)
    alphabet, size = alphabet_of(model), model_input_size(model)
    if args.data_dir:
        folder = data.read_folder(args.data_dir, alphabet, size)
        x, truth, source = folder.x, folder.texts, f"{args.data_dir}, {len(folder.texts)} captchas"
    else:
        config = _trained_config(runs.run_config(path))
        if config.data_dir:
            raise UserError(
                f"this model was trained on {config.data_dir}; pass --data-dir with a folder of labelled test captchas"
            )
        count = args.count if args.count is not None else (TINY["test"] if config.tiny else config.test_size or 10000)
        if count < 1:
            raise UserError(f"--count must be at least 1, got {count}")
        seed = config.seed if args.seed is None else args.seed
        spec = captcha_spec(config, alphabet, size)
        x, _, truth = data.generate(spec, count, seed, data.TEST_STREAM, label="test captchas")
        source = f"{count} generated held-out captchas (seed {seed})"

    inference, decoding = inference_model(model, args.beam_width)
    readings, _ = read(inference, x, alphabet)
    result = score(truth, readings)
    per_character = pd.Series(result["per_character"], name="accuracy").sort_values(kind="stable")
    print(f"{source}, {decoding}:")
    print(f"full-sequence accuracy {result['sequence_accuracy']:.4f} ({sum(t != r for t, r in zip(truth, readings))} wrong)")
    print(f"character accuracy {result['character_accuracy']:.4f}")
    print("\nleast accurate characters:\n" + per_character.head(10).to_string(float_format=lambda v: f"{v:.4f}"))
    print("\nmost confused characters:\n" + ("\n".join(confusion_lines(result["confusions"])) or "  none"))

    out_dir = path.parent
    grid = prediction_grid(x, truth, readings, out_dir / "samples" / "evaluation.png")
    runs.write_json(
        out_dir / "evaluation.json",
        {
            "source": source,
            "decoding": decoding,
            "captchas": len(truth),
            "sequence_accuracy": result["sequence_accuracy"],
            "character_accuracy": result["character_accuracy"],
            "per_character_accuracy": {c: round(a, 4) for c, a in result["per_character"].items()},
            "most_confused": [{"true": t, "read": r, "count": n} for (t, r), n in result["confusions"].most_common(20)],
            "model": str(path),
        },
    )
    print(f"\nsaved {out_dir / 'evaluation.json'} and {grid}")


def predict(args):
    path = runs.model_path(PROJECT, args.model)
    prepared, kept, failures, stretched = [], [], 0, 0
    model = runs.load_model(path)
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
        data.warn(f"{stretched} images have another shape than the {size[0]}x{size[1]} the model reads; they were stretched")
    if prepared:
        texts, confidence = read(inference_model(model, args.beam_width)[0], np.stack(prepared), alphabet_of(model))
        for file, text, probability in zip(kept, texts, confidence):
            print(f"{file}\t{text}\t{probability:.4f}")
    return 1 if failures else 0


def export(args):
    path = runs.model_path(PROJECT, args.model)
    model = runs.load_model(path)
    out = Path(args.out) if args.out else path.parent / "inference.keras"
    if out.suffix != ".keras":
        raise UserError(f"--out must name a .keras file, got {out}")
    if out.resolve() == path.resolve():
        raise UserError(f"--out {out} is the model being exported; choose another file")
    out.parent.mkdir(parents=True, exist_ok=True)
    inference, decoding = inference_model(model, args.beam_width)
    runs.save_model(inference, out)

    # The promise of an export: the file alone reads exactly what the trained model reads.
    x, _, _ = data.CaptchaSpec(alphabet=alphabet_of(model), input_size=model_input_size(model)).make(64, 0, data.TEST_STREAM)
    expected, expected_confidence = read(inference, x, alphabet_of(model))
    reloaded = runs.load_model(out)
    got, got_confidence = read(reloaded, x, alphabet_of(reloaded))
    if got != expected or not np.allclose(got_confidence, expected_confidence, rtol=1e-4, atol=1e-6):
        raise UserError(f"{out} does not read like {path} after reloading; the export is not to be trusted")
    print(f"exported {out} ({decoding}); reloaded, it reads 64 test captchas exactly as {path.name} does")
    return out
