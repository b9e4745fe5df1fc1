"""Command line of word2vec: `python -m projects.word2vec train|evaluate|neighbours|bench`."""

from common import cli
from projects.word2vec import PROJECT
from projects.word2vec.train import Config, recipe_defaults


def add_vectors_flag(parser):
    parser.add_argument("--vectors", help="run folder or vectors file, .bin or .txt (default: the newest run's)")


def add_evaluate_flags(parser):
    add_vectors_flag(parser)
    parser.add_argument("--probe", action="append", help="word whose neighbours to list (repeatable)")


def add_neighbours_flags(parser):
    add_vectors_flag(parser)
    parser.add_argument("words", nargs="+", help="words to look up")
    parser.add_argument("--top", type=cli.count, default=10, help="neighbours per word (default: 10)")


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder holding aclImdb_v1.tar.gz or aclImdb/")


COMMANDS = {
    "train": cli.train_command(
        PROJECT, Config, "projects.word2vec.train:train", "train word vectors (defaults: the recipe of the README's figures)",
        defaults=recipe_defaults,
    ),
    "evaluate": (
        "score vectors on analogies, WordSim353 and SimLex-999; list neighbours",
        add_evaluate_flags,
        "projects.word2vec.train:evaluate",
    ),
    "neighbours": ("nearest words to the ones given", add_neighbours_flags, "projects.word2vec.vectors:neighbours"),
    "bench": (
        "train gensim's engine and the Keras engine on IMDB, write the README table",
        add_bench_flags,
        "projects.word2vec.bench:bench",
    ),
}


def main(argv=None):
    cli.run_commands("python -m projects.word2vec", "word2vec CBOW with negative sampling, in Keras and in gensim", COMMANDS, argv)


if __name__ == "__main__":
    main()
