"""Command line of the IMDB sentiment models: `python -m projects.imdb_sentiment train|evaluate|predict|bench|tune`."""

from common import cli, tune
from common.errors import UserError
from projects.imdb_sentiment import PROJECT
from projects.imdb_sentiment.train import Config


def add_model_flag(parser):
    parser.add_argument(
        "--model",
        help="run folder of any kind, or the model.keras, model.json or ensemble.json in one (default: the newest trained model)",
    )


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
    parser.add_argument("--embeddings", help="word vectors for the LSTM (default: the newest word2vec run's, trained first if there is none)")


# What `tune` searches by default, around the recipe the flags describe (scored on the validation split).
SEARCH_SPACE = {
    "lr": tune.Range(5e-4, 5e-3, log=True),
    "batch_size": tune.Choice((64, 128, 256)),
    "dropout": tune.Range(0.1, 0.5),
    "embedding_dropout": tune.Range(0.1, 0.4),
    "weight_decay": tune.Choice((0.0, 1e-2, 1e-1)),
}


def for_the_lstm_only(command, refused):
    """`command` (help, flags, function), refusing in one line the kinds `refused(args)` names (None: none)."""
    description, add_flags, run = command

    def run_checked(args):
        kind = refused(args)
        if kind is not None:
            chooses = "its weight" if kind == "ensemble" else "its C on the validation split"
            raise UserError(f"{'--resume' if args.command == 'train' else 'tune'} applies to the LSTM (--kind lstm); "
                            f"--kind {kind} trains in one go and chooses {chooses} itself")
        return run(args)

    return description, add_flags, run_checked


def other_kind(args):
    """The kind a command asks for when it is not the LSTM."""
    kind = getattr(args, "kind", "lstm")
    return None if kind == "lstm" else kind


COMMANDS = {
    "train": for_the_lstm_only(
        cli.train_command(
            PROJECT, Config, "projects.imdb_sentiment.train:train",
            "train a sentiment model: --kind bow, tfidf, nbsvm, lstm (the default) or ensemble (defaults: the README's recipes)",
        ),
        lambda args: other_kind(args) if getattr(args, "resume", None) else None,
    ),
    "evaluate": (
        "accuracy, precision, recall, F1 and confusion matrix on the whole test set (linear kinds: the n-grams that weigh most)",
        add_evaluate_flags, "projects.imdb_sentiment.train:evaluate",
    ),
    "predict": ("label your own reviews positive or negative", add_predict_flags, "projects.imdb_sentiment.predict:predict"),
    "bench": (
        "train every kind on IMDB in one run (the LSTM from word2vec vectors), write the README table and pictures",
        add_bench_flags, "projects.imdb_sentiment.bench:bench",
    ),
    "tune": for_the_lstm_only(
        tune.command(PROJECT, Config, "projects.imdb_sentiment.train:train", SEARCH_SPACE, "val_accuracy"), other_kind
    ),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.imdb_sentiment", __doc__.splitlines()[0], COMMANDS)
