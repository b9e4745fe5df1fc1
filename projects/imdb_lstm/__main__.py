"""Command line of the IMDB sentiment LSTM: `python -m projects.imdb_lstm train|evaluate|predict|bench|tune`."""

from common import cli, tune
from projects.imdb_lstm import PROJECT
from projects.imdb_lstm.train import Config


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or .keras file beside its vocabulary.txt (default: the newest trained model)")


def add_evaluate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--reviews", help="folder of labelled reviews to score: its test/ part, or all its pos/ and neg/")
    parser.add_argument("--data-dir", help="folder holding aclImdb_v1.tar.gz or aclImdb/ (scores the IMDB test set)")
    parser.add_argument("--tiny", action="store_true", help="score the tiny generated test set")


def add_predict_flags(parser):
    add_model_flag(parser)
    parser.add_argument("texts", nargs="*", help='reviews, one per argument; "-" reads standard input, one review per line')
    parser.add_argument("--file", action="append", help="a text file (one review per line) or a folder (one review per .txt file); repeatable")


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder holding aclImdb_v1.tar.gz or aclImdb/")
    parser.add_argument("--embeddings", help="word vectors to use (default: the newest word2vec run's, trained first if there is none)")


# What `tune` searches by default, around the recipe the flags describe (scored on the validation split).
SEARCH_SPACE = {
    "lr": tune.Range(5e-4, 5e-3, log=True),
    "batch_size": tune.Choice((64, 128, 256)),
    "dropout": tune.Range(0.1, 0.5),
    "embedding_dropout": tune.Range(0.1, 0.4),
    "weight_decay": tune.Choice((0.0, 1e-2, 1e-1)),
}

COMMANDS = {
    "train": cli.train_command(
        PROJECT, Config, "projects.imdb_lstm.train:train",
        "train the sentiment LSTM (defaults: the recipe that reaches the README's figures)",
    ),
    "evaluate": (
        "accuracy, precision, recall, F1 and confusion matrix on the whole test set",
        add_evaluate_flags, "projects.imdb_lstm.train:evaluate",
    ),
    "predict": ("label your own reviews positive or negative", add_predict_flags, "projects.imdb_lstm.predict:predict"),
    "bench": (
        "train the default recipe from word2vec and from random vectors, write the README table",
        add_bench_flags, "projects.imdb_lstm.bench:bench",
    ),
    "tune": tune.command(PROJECT, Config, "projects.imdb_lstm.train:train", SEARCH_SPACE, "val_accuracy"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.imdb_lstm", __doc__.splitlines()[0], COMMANDS)
