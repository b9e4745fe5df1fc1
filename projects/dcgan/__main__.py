"""Command line of the DCGAN: `python -m projects.dcgan train|generate|evaluate|bench`."""

from common import cli
from projects.dcgan import DATASETS, PROJECT
from projects.dcgan.train import Config


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or generator.keras (default: the newest trained generator)")


def add_generate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--n", type=cli.count, default=64, help="how many images (default: 64)")
    parser.add_argument("--out", required=True, help="a folder for PNG files, or a .npz file for one uint8 array (N, H, W, C)")
    cli.add_overwrite_flag(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    parser.add_argument("--label", type=int, help="a conditional generator's class to draw (default: every class in turn)")


def add_evaluate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--classifier", help="mnist_cnn run folder or .keras file (default: the newest trained on the same dataset)")
    parser.add_argument("--dataset", choices=DATASETS, help="the real images to compare with (default: the generator's own)")
    parser.add_argument("--data-dir", help="folder with the dataset files")
    parser.add_argument("--n", type=cli.count, default=10000, help="images to generate and score, at least 2 (default: 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder with the MNIST files")
    parser.add_argument("--run", help="score this finished run instead of training a new one")
    parser.add_argument("--faces", help="instead: train the 64 px colour recipe on this folder of faces and show its samples")
    parser.add_argument("--faces-epochs", type=cli.count, default=15, help="epochs of the faces run (default: 15)")


COMMANDS = {
    "train": cli.train_command(
        PROJECT, Config, "projects.dcgan.train:train", "train the GAN (defaults: the recipe that reaches the README's figures)"
    ),
    "generate": ("draw images from a trained generator, as PNG files or one .npz array", add_generate_flags,
                 "projects.dcgan.generate:generate"),
    "evaluate": ("score an MNIST or Fashion-MNIST generator with the MNIST CNN's classifier", add_evaluate_flags,
                 "projects.dcgan.evaluate:evaluate"),
    "bench": ("train the default recipe on MNIST, score 10,000 digits, write the README table", add_bench_flags,
              "projects.dcgan.bench:bench"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.dcgan", __doc__.splitlines()[0], COMMANDS)
