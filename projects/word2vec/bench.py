"""The benchmark: gensim's engine and the Keras engine on IMDB, side by side in the README.

The IMDB corpus is tokenised once; gensim's engine and then this project's Keras
engine are trained on it with the same hyperparameters (the defaults). Both engines'
scores and throughput, and the Keras engine's neighbours of the probe words, go into
the README between its `bench` markers, with the Keras engine's map of them as
`assets/neighbours.png`.
"""

import dataclasses
import shutil
from importlib import metadata

import pandas as pd

from common import runs
from common.report import markdown_table, update_readme
from projects.word2vec import FOLDER, train

ENGINES = ("gensim", "keras")  # gensim first: it is the reference the Keras engine's figures are compared with


def bench(args):
    config = train.Config(data_dir=args.data_dir)
    documents = train.load_documents(config)
    finished = {}
    for engine in ENGINES:
        run_dir = train.train(dataclasses.replace(config, engine=engine), documents=documents)
        finished[engine] = (run_dir, runs.read_json(run_dir / "summary.json"))
    (FOLDER / "assets").mkdir(exist_ok=True)
    shutil.copy(finished["keras"][0] / "samples" / "neighbours.png", FOLDER / "assets" / "neighbours.png")
    text = results(finished, metadata.version("gensim"))
    update_readme(FOLDER / "README.md", "bench", text)
    print(text)


def results(finished, gensim_version):
    """The README's results: `finished` maps each engine to (run folder, summary); in brackets, the share of gensim's figure."""
    reference = finished["gensim"][1]
    rows = []
    for engine in ENGINES:
        run_dir, summary = finished[engine]
        metrics, ref = summary["metrics"], reference["metrics"]
        speed = summary["train_samples_per_second"]
        rows.append({
            "engine": engine,
            "analogy accuracy": f"{metrics['analogy_accuracy']:.3f} ({metrics['analogy_accuracy'] / ref['analogy_accuracy']:.0%})",
            "WordSim353 Spearman": f"{metrics['wordsim353_spearman']:.3f} "
                                   f"({metrics['wordsim353_spearman'] / ref['wordsim353_spearman']:.0%})",
            "SimLex-999 Spearman": f"{metrics['simlex999_spearman']:.3f}",
            "training time": f"{summary['train_seconds']:.0f} s",
            "corpus words/s": f"{speed:,.0f} ({speed / reference['train_samples_per_second']:.0%})",
            "run": f"`{run_dir.name}`",
        })
    keras_summary = finished["keras"][1]
    neighbours = "; ".join(f"*{w}*: {', '.join(n for n, _ in found)}" for w, found in keras_summary["neighbours"].items())
    return "\n".join([
        f"Corpus: {keras_summary['corpus_words']:,} words, vocabulary {keras_summary['vocabulary']:,}; "
        f"{keras_summary['epochs']} epochs; {keras_summary['device']}; Keras engine on {keras_summary['backend']}, "
        f"gensim {gensim_version}. In brackets: share of gensim's figure.",
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
        f"Nearest neighbours (Keras engine): {neighbours}",
    ])
