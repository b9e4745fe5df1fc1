"""Command line of AnimeGAN: `python -m projects.animegan prepare|train|convert|export|bench`."""

import argparse

from common import cli
from projects.animegan import PROJECT
from projects.animegan.train import SAMPLES_DIR, Config, recipe_defaults


def add_prepare_flags(parser):
    parser.add_argument("--style", required=True, help="folder of anime pictures")
    parser.add_argument("--out", help="folder for the edge-smoothed copies (default: <style>_smooth beside it)")


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or generator .keras file (default: the newest trained model)")


def add_convert_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--input", required=True, help="a photo, a folder of photos, or a video (.mp4, .mov, ...)")
    parser.add_argument("--out", help="file or folder to write (default: beside the input, named <name>_anime)")
    parser.add_argument("--max-side", type=int, default=2048,
                        help="larger photos and frames are scaled down to this many pixels on their longer side (default: 2048)")
    cli.add_overwrite_flag(parser)
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                        help="compute in float16 (GPU) / bfloat16 (CPU), about a third faster on a CPU that does it natively; default: on where the "
                             "hardware does it natively (a GPU, a CPU with AVX-512 BF16 or AMX)")


def add_export_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--out", help="folder to write, new or empty (default: export/ beside the model)")
    parser.add_argument("--onnx", action="store_true", help="also write generator.onnx (needs tf2onnx and onnx installed)")
    cli.add_overwrite_flag(parser)


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help=f"folder holding {SAMPLES_DIR}/ and the VGG weights "
                                           "(default: $DATA_DIR, else the repository's data/)")


COMMANDS = {
    "prepare": ("write the edge-smoothed copies of a folder of anime pictures", add_prepare_flags,
                "projects.animegan.data:prepare"),
    "train": cli.train_command(PROJECT, Config, "projects.animegan.train:train",
                               "train a generator on your photos and anime pictures (defaults: the README's recipe)",
                               defaults=recipe_defaults),
    "convert": ("turn a photo, a folder of photos or a video into anime", add_convert_flags, "projects.animegan.convert:convert"),
    "export": ("write the generator for inference (.keras; SavedModel on TensorFlow) and check it", add_export_flags,
               "projects.animegan.convert:export"),
    "bench": ("measure the generator and a short real run on the sample photos; write the README table",
              add_bench_flags, "projects.animegan.bench:bench"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.animegan", __doc__.splitlines()[0], COMMANDS)
