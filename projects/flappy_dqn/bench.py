"""The benchmark behind the README: the recipe trained for `--minutes` of wall time on features, evaluated on
the 100 evaluation seeds beside the reference players, its learning curve and a GIF of one game.

`--pixel-minutes M` also trains the course's pixel agent for M minutes and evaluates it the same way.
"""

import shutil
import time
from argparse import Namespace

import pandas as pd

from common import backend, runs
from common.report import markdown_table, update_readme
from projects.flappy_dqn import FOLDER, data
from projects.flappy_dqn.evaluate import REFERENCES, evaluate
from projects.flappy_dqn.play import play
from projects.flappy_dqn.train import Config, train


def bench(args):
    started = time.time()
    trained = {"features": train(Config(minutes=args.minutes))}
    if args.pixel_minutes:
        trained["pixels"] = train(Config(observation="pixels", minutes=args.pixel_minutes, replay_size=50_000))
    rows = []
    for observation, run_dir in trained.items():
        results = evaluate(Namespace(model=str(run_dir), env=None, observation=None, frame_skip=None,
                                     score_limit=data.SCORE_LIMIT, episodes=args.episodes,
                                     references=observation == "features"))
        summary = runs.read_json(run_dir / "summary.json")
        rows.append(row(f"DQN on {observation}, {summary['training_minutes']:.0f} min of training", results["agent"], summary))
        if observation == "features":
            rows += [row(name, results[name]) for name in REFERENCES]
    assets = FOLDER / "assets"
    features = trained["features"]
    shutil.copyfile(features / "learning_curve.png", assets / "learning_curve.png")
    play(Namespace(model=str(features), env=None, observation=None, frame_skip=None, score_limit=data.SCORE_LIMIT,
                   out=str(assets / "game.gif"), episode=0, seconds=10, overwrite=True))
    update_readme(FOLDER / "README.md", "bench", bench_text(rows, trained, args.episodes, time.time() - started))
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


def bench_text(rows, trained, episodes, seconds):
    lines = [markdown_table(pd.DataFrame(rows)), ""]
    for observation, run_dir in trained.items():
        summary = runs.read_json(run_dir / "summary.json")
        curve = pd.read_csv(run_dir / "metrics.csv")
        points = ", ".join(f"{m:.1f} min: {v:.1f}" for m, v in zip(curve["minutes"], curve["val_score"]))
        lines.append(f"**{observation}**: {summary['training_minutes']:.1f} min of training ({summary['stopped']}), "
                     f"{summary['frames']:,} frames at {summary['train_samples_per_second']:.0f} frames/s, "
                     f"{summary['updates']:,} updates, {summary['episodes']:,} training episodes; the kept model is the best "
                     f"validation epoch ({summary['metrics']['best_val_score']:.1f} pipes on 20 validation seeds, "
                     f"after {int(summary['best_frames']):,} frames). Validation mean by training minute: {points}. "
                     f"Run `{run_dir.name}`.")
        lines.append("")
    lines.append(f"{episodes} evaluation seeds (never played in training or validation), episodes cut at {data.SCORE_LIMIT} pipes; whole bench "
                 f"{seconds / 60:.1f} min on {backend.name()}, {backend.describe_device()}.")
    return "\n".join(lines)
