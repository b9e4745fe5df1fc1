"""Training and evaluation of the Tang-poetry LSTM.

`train` reads and cleans the poems (data.py), builds the vocabulary from the
training poems, fits the model with `model.fit` and the shared callbacks
(resumable with --resume, logged, best model on validation loss), reports the
validation perplexity per character after every epoch, keeps the best epoch's
weights and scores the test poems once. Perplexity is per *character*: the
punctuation, line breaks and END that a regulated form dictates are left out, as
they would flatter any model. `evaluate` scores a saved model beside a Kneser-Ney
n-gram model fitted on the same training poems with the same vocabulary.
"""

import math
import sys
import time
from dataclasses import dataclass


from common import cli, runs
from common.config import FitConfig, check_choice, distribute_option, option, require_at_least_one, require_fraction
from common.errors import UserError
from projects.tang_poetry import PROJECT

SCRIPTS = ("traditional", "simplified")


@dataclass(frozen=True)
class Config(FitConfig):
    SEVERAL_PROCESSES = True  # --distribute spans a group of processes too (common.distributed)

    data_dir: str = option(None, "folder holding chinese-poetry-tang.tar.gz or chinese-poetry/quantangshi/ (default: $DATA_DIR, then the Keras cache)")
    poems: str = option(None, "your own poems instead: a UTF-8 text file of one poem per line, or a folder of JSON files like the Tang ones")
    script: str = option("traditional", "characters to train on: traditional (as the sources are) or simplified (converted with OpenCC)",
                         choices=SCRIPTS)
    min_count: int = option(2, "poems with a character found fewer times than this in the whole collection are left out")
    vocabulary_size: int = option(3000, "most frequent training characters kept; the rest share the unknown token")
    max_length: int = option(65, "tokens of a poem trained on (65: START and a seven-character lüshi with its punctuation)")
    embedding_dim: int = option(128, "dimensions of the character vectors")
    units: int = option(256, "units of each LSTM layer")
    layers: int = option(1, "LSTM layers")
    dropout: float = option(0.1, "dropout after each LSTM layer")
    epochs: int = option(5, "training epochs")
    batch_size: int = option(64, "poems per training step")
    lr: float = option(3e-3, "peak learning rate")
    clipnorm: float = option(5.0, "clip the gradients' global norm to this (0: off)")
    val_split: float = option(0.05, "share of the poems held out for validation, and as many again for the test")
    distribute: bool = distribute_option()

    def __post_init__(self):
        super().__post_init__()
        check_choice("--script", self.script, SCRIPTS)
        require_at_least_one(self, "min_count", "vocabulary_size", "max_length", "embedding_dim", "units", "layers")
        require_fraction(self, "dropout")
        if not self.val_split < 0.5:
            raise UserError(f"--val-split must be below 0.5 (as many poems again are held out for the test), got {self.val_split}")


# --tiny's smaller recipe under the flags: a few hundred short generated poems train in seconds.
TINY = {"vocabulary_size": 100, "max_length": 25, "embedding_dim": 16, "units": 48, "layers": 1, "dropout": 0.0,
        "epochs": 12, "batch_size": 16, "lr": 1e-2, "warmup": 0.0}


def preset(chosen):
    return TINY if chosen.get("tiny") else {}


def train(config, resume_dir=None):
    """Train the LSTM `config` describes in a new run folder (or continue `resume_dir`); returns the folder."""
    from common import backend, callbacks, distributed
    from projects.tang_poetry import data, model as network

    started = time.time()
    corpus = data.load(config)
    vocabulary = data.Vocabulary.build(corpus.train, config.vocabulary_size)
    x, y, w = data.sequences(corpus.train, vocabulary, config.max_length)
    validation = data.sequences(corpus.validation, vocabulary, config.max_length)
    run_dir = cli.open_run(PROJECT, config, resume_dir, resolved={"vocabulary": len(vocabulary), "corpus": corpus.counts})
    vocabulary.save(run_dir / data.VOCABULARY_FILE)
    print(f"{corpus.counts['read']:,} poems read, {corpus.counts['kept']:,} kept ({corpus.counts['odd_characters']:,} with odd or "
          f"missing characters, {corpus.counts['rare_characters']:,} with rare ones, {corpus.counts['duplicates']:,} duplicates "
          f"left out); {len(corpus.train):,} training, {len(corpus.validation):,} validation, {len(corpus.test):,} test poems; "
          f"vocabulary {len(vocabulary):,}; backend {backend.name()}, {backend.describe_device()}")

    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    scope, replicas = backend.distribution_scope(config.distribute)
    with scope:
        model = compiled_model(len(vocabulary), config, config.epochs * steps_per_epoch)
    if replicas > 1:
        print(f"training on {replicas} replicas")
        x, y, w = backend.fit_to_replicas(replicas, config.batch_size, x, y, w)
        validation = backend.fit_to_replicas(replicas, config.batch_size, *validation)
    has_validation = len(validation[0]) > 0
    run_callbacks, throughput = callbacks.standard(run_dir, steps_per_epoch, len(x), monitor="val_loss" if has_validation else None,
                                                   patience=config.early_stopping)
    training_data = {"x": x, "y": y, "sample_weight": w, "batch_size": config.batch_size}
    if config.distribute:  # each process reads its share of every global batch, in one seeded order
        shares, steps, feeding = distributed.fit_input((x, y, w), config.batch_size, config.epochs, config.seed, model)
        training_data = {"x": shares, "steps_per_epoch": steps, "shuffle": False}
        run_callbacks = feeding + run_callbacks
    model.fit(**training_data, epochs=config.epochs, validation_data=validation if has_validation else None,
              callbacks=run_callbacks, verbose=1 if sys.stdout.isatty() else 2)
    if callbacks.diverged(model, run_callbacks):
        raise UserError(f"training stopped early (loss became NaN); try a lower --lr. Run kept in {run_dir}")
    backend.localize(model)
    if (run_dir / "best.keras").is_file():
        model.load_weights(run_dir / "best.keras")
    runs.save_model(model, run_dir / "model.keras", PROJECT)

    metrics = {}
    if has_validation:
        metrics["val_perplexity"] = network.perplexity(model, *validation[:2])
    if config.final_test and corpus.test:
        metrics["test_perplexity"] = network.perplexity(model, *data.sequences(corpus.test, vocabulary, config.max_length)[:2])
    cli.finish_run(run_dir, config, started, throughput, metrics, resumed=resume_dir is not None, corpus=corpus.counts,
                   vocabulary=len(vocabulary), parameters=model.count_params())
    print("; ".join(f"{name.replace('_', ' ')} {value:.2f}" for name, value in metrics.items()))
    print(f"run saved in {run_dir}")
    return run_dir


def compiled_model(vocabulary_size, config, total_steps):
    import keras

    from common import training
    from projects.tang_poetry.model import CharacterPerplexity, build_model

    return training.compiled(
        build_model(vocabulary_size, config), optimizer=training.build_optimizer(config, total_steps),
        loss="sparse_categorical_crossentropy", metrics=[CharacterPerplexity()],
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def evaluate(args):
    """Perplexity per character of a saved model on its test poems, beside the best Kneser-Ney n-gram model (orders 3-5)."""
    from projects.tang_poetry import data, generate, ngram
    from projects.tang_poetry.model import perplexity

    trained = generate.load(args.model)
    # The test poems of the data the model was trained on, or of --poems / --data-dir.
    settings = {k: v for k, v in trained.settings.items() if k in Config.__dataclass_fields__ and k != "out"}
    if args.poems or args.data_dir:
        settings.update(tiny=False, poems=args.poems, data_dir=args.data_dir)
    config = Config(**settings)
    corpus = data.load(config)
    vocabulary = trained.vocabulary
    x, y, _ = data.sequences(corpus.test, vocabulary, config.max_length)
    lstm = perplexity(trained.model, x, y)
    encode = lambda poems: [vocabulary.encode(p)[: config.max_length + 1] for p in poems]
    started = time.time()
    best, by_order = ngram.best_order(encode(corpus.train), encode(corpus.validation), len(vocabulary))
    baseline = best.perplexity(encode(corpus.test))
    print(f"test poems {len(corpus.test):,}: LSTM perplexity per character {lstm:.2f}; Kneser-Ney {best.order}-gram {baseline:.2f} "
          f"(validation by order: {', '.join(f'{k}: {v:.2f}' for k, v in by_order.items())}; fitted in {time.time() - started:.0f} s); "
          f"LSTM {100 * (1 - lstm / baseline):+.1f}% against it")
    result = {"test_poems": len(corpus.test), "lstm_perplexity": lstm, "ngram_order": best.order, "ngram_perplexity": baseline,
              "ngram_validation_perplexity": by_order, "model": str(trained.path)}
    runs.write_json(trained.path.parent / "evaluation.json", result)
    return result
