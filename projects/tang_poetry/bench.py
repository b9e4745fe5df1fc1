"""The benchmark on the Tang poems: train the default recipe, then measure what the issue asks, and write the README.

In one run: perplexity per character on the test poems for the LSTM and for the
Kneser-Ney n-gram model of the best order (3-5, chosen on the validation poems),
fitted on the same training poems with the same vocabulary; 1,000 poems per
regulated form at the default settings, checked for form, for lines copied verbatim
from the training poems and for rhyme (beside real test poems of the form, and the
share `--rhyme` reaches); a
temperature sweep of copy share against the n-gram's log-probability of the poems
(few copies bought with noise would show as a low log-probability); poems per second;
sample poems and the learning curve.
"""

import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import report, runs
from projects.tang_poetry import FOLDER

POEMS_PER_FORM = 1000
SWEEP = (0.6, 0.8, 1.0, 1.2)
SWEEP_POEMS = 300
DEFAULTS = {"temperature": 0.8, "top_k": 0, "top_p": 0.95}  # generate's defaults


def bench(args):
    from projects.tang_poetry.train import Config, train

    config = Config(data_dir=args.data_dir)
    started = time.time()
    run_dir = train(config)
    training_seconds = time.time() - started
    results = measure(run_dir, config)
    results["training_minutes"] = training_seconds / 60
    runs.write_json(run_dir / "bench.json", results)
    write_readme(results, run_dir, FOLDER)


def measure(run_dir, config, poems_per_form=POEMS_PER_FORM, sweep=SWEEP, sweep_poems=SWEEP_POEMS):
    """Every figure of the README for the trained run `run_dir` on the data of `config`."""
    from common import backend
    from projects.tang_poetry import data, generate, ngram, rhyme
    from projects.tang_poetry.model import Stepper, perplexity

    trained = generate.load(run_dir)
    vocabulary, corpus = trained.vocabulary, data.load(config)
    encode = lambda poems: [vocabulary.encode(p)[: config.max_length + 1] for p in poems]
    x, y, _ = data.sequences(corpus.test, vocabulary, config.max_length)
    baseline, by_order = ngram.best_order(encode(corpus.train), encode(corpus.validation), len(vocabulary))
    results = {
        "device": backend.describe_device(), "corpus": corpus.counts, "vocabulary": len(vocabulary),
        "lstm_perplexity": perplexity(trained.model, x, y), "ngram_order": baseline.order,
        "ngram_perplexity": baseline.perplexity(encode(corpus.test)), "ngram_validation_perplexity": by_order,
    }
    training_lines = {line for poem in corpus.train for line in data.lines(poem)}
    stepper = Stepper(trained.model)

    groups = generate.rhyme_groups(vocabulary)

    def written(form, count, temperature=DEFAULTS["temperature"], seed=0, rhymed=False):
        started = time.time()
        ids = generate.write(stepper, len(vocabulary), count, form, temperature=temperature, top_k=DEFAULTS["top_k"],
                             top_p=DEFAULTS["top_p"], seed=seed, rhyme_groups=groups if rhymed else None)
        return [vocabulary.decode(poem) for poem in ids], time.time() - started

    def copied(poems):
        found = [line for poem in poems for line in data.lines(poem)]
        return sum(line in training_lines for line in found) / max(len(found), 1)

    def ngram_log_probability(poems):
        """Mean ln P per character under the n-gram model (the forced punctuation and END left out)."""
        total, count = 0.0, 0
        for ids in encode(poems):
            logs, characters = baseline.log_probabilities(ids)
            total, count = total + logs[characters].sum(), count + characters.sum()
        return total / max(count, 1)

    forms, samples = [], {}
    for form in data.FORMS:
        poems, seconds = written(form, poems_per_form)
        real = [p for p in corpus.test if data.form_of(p) == form]
        forms.append({"form": form, "poems": len(poems), "in form": np.mean([data.form_of(p) == form for p in poems]),
                      "lines copied": copied(poems), "rhyme share": rhyme.share(poems),
                      "rhyme share, real test poems": rhyme.share(real), "real test poems": len(real),
                      "rhyme share with --rhyme": rhyme.share(written(form, poems_per_form, rhymed=True)[0]),
                      "poems per second": len(poems) / seconds})
        samples[form] = poems[:2]
    results["forms"] = forms
    results["sweep"] = []
    for temperature in sweep:
        poems, _ = written("5-jueju", sweep_poems, temperature, seed=1)
        results["sweep"].append({"temperature": temperature, "lines copied": copied(poems),
                                 "n-gram ln P per character": ngram_log_probability(poems)})
    acrostic = [vocabulary.ids[c] for c in "春夏秋冬" if c in vocabulary.ids]
    if len(acrostic) == 4:
        ids = generate.write(stepper, len(vocabulary), 1, "7-jueju", acrostic=acrostic, **DEFAULTS, seed=3)
        samples["acrostic 春夏秋冬 (7-jueju)"] = [vocabulary.decode(ids[0])]
    results["samples"] = samples
    return results


def write_readme(results, run_dir, folder):
    """The results table, the sweep, sample poems and the learning curve into `folder`'s README and assets/."""
    from common import charts

    metrics = pd.read_csv(Path(run_dir) / "metrics.csv")
    curve = charts.curves(
        {"training perplexity per token (punctuation and END included)": (metrics["epoch"] + 1, np.exp(metrics["loss"])),
         "validation perplexity per character": (metrics["epoch"] + 1, metrics["val_perplexity"])},
        Path(folder) / "assets" / "learning_curve.png", title="learning curve", ylabel="perplexity", logy=True,
    )
    table = pd.DataFrame(results["forms"]).round(3)
    sweep = pd.DataFrame(results["sweep"]).round(3)
    lowered = 100 * (1 - results["lstm_perplexity"] / results["ngram_perplexity"])
    poems = "\n\n".join(f"{name}:\n\n" + "\n\n".join("    " + poem.replace("。", "。\n    ").rstrip() for poem in shown)
                        for name, shown in results["samples"].items())
    text = "\n\n".join([
        f"Measured by `make bench-poetry` on {results['device']}: training {results['training_minutes']:.0f} minutes; "
        f"{results['corpus']['kept']:,} poems after cleaning and deduplication.",
        f"Perplexity per character on the test poems (punctuation and END left out): LSTM {results['lstm_perplexity']:.1f}, "
        f"Kneser-Ney {results['ngram_order']}-gram {results['ngram_perplexity']:.1f} "
        + (f"({lowered:.0f}% lower for the LSTM)." if lowered >= 0 else f"({-lowered:.0f}% higher for the LSTM: the n-gram model is better)."),
        report.markdown_table(table), "Temperature sweep (5-jueju):", report.markdown_table(sweep),
        f"![learning curve](assets/{Path(curve).name})", poems,
    ])
    report.update_readme(Path(folder) / "README.md", "bench", text)
    print(text)
