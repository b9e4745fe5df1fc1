"""Command line of the DCGAN: `python -m projects.dcgan train|generate|evaluate|bench`.

`bench` trains the default recipe on MNIST, scores 10,000 generated digits with the
MNIST CNN project's classifier (training one first if there is none) and writes the
measured table and pictures into this project's README. `bench --faces DIR` instead
trains the 64 px colour recipe on a folder of faces and puts its samples in the README.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from common import cli, runs
from common.errors import UserError
from common.report import update_readme

from projects.dcgan import data
from projects.dcgan import evaluate as scoring
from projects.dcgan import train as dcgan

HERE = Path(__file__).resolve().parent


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or generator.keras (default: the newest trained generator)")


def add_generate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--n", type=int, default=64, help="how many images (default: 64)")
    parser.add_argument("--out", required=True, help="a folder for PNG files, or a .npz file for one uint8 array (N, H, W, C)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    parser.add_argument("--label", type=int, help="a conditional generator's class to draw (default: every class in turn)")


def add_evaluate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--classifier", help="mnist_cnn run folder or .keras file (default: the newest trained on the same dataset)")
    parser.add_argument("--dataset", choices=data.REGISTERED, help="the real images to compare with (default: the generator's own)")
    parser.add_argument("--data-dir", help="folder with the dataset files")
    parser.add_argument("--n", type=int, default=10000, help="images to generate and score (default: 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")


def ensure_classifier(data_dir):
    """The MNIST classifier the bench scores with; trained by its own project when there is none yet."""
    try:
        return scoring.classifier_path("mnist")
    except UserError:
        print("no trained MNIST classifier yet: training one with python -m projects.mnist_cnn train", flush=True)
        command = [sys.executable, "-m", "projects.mnist_cnn", "train", "--dataset", "mnist"]
        subprocess.run(command + (["--data-dir", data_dir] if data_dir else []), check=True, cwd=HERE.parent.parent)
        return scoring.classifier_path("mnist")


def bench(args):
    if args.faces:
        return bench_faces(args.faces, args.faces_epochs)
    classifier = ensure_classifier(args.data_dir)
    run_dir = Path(args.run) if args.run else dcgan.train(argparse.Namespace(dataset="mnist", data_dir=args.data_dir))
    result = scoring.evaluate(
        argparse.Namespace(model=str(run_dir), classifier=str(classifier), dataset="mnist", data_dir=args.data_dir, n=10000, seed=0)
    )
    summary = runs.read_json(run_dir / "summary.json")
    assets = HERE / "assets"
    assets.mkdir(exist_ok=True)
    for source, target in (("final.png", "mnist_samples.png"), ("evaluation.png", "mnist_evaluation.png")):
        shutil.copy(run_dir / "samples" / source, assets / target)
    # A smaller animation for the README: the run's own is over a megabyte.
    dcgan.progress_gif(sorted((run_dir / "samples").glob("epoch_*.png")), assets / "mnist_progress.gif", small=True)
    shares, asked = result["class_shares"], result.get("read_as_asked")
    table = "\n".join(
        [
            "| generated digits | generator | read with p ≥ 0.9 | class shares (min - max) | read as the class asked for "
            "| Fréchet distance, generated vs test | Fréchet distance, real train vs test | epochs | training wall time "
            "| train images/s | backend | hardware | run |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {result['images']:,} | {'conditional, each class in turn' if asked is not None else 'unconditional'} "
            f"| {result['confident_share'] * 100:.2f}% | {min(shares) * 100:.1f}% - {max(shares) * 100:.1f}% "
            f"| {'-' if asked is None else f'{asked * 100:.2f}%'} "
            f"| {result['frechet_generated_test']:.2f} | {result['frechet_train_test']:.2f} | {summary['epochs']} "
            f"| {summary['wall_seconds'] / 60:.1f} min | {summary['train_samples_per_second']:.0f} | {summary['backend']} "
            f"| {summary['device']} | `{run_dir.name}` |",
        ]
    )
    update_readme(HERE / "README.md", "bench", table)
    print(table)


def bench_faces(folder, epochs):
    """A first look at a folder of faces on a CPU: the 64 px colour recipe, the sample grid and a table."""
    run_dir = dcgan.train(argparse.Namespace(data_dir=folder, epochs=epochs))
    summary = runs.read_json(run_dir / "summary.json")
    config = runs.read_json(run_dir / "config.json")["config"]
    assets = HERE / "assets"
    assets.mkdir(exist_ok=True)
    shutil.copy(run_dir / "samples" / "final.png", assets / "anime_faces_samples.png")
    table = "\n".join(
        [
            "| faces per epoch | size | epochs | steps | training wall time | train images/s | backend | hardware | run |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {summary['training_images'] // summary['epochs']:,} | {config['image_size']} px {config['mode']} | {summary['epochs']} "
            f"| {summary['training_images'] // config['batch_size']:,} | {summary['wall_seconds'] / 60:.1f} min "
            f"| {summary['train_samples_per_second']:.0f} | {summary['backend']} | {summary['device']} | `{run_dir.name}` |",
        ]
    )
    update_readme(HERE / "README.md", "faces", table)
    print(table)


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder with the MNIST files")
    parser.add_argument("--run", help="score this finished run instead of training a new one")
    parser.add_argument("--faces", help="instead: train the 64 px colour recipe on this folder of faces and show its samples")
    parser.add_argument("--faces-epochs", type=int, default=15, help="epochs of the faces run (default: 15)")


COMMANDS = {
    "train": ("train the GAN (defaults: the recipe that reaches the README's figures)", cli.train_flags(dcgan.Config), dcgan.train),
    "generate": ("draw images from a trained generator, as PNG files or one .npz array", add_generate_flags, dcgan.generate),
    "evaluate": ("score an MNIST or Fashion-MNIST generator with the MNIST CNN's classifier", add_evaluate_flags, scoring.evaluate),
    "bench": ("train the default recipe on MNIST, score 10,000 digits, write the README table", add_bench_flags, bench),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.dcgan", __doc__.splitlines()[0], COMMANDS)
