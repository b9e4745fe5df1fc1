"""Command line of the game-playing agent: `python -m projects.flappy_dqn train|evaluate|play|bench`.

`train` learns Flappy Bird (or CartPole, `--env cartpole`) by deep Q-learning;
`evaluate` scores a trained agent on 100 evaluation seeds (`--references`: beside a
random player, a hand-written rule and flappy-bird-gymnasium's own agent); `play`
saves a video of one game; `bench` trains the recipe and writes the README's table.
"""

from common import cli
from projects.flappy_dqn import PROJECT, data
from projects.flappy_dqn.train import Config, recipe_defaults


def add_game_flags(parser):
    parser.add_argument("--model", help="run folder or model.keras (default: the newest trained model)")
    parser.add_argument("--env", choices=data.ENVIRONMENTS, help="the game (default: the model's)")
    parser.add_argument("--observation", choices=data.OBSERVATIONS, help="Flappy Bird's observation (default: the model's)")
    parser.add_argument("--frame-skip", type=cli.count, help="frames per action (default: the model's)")
    parser.add_argument("--score-limit", type=cli.count, default=data.SCORE_LIMIT,
                        help=f"pipes at which an episode is cut (default: {data.SCORE_LIMIT})")


def add_evaluate_flags(parser):
    add_game_flags(parser)
    parser.add_argument("--episodes", type=cli.count, default=100, help="evaluation episodes, one seed each (default: 100)")
    parser.add_argument("--references", action="store_true",
                        help="also score a random player, the hand-written rule and flappy-bird-gymnasium's agent")


def add_play_flags(parser):
    add_game_flags(parser)
    parser.add_argument("--out", required=True, help="the video to write: game.mp4 or game.gif")
    parser.add_argument("--episode", type=int, default=0, help="which evaluation seed to play (default: 0)")
    parser.add_argument("--seconds", type=cli.count, default=20, help="at most this many seconds of game (default: 20)")
    cli.add_overwrite_flag(parser)


def add_bench_flags(parser):
    parser.add_argument("--minutes", type=float, default=45.0, help="training wall time of the features run (default: 45; 0 skips it)")
    parser.add_argument("--pixel-minutes", type=float, default=0.0,
                        help="also train on pixels for this many minutes (default: 0, not run)")
    parser.add_argument("--episodes", type=cli.count, default=100, help="evaluation episodes (default: 100)")


COMMANDS = {
    "train": cli.train_command(PROJECT, Config, "projects.flappy_dqn.train:train",
                               "learn to play by deep Q-learning (defaults: the README's recipe)", defaults=recipe_defaults),
    "evaluate": ("score a trained agent on the evaluation seeds (and the reference players with --references)",
                 add_evaluate_flags, "projects.flappy_dqn.evaluate:evaluate"),
    "play": ("save a video of the agent playing one game (.mp4 or .gif)", add_play_flags, "projects.flappy_dqn.play:play"),
    "bench": ("train the recipe, evaluate it beside the references, write the README table and pictures",
              add_bench_flags, "projects.flappy_dqn.bench:bench"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.flappy_dqn", __doc__.splitlines()[0], COMMANDS)
