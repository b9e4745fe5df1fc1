"""Command line of the Tang-poetry writer: `python -m projects.tang_poetry train|evaluate|generate|bench`."""

from common import cli
from projects.tang_poetry import PROJECT
from projects.tang_poetry.data import FORM_NAMES
from projects.tang_poetry.train import Config, preset


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or model.keras file (default: the newest trained model)")


def add_evaluate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--data-dir", help="score the test poems of the Tang poems found here instead of the model's own data")
    parser.add_argument("--poems", help="score the test poems of your own corpus (a text file or a folder of JSON files)")


def add_generate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--form", choices=FORM_NAMES, default="5-jueju", help="the poem's form (default: 5-jueju; free: the model decides)")
    parser.add_argument("--n", type=cli.count, default=4, help="poems to write (default: 4)")
    parser.add_argument("--start", help="first character of each poem; several are used in turn")
    parser.add_argument("--acrostic", help="one character per line, each starting its line (藏头诗), e.g. 春夏秋冬")
    parser.add_argument("--prefix", help="the poem's opening characters, continued by the model, e.g. 床前明月光")
    parser.add_argument("--rhyme", action="store_true", help="end every even line on characters of one rhyme group (modern finals)")
    parser.add_argument("--temperature", type=float, default=0.8, help="below 1: safer choices; above 1: bolder ones (default: 0.8)")
    parser.add_argument("--top-k", type=int, default=0, help="draw only among the k likeliest characters (default: 0, off)")
    parser.add_argument("--top-p", type=float, default=0.95, help="draw only among the likeliest characters holding this share of the probability (default: 0.95)")
    parser.add_argument("--max-tokens", type=cli.count, default=120, help="free form: where a poem is ended at the latest (default: 120)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same poems (default: 0)")


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder holding chinese-poetry-tang.tar.gz or chinese-poetry/quantangshi/")


COMMANDS = {
    "train": cli.train_command(PROJECT, Config, "projects.tang_poetry.train:train",
                               "train the character-level LSTM (defaults: the README's recipe)", defaults=preset),
    "evaluate": ("perplexity per character on the test poems, beside a Kneser-Ney n-gram model", add_evaluate_flags,
                 "projects.tang_poetry.train:evaluate"),
    "generate": ("write poems: a regulated form, an acrostic, a first line to continue", add_generate_flags,
                 "projects.tang_poetry.generate:generate"),
    "bench": ("train the default recipe on the Tang poems and measure it; write the README table", add_bench_flags,
              "projects.tang_poetry.bench:bench"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.tang_poetry", __doc__.splitlines()[0], COMMANDS)
