"""The DCGAN's benchmark, and the README tables and pictures it writes.

`bench` trains the default recipe on MNIST, scores 10,000 generated digits with the
MNIST CNN project's classifier (training one first if there is none) and writes the
measured table and pictures into this project's README. `bench --faces DIR` instead
trains the 64 px colour recipe on a folder of faces and puts its samples in the README.
"""

import argparse
import shutil
from pathlib import Path

import pandas as pd

from common import report, runs
from common.errors import UserError
from projects.dcgan import FOLDER
from projects.dcgan.evaluate import classifier_path, evaluate
from projects.dcgan.train import Config, progress_gif, train


def bench(args):
    if args.faces:
        return bench_faces(args.faces, args.faces_epochs)
    classifier = ensure_classifier(args.data_dir)
    run_dir = Path(args.run) if args.run else train(Config(dataset="mnist", data_dir=args.data_dir))
    result = evaluate(
        argparse.Namespace(model=str(run_dir), classifier=str(classifier), dataset="mnist", data_dir=args.data_dir, n=10000, seed=0)
    )
    summary = runs.read_json(run_dir / "summary.json")
    assets = FOLDER / "assets"
    assets.mkdir(exist_ok=True)
    for source, target in (("final.png", "mnist_samples.png"), ("evaluation.png", "mnist_evaluation.png")):
        shutil.copy(run_dir / "samples" / source, assets / target)
    # A smaller animation for the README: the run's own is over a megabyte.
    progress_gif(sorted((run_dir / "samples").glob("epoch_*.png")), assets / "mnist_progress.gif", small=True)
    shares, asked = result["class_shares"], result.get("read_as_asked")
    row = {
        "generated digits": f"{result['images']:,}",
        "generator": "conditional, each class in turn" if asked is not None else "unconditional",
        "read with p ≥ 0.9": f"{result['confident_share'] * 100:.2f}%",
        "class shares (min - max)": f"{min(shares) * 100:.1f}% - {max(shares) * 100:.1f}%",
        "read as the class asked for": "-" if asked is None else f"{asked * 100:.2f}%",
        "Fréchet distance, generated vs test": f"{result['frechet_generated_test']:.2f}",
        "Fréchet distance, real train vs test": f"{result['frechet_train_test']:.2f}",
        "epochs": summary["epochs"],
        **report.run_columns(run_dir, summary, "images"),
    }
    table = report.markdown_table(pd.DataFrame([row]))
    report.update_readme(FOLDER / "README.md", "bench", table)
    print(table)


def ensure_classifier(data_dir):
    """The MNIST classifier the bench scores with; trained by its own project when there is none yet."""
    try:
        return classifier_path("mnist")
    except UserError:
        print("no trained MNIST classifier yet", flush=True)
        report.train_other_project("mnist_cnn", "--dataset", "mnist", *(["--data-dir", data_dir] if data_dir else []))
        return classifier_path("mnist")


def bench_faces(folder, epochs):
    """A first look at a folder of faces on a CPU: the 64 px colour recipe, the sample grid and a table."""
    run_dir = train(Config(data_dir=folder, epochs=epochs))
    summary = runs.read_json(run_dir / "summary.json")
    saved = runs.read_json(run_dir / "config.json")
    assets = FOLDER / "assets"
    assets.mkdir(exist_ok=True)
    shutil.copy(run_dir / "samples" / "final.png", assets / "anime_faces_samples.png")
    row = {
        "faces per epoch": f"{summary['training_images'] // summary['epochs']:,}",
        "size": f"{saved['resolved']['image_size']} px {saved['resolved']['mode']}",
        "epochs": summary["epochs"],
        "steps": f"{summary['training_images'] // saved['config']['batch_size']:,}",
        **report.run_columns(run_dir, summary, "images"),
    }
    table = report.markdown_table(pd.DataFrame([row]))
    report.update_readme(FOLDER / "README.md", "faces", table)
    print(table)
