"""Command line of neural style transfer: `python -m projects.style_transfer train|stylize|evaluate|export|bench`.

`stylize --content --style` repaints a photo by optimisation (slow, exact, any
painting); `train --style --content-dir` fits a fast network to one painting, and
`stylize --model --input` then paints files or folders with it in one pass. `bench`
measures both on the shared real data and writes the table and pictures into the README.
"""

from common import cli
from projects.style_transfer import MIN_SIDE, PROJECT
from projects.style_transfer.stylize import StylizeConfig
from projects.style_transfer.train import Config


def add_stylize_flags(parser):
    cli.add_config_flags(parser, StylizeConfig)
    fast_mode = parser.add_argument_group("with a trained network (instead of --content and --style)")
    fast_mode.add_argument("--model", help="run folder, model.keras or an exported .keras file of a trained network")
    fast_mode.add_argument("--input", nargs="+", help="images or folders of images to stylize")
    fast_mode.add_argument("--batch-size", type=cli.count, default=4, help="images of the same size stylized together (default: 4)")


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or .keras file of a trained network (default: the newest)")


def add_evaluate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--input", nargs="+", required=True, help="photos or folders of photos to score")
    parser.add_argument("--max-size", type=int, help=f"longer side the photos are scaled down to, at least {MIN_SIDE} (default: 512)")
    parser.add_argument("--style", help="the painting to score against (default: the one the network was trained on)")
    parser.add_argument("--backbone", choices=("vgg16", "vgg19"), help="VGG to score with (default: the training run's)")
    parser.add_argument("--backbone-weights", help="its weights (default: the training run's)")


def add_export_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--out", help="the .keras file to write (default: stylizer.keras beside the model)")
    cli.add_overwrite_flag(parser)


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="the folder with style/, animegan-samples/ and weights/ (default: $DATA_DIR)")


COMMANDS = {
    "train": cli.train_command(PROJECT, Config, "projects.style_transfer.train:train",
                               "train a fast network on one painting (defaults: the README's recipe)"),
    "stylize": ("repaint a photo: by optimisation (--content, --style) or with a trained network (--model, --input)",
                add_stylize_flags, "projects.style_transfer.stylize:stylize"),
    "evaluate": ("content, style and smoothness losses of a trained network's outputs on photos", add_evaluate_flags,
                 "projects.style_transfer.train:evaluate"),
    "export": ("write a self-contained uint8-in, uint8-out model and check that it reloads the same", add_export_flags,
               "projects.style_transfer.stylize:export"),
    "bench": ("measure both methods on the shared paintings and photos, write the README table and pictures",
              add_bench_flags, "projects.style_transfer.bench:bench"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.style_transfer", __doc__.splitlines()[0], COMMANDS)
