"""Command line of AnimeGAN: `python -m projects.animegan prepare|train|convert|export|bench`.

`bench` measures the generator (weights, file size, seconds per 512x512 photo on
this machine) and a short real training run on the sample photos and Hayao
pictures, and writes the table and the before/after picture into this README.
"""

import argparse
from pathlib import Path

from common import cli

from projects.animegan import bench as benchmark
from projects.animegan import convert as converting
from projects.animegan import data
from projects.animegan import train as training

HERE = Path(__file__).resolve().parent


def add_prepare_flags(parser):
    parser.add_argument("--style", required=True, help="folder of anime pictures")
    parser.add_argument("--out", help="folder for the edge-smoothed copies (default: <style>_smooth beside it)")


def prepare(args):
    data.prepare(args.style, args.out)


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or generator .keras file (default: the newest trained model)")


def add_convert_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--input", required=True, help="a photo, a folder of photos, or a video (.mp4, .mov, ...)")
    parser.add_argument("--out", help="file or folder to write (default: beside the input, named <name>_anime)")
    parser.add_argument("--max-side", type=int, default=2048,
                        help="larger photos and frames are scaled down to this many pixels on their longer side (default: 2048)")
    parser.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                        help="compute in float16 (GPU) / bfloat16 (CPU), about a third faster on a CPU that does it natively; default: on where the "
                             "hardware does it natively (a GPU, a CPU with AVX-512 BF16 or AMX)")


def add_export_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--out", help="folder to write (default: export/ beside the model)")
    parser.add_argument("--onnx", action="store_true", help="also write generator.onnx (needs tf2onnx and onnx installed)")


COMMANDS = {
    "prepare": ("write the edge-smoothed copies of a folder of anime pictures", add_prepare_flags, prepare),
    "train": ("train a generator on your photos and anime pictures (defaults: AnimeGANv2's recipe)",
              cli.train_flags(training.Config), training.train),
    "convert": ("turn a photo, a folder of photos or a video into anime", add_convert_flags, converting.convert),
    "export": ("write the generator for inference (.keras; SavedModel on TensorFlow) and check it", add_export_flags,
               converting.export),
    "bench": ("measure the generator and a short real run on the sample photos; write the README table",
              benchmark.add_flags, benchmark.bench),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.animegan", __doc__.splitlines()[0], COMMANDS)
