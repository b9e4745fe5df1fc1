"""Command line of word2vec: `python -m projects.word2vec train|evaluate|neighbours|bench`.

`bench` tokenises the IMDB corpus once, trains gensim's engine and then this
project's Keras engine on it with the same hyperparameters, and writes both
engines' scores and throughput side by side into this project's README.
"""

import argparse
import shutil
from importlib import metadata
from pathlib import Path

from common import cli, runs
from common.report import update_readme
from projects.word2vec import train as word2vec

HERE = Path(__file__).resolve().parent


def add_vectors_flag(parser):
    parser.add_argument("--vectors", help="run folder or vectors file, .bin or .txt (default: the newest run's)")


def add_evaluate_flags(parser):
    add_vectors_flag(parser)
    parser.add_argument("--probe", action="append", help="word whose neighbours to list (repeatable)")


def add_neighbours_flags(parser):
    add_vectors_flag(parser)
    parser.add_argument("words", nargs="+", help="words to look up")
    parser.add_argument("--top", type=int, default=10, help="neighbours per word (default: 10)")


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder holding aclImdb_v1.tar.gz or aclImdb/")


def bench(args):
    config = word2vec.Config(data_dir=args.data_dir)
    documents = word2vec.load_documents(config)
    summaries = {}
    for engine in ("gensim", "keras"):
        run_dir = word2vec.train(argparse.Namespace(engine=engine, data_dir=args.data_dir), documents)
        summaries[engine] = (run_dir, runs.read_json(run_dir / "summary.json"))
    (HERE / "assets").mkdir(exist_ok=True)
    shutil.copy(summaries["keras"][0] / "samples" / "neighbours.png", HERE / "assets" / "neighbours.png")
    reference = summaries["gensim"][1]

    def row(engine):
        run_dir, summary = summaries[engine]
        m, ref = summary["metrics"], reference["metrics"]
        speed = summary["train_samples_per_second"]
        return (
            f"| {engine} | {m['analogy_accuracy']:.3f} ({m['analogy_accuracy'] / ref['analogy_accuracy']:.0%}) "
            f"| {m['wordsim353_spearman']:.3f} ({m['wordsim353_spearman'] / ref['wordsim353_spearman']:.0%}) "
            f"| {m['simlex999_spearman']:.3f} | {summary['train_seconds']:.0f} s "
            f"| {speed:,.0f} ({speed / reference['train_samples_per_second']:.0%}) | `{run_dir.name}` |"
        )

    keras_summary = summaries["keras"][1]
    table = "\n".join(
        [
            f"Corpus: {keras_summary['corpus_words']:,} words, vocabulary {keras_summary['vocabulary']:,}; "
            f"{keras_summary['epochs']} epochs; {keras_summary['device']}; Keras engine on {keras_summary['backend']}, "
            f"gensim {metadata.version('gensim')}. In brackets: share of gensim's figure.",
            "",
            "| engine | analogy accuracy | WordSim353 Spearman | SimLex-999 Spearman | training time | corpus words/s | run |",
            "|---|---|---|---|---|---|---|",
            row("gensim"),
            row("keras"),
            "",
            "Nearest neighbours (Keras engine): "
            + "; ".join(f"*{w}*: {', '.join(n for n, _ in found)}" for w, found in keras_summary["neighbours"].items()),
        ]
    )
    update_readme(HERE / "README.md", "bench", table)
    print(table)


COMMANDS = {
    "train": ("train word vectors (defaults: the recipe of the README's figures)", cli.train_flags(word2vec.Config), word2vec.train),
    "evaluate": ("score vectors on analogies, WordSim353 and SimLex-999; list neighbours", add_evaluate_flags, word2vec.evaluate),
    "neighbours": ("nearest words to the ones given", add_neighbours_flags, word2vec.neighbours),
    "bench": ("train gensim's engine and the Keras engine on IMDB, write the README table", add_bench_flags, bench),
}


def main(argv=None):
    cli.run_commands("python -m projects.word2vec", "word2vec CBOW with negative sampling, in Keras and in gensim", COMMANDS, argv)


if __name__ == "__main__":
    main()
