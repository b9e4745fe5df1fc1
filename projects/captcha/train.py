"""Training and evaluation of the captcha reader.

`train` fits the reader on an endless stream of generated captchas (or on a folder
of your own) with the shared callbacks (resumable, logged), then reads a held-out
set once: 10,000 fresh captchas from their own seed, or the folder's held-out part.
It writes the run's summary and a picture of captchas with what the model read,
mistakes framed in red. `evaluate` scores a saved model in depth (full-sequence and
per-character accuracy, the most confused characters).
"""

import collections
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from common import cli, images, runs
from common.config import FitConfig, distribute_option, mixed_precision_option, option, require_at_least_one, require_not_negative
from common.errors import UserError
from projects.captcha import PROJECT
from projects.captcha.labels import check_alphabet, parse_length


@dataclass(frozen=True)
class Config(FitConfig):
    SEVERAL_PROCESSES = True  # --distribute spans a group of processes too (common.distributed)
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
    mixed_precision: bool = mixed_precision_option(
        None,
        "compute in float16 (GPU) / bfloat16 (CPU), weights kept in float32 (default: on where the hardware computes it "
        "natively: a GPU, or a CPU with AVX-512 BF16 or AMX, where it trains a fifth faster)",
    )
    distribute: bool = distribute_option()

    def __post_init__(self):
        super().__post_init__()
        parse_length(self.length)
        if self.alphabet is not None:
            check_alphabet(self.alphabet)
        require_at_least_one(self, "steps_per_epoch", "captcha_width", "captcha_height", "rnn_units", "val_size")
        require_not_negative(self, "seed", "test_size", "workers")
        if self.input_height < 16:
            raise UserError(f"--input-height must be at least 16, got {self.input_height}")
        if self.emphasis <= 0:
            raise UserError(f"--emphasis must be positive, got {self.emphasis}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.val_split < 1:
            raise UserError(f"--val-split must be in (0, 1), got {self.val_split}")


def train(config, resume_dir=None):
    """Train a reader as `config` asks (or continue the run in `resume_dir`); returns the run folder."""
    # Keras (and TensorFlow) load here, not at the top, so that `--help` answers without them.
    from common import backend, callbacks
    from projects.captcha import data
    from projects.captcha.model import build_model, compile_model
    from projects.captcha.predict import INFERENCE_BATCH

    started = time.time()
    captchas = data.load(config)  # before the run folder: bad data leaves no run behind
    run_dir = cli.open_run(PROJECT, config, resume_dir, resolved=captchas.resolved())
    print(f"{captchas.description}; input {captchas.input_size[0]}x{captchas.input_size[1]}; "
          f"backend {backend.name()}, {backend.describe_device()}")

    scope, replicas = backend.distribution_scope(config.distribute)
    if replicas > 1:
        print(f"training on {replicas} replicas")
    fit_data, steps_per_epoch, samples_per_epoch = fit_inputs(captchas.train, config.batch_size, replicas)
    with scope:
        model = build_model(config, (captchas.input_size[1], captchas.input_size[0], 1), captchas.alphabet)
        compile_model(model, config, config.epochs * steps_per_epoch)
    run_callbacks, throughput = callbacks.standard(
        run_dir, steps_per_epoch, samples_per_epoch, monitor="val_sequence_accuracy", patience=config.early_stopping
    )
    if config.distribute:  # each process keeps its share of every batch (common.distributed)
        fit_data, feeding = distributed_inputs(fit_data, config, model)
        run_callbacks = feeding + run_callbacks
    model.fit(
        **fit_data,
        epochs=config.epochs,
        validation_data=backend.fit_to_replicas(replicas, config.batch_size, *captchas.validation),
        validation_batch_size=INFERENCE_BATCH,
        callbacks=run_callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if callbacks.diverged(model, run_callbacks):
        raise UserError(f"training stopped early (loss became NaN); try a lower --lr. Run kept in {run_dir}")
    backend.localize(model)
    runs.save_model(model, run_dir / "model.keras", PROJECT)

    metrics, extra = {}, {}
    if captchas.held_out is not None and config.final_test:
        metrics, extra = final_test(model, captchas, run_dir)
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


def evaluate(args):
    """Score a saved reader on its run's held-out captchas (generated again) or a folder of labelled ones."""
    import pandas as pd

    from projects.captcha import data
    from projects.captcha.model import alphabet_of, load, model_input_size
    from projects.captcha.predict import inference_model, read

    path = runs.model_path(PROJECT, args.model)
    model = load(path)
    alphabet, size = alphabet_of(model), model_input_size(model)
    skipped = 0
    if args.data_dir:
        folder = data.read_folder(args.data_dir, alphabet, size)
        x, truth, skipped = folder.x, folder.texts, folder.skipped
        source = f"{args.data_dir}, {len(folder.texts)} captchas" + (f" ({skipped} of its files skipped)" if skipped else "")
    else:
        x, truth, source = held_out_again(path, alphabet, size, args.count, args.seed)

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
    return 1 if skipped else 0  # the rest were scored, but not every file the user gave


def fit_inputs(train_data, batch_size, replicas):
    """`model.fit`'s data arguments, steps per epoch and training captchas per epoch,
    for the generated stream or a folder's (x, y) arrays."""
    from common import backend

    if not isinstance(train_data, tuple):
        return {"x": train_data}, len(train_data), len(train_data) * batch_size
    x, y = backend.fit_to_replicas(replicas, batch_size, *train_data)
    return {"x": x, "y": y, "batch_size": batch_size}, math.ceil(len(train_data[1]) / batch_size), len(train_data[1])


def distributed_inputs(fit_data, config, model):
    """`fit_data` as every worker's share of each batch: (model.fit's data arguments, callbacks to add)."""
    from common import distributed

    if "y" in fit_data:  # a folder's captchas
        shares, steps, feeding = distributed.fit_input((fit_data["x"], fit_data["y"]), config.batch_size, config.epochs,
                                                       config.seed, model)
    else:  # the generated stream: every worker draws the same batch and keeps its part
        shares, steps, feeding = distributed.fit_shares(fit_data["x"], config.epochs, model)
    return {"x": shares, "steps_per_epoch": steps, "shuffle": False}, feeding


def final_test(model, captchas, run_dir):
    """Read the held-out captchas once: the summary's metrics and figures, and a picture of the readings."""
    from projects.captcha.model import reader
    from projects.captcha.predict import timed_read

    x_test, truth = captchas.held_out()
    readings, _, speed = timed_read(reader(model), x_test, captchas.alphabet)
    result = score(truth, readings)
    prediction_grid(x_test, truth, readings, run_dir / "samples" / "test_predictions.png")
    print(f"held-out {len(truth)} captchas: full-sequence accuracy {result['sequence_accuracy']:.4f}, "
          f"character accuracy {result['character_accuracy']:.4f}; reads {speed:.0f} captchas/s")
    metrics = {"test_sequence_accuracy": result["sequence_accuracy"], "test_character_accuracy": result["character_accuracy"]}
    return metrics, {"test_captchas": len(truth), "inference_captchas_per_second": round(speed, 1)}


def held_out_again(path, alphabet, size, count=None, seed=None):
    """The held-out captchas of the run the model at `path` was trained in, generated again
    (or `count` of them, or from another `seed`): (x, texts, where they come from)."""
    from projects.captcha import data

    saved = runs.run_config(path)
    fields = ("length", "captcha_width", "captcha_height", "fonts", "seed", "tiny", "test_size", "data_dir")
    config = Config(**{k: saved[k] for k in fields if k in saved})
    if config.data_dir:
        raise UserError(f"this model was trained on {config.data_dir}; pass --data-dir with a folder of labelled test captchas")
    count = count if count is not None else (data.TINY["test"] if config.tiny else config.test_size or 10000)
    seed = config.seed if seed is None else seed
    fonts = runs.run_config(path, "resolved").get("fonts")
    if fonts is None:  # a run saved before config.json recorded what it resolved
        fonts = data.check_fonts(config.fonts)
    spec = data.captcha_spec(config, fonts, alphabet, size)
    x, _, truth = data.generate(spec, count, seed, data.TEST_STREAM, label="test captchas")
    return x, truth, f"{count} generated held-out captchas (seed {seed})"


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
