"""The benchmark behind the README: the recipe trained for `--minutes` of wall time on features, evaluated on
the 100 evaluation seeds beside the reference players, its learning curve and a GIF of one game.

`--pixel-minutes M` also trains the course's pixel agent for M minutes and evaluates it the same way, in a
README section of its own; `--minutes 0` leaves the features run (and its section) as it is.
"""

import shutil
import time
from argparse import Namespace

import pandas as pd

from common import backend, runs
from common.errors import UserError
from common.report import markdown_table, update_readme
from projects.flappy_dqn import FOLDER, data
from projects.flappy_dqn.evaluate import REFERENCES, evaluate
from projects.flappy_dqn.play import play
from projects.flappy_dqn.train import Config, train


# The pixel agent sees far fewer frames in its budget than the features agent (each update runs the Nature
# network), so it updates as the Nature DQN did (32 transitions per 4-8 frames), explores for fewer frames, and
# validates every 10,000 frames so that the curve has points and the budget is spent.
PIXEL_RECIPE = {"observation": "pixels", "replay_size": 50_000, "batch_size": 32, "steps_per_epoch": 1250,
                "epsilon_frames": 200_000}


def bench(args):
    """Train and measure each observation given minutes; each writes its own README section."""
    if args.minutes <= 0 and args.pixel_minutes <= 0:
        raise UserError("--minutes and --pixel-minutes are both 0: nothing to measure")
    if args.minutes > 0:
        measure("features", train(Config(minutes=args.minutes)), args.episodes, section="bench", curve="learning_curve.png")
    if args.pixel_minutes > 0:
        run_dir = train(Config(minutes=args.pixel_minutes, **PIXEL_RECIPE))
        measure("pixels", run_dir, args.episodes, section="bench-pixels", curve="learning_curve_pixels.png")


def measure(observation, run_dir, episodes, section, curve):
    started = time.time()
    with_references = observation == "features"
    results = evaluate(Namespace(model=str(run_dir), env=None, observation=None, frame_skip=None,
                                 score_limit=data.SCORE_LIMIT, episodes=episodes, references=with_references))
    summary = runs.read_json(run_dir / "summary.json")
    rows = [row(f"DQN on {observation}, {summary['training_minutes']:.0f} min of training", results["agent"], summary)]
    if with_references:
        rows += [row(name, results[name]) for name in REFERENCES]
    assets = FOLDER / "assets"
    shutil.copyfile(run_dir / "learning_curve.png", assets / curve)
    if with_references:
        play(Namespace(model=str(run_dir), env=None, observation=None, frame_skip=None, score_limit=data.SCORE_LIMIT,
                       out=str(assets / "game.gif"), episode=0, seconds=10, overwrite=True))
    text = bench_text(rows, observation, run_dir, summary, episodes, summary["training_minutes"] * 60 + time.time() - started)
    update_readme(FOLDER / "README.md", section, text)
    print(markdown_table(pd.DataFrame(rows)))


NAMES = {"random": "random player (flaps with p 0.1)", "rule": "hand-written rule",
         "pretrained": "flappy-bird-gymnasium's pretrained agent"}


def row(name, result, summary=None):
    return {
        "player": NAMES.get(name, name),
        "mean pipes": f"{result['mean']:.1f}",
        "median": f"{result['median']:.0f}",
        "max": f"{result['max']:.0f}",
        f"reached {data.SCORE_LIMIT}": f"{result['capped_share']:.0%}",
        "frames trained": f"{summary['frames']:,}" if summary else "",
        "evaluation time": f"{result['seconds']:.0f} s",
    }


def bench_text(rows, observation, run_dir, summary, episodes, seconds):
    curve = pd.read_csv(run_dir / "metrics.csv")["val_score"]
    return "\n".join([
        markdown_table(pd.DataFrame(rows)), "",
        f"**{observation}**: {summary['training_minutes']:.1f} min of training ({summary['stopped']}), "
        f"{summary['frames']:,} frames at {summary['train_samples_per_second']:.0f} frames/s, "
        f"{summary['updates']:,} updates, {summary['episodes']:,} training episodes; the kept model is the best "
        f"validation epoch ({summary['metrics']['best_val_score']:.1f} pipes on 20 validation seeds, "
        f"after {int(summary['best_frames']):,} frames). Validation means over the {len(curve)} epochs: "
        f"median {curve.median():.1f}, last {curve.iloc[-1]:.1f}. Run `{run_dir.name}`.", "",
        f"{episodes} evaluation seeds (never played in training or validation), episodes cut at {data.SCORE_LIMIT} pipes; "
        f"training and evaluation {seconds / 60:.1f} min on {backend.name()}, {backend.describe_device()}.",
    ])
