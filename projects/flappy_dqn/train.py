"""Training the agent: the settings (`Config`), the DQN agent and `train`.

The agent plays `--envs` games side by side (one batched network call picks all their
actions, ε-greedy), stores their n-step transitions in a replay buffer and, every
`--train-every` moves, takes one Adam step (`common.backend.gradient_step`, compiled)
on the Huber loss between Q(s, a) and the Double-DQN target of a uniform sample. The
target network copies the online one every `--target-every` updates; ε falls
log-linearly from `--epsilon-start` to `--epsilon-end` over `--epsilon-frames` frames.

Training runs through the shared loop (`common.loop`): a loop step is one move of all
games, an epoch `--steps-per-epoch` of them, after which the greedy agent plays the
validation seeds; the best validation mean so far is kept as best.keras, and is the
final model.keras (the evaluation seeds are never played in training). The progress
bar shows the loss, the recent mean score, ε and frames per second; metrics.csv and
TensorBoard get the epoch's episode scores, validation score and losses. `--minutes`
stops training at the last epoch end before that much wall time (validation included).

Checkpoints (`--resume`, also after SIGKILL) hold both networks, the optimiser, the
counters (frames, episodes, updates, wall time, best validation score) and the loop's
step and random generator state; the replay buffer is saved beside them (replay.npz)
when it is at most `--replay-checkpoint-mb`, else the resumed run refills it before
learning again. Games in progress are not saved: a resumed run starts new episodes.
"""

import math
import shutil
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from common import cli, runs
from common.config import CustomStepConfig, check_choice, option, require_at_least_one, require_not_negative
from common.errors import UserError
from projects.flappy_dqn import PROJECT, data
from projects.flappy_dqn.data import ENVIRONMENTS, OBSERVATIONS, SCORE_LIMIT

REPLAY = "replay.npz"
# --tiny: a few hundred moves, to try the whole pipeline in seconds.
TINY = {"epochs": 2, "steps_per_epoch": 40, "envs": 2, "batch_size": 16, "learning_starts": 32, "replay_size": 2000,
        "val_episodes": 2, "score_limit": 3, "minutes": 0.0, "epsilon_frames": 100}
# CartPole learns in seconds with a small network and frequent target updates.
CARTPOLE = {"epochs": 10, "hidden": 64, "lr": 2e-3, "target_every": 100, "epsilon_frames": 4000, "learning_starts": 500,
            "steps_per_epoch": 250, "replay_size": 20000, "batch_size": 64, "val_episodes": 10, "minutes": 0.0}


@dataclass(frozen=True)
class Config(CustomStepConfig):
    env: str = option("flappy", "the game", choices=ENVIRONMENTS)
    observation: str = option("features", "what the agent sees of Flappy Bird: the 12 features, 180 LIDAR distances, "
                                          "or 4 stacked grey 80x80 screens", choices=OBSERVATIONS)
    minutes: float = option(45.0, "wall time budget: stop at the epoch end after which one more epoch would exceed it (0: no limit)")
    epochs: int = option(500, "at most this many epochs (each ends with a validation round)")
    steps_per_epoch: int = option(5000, "moves of all games per epoch")
    envs: int = option(8, "games played side by side")
    frame_skip: int = option(1, "frames each action is repeated for")
    batch_size: int = option(128, "transitions per update")
    lr: float = option(5e-4, "Adam learning rate")
    gamma: float = option(0.99, "discount per move")
    n_step: int = option(3, "moves summed into each transition's return")
    double: bool = option(True, "Double DQN: the online network picks the next action, the target network values it")
    dueling: bool = option(False, "dueling network: separate state value and advantages")
    hidden: int = option(256, "units of each hidden layer of the perceptron (features, lidar, CartPole)")
    layers: int = option(2, "hidden layers of the perceptron")
    replay_size: int = option(200_000, "transitions the replay buffer keeps")
    learning_starts: int = option(10_000, "transitions gathered before the first update")
    train_every: int = option(1, "moves of all games between updates")
    target_every: int = option(1000, "updates between copies of the online network into the target network")
    epsilon_start: float = option(1.0, "exploration at the start: the share of random actions")
    epsilon_end: float = option(0.001, "exploration after --epsilon-frames frames")
    epsilon_frames: int = option(1_000_000, "frames over which exploration falls log-linearly to --epsilon-end")
    val_episodes: int = option(20, "validation episodes after each epoch (seeds never used for training or evaluation)")
    score_limit: int = option(SCORE_LIMIT, "pipes at which a Flappy Bird episode is cut")
    checkpoint_every: int = option(20000, "save a checkpoint every N moves (and at least every 2 minutes and at each epoch's end)")
    replay_checkpoint_mb: float = option(512.0, "save the replay buffer with checkpoints when it takes at most this many MB")

    def __post_init__(self):
        super().__post_init__()
        check_choice("--env", self.env, ENVIRONMENTS)
        check_choice("--observation", self.observation, OBSERVATIONS)
        require_at_least_one(self, "steps_per_epoch", "envs", "frame_skip", "n_step", "hidden", "layers", "replay_size",
                             "train_every", "target_every", "val_episodes", "score_limit")
        require_not_negative(self, "minutes", "learning_starts", "epsilon_frames", "replay_checkpoint_mb")
        if not 0 < self.gamma <= 1:
            raise UserError(f"--gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.epsilon_end <= self.epsilon_start <= 1:
            raise UserError(f"need 0 <= --epsilon-end <= --epsilon-start <= 1, got {self.epsilon_end} and {self.epsilon_start}")
        if self.batch_size > self.replay_size or self.learning_starts > self.replay_size:
            raise UserError(f"--replay-size ({self.replay_size}) must hold --batch-size and --learning-starts transitions")

    def game(self):
        """The keyword arguments of `data.Game` for this run."""
        return {"env": self.env, "observation": self.observation, "frame_skip": self.frame_skip, "score_limit": self.score_limit}


def recipe_defaults(chosen):
    """Under the --config file and the flags: CartPole's quick recipe, and --tiny's small run."""
    return {**(CARTPOLE if chosen.get("env") == "cartpole" else {}), **(TINY if chosen.get("tiny") else {})}


def epsilon(config, frames):
    """The share of random actions after `frames` frames: log-linear from start to end, then flat."""
    if config.epsilon_frames == 0 or config.epsilon_start == config.epsilon_end:
        return config.epsilon_end
    done = min(frames / config.epsilon_frames, 1.0)
    if config.epsilon_end == 0:
        return config.epsilon_start * (1 - done)
    return float(config.epsilon_start * (config.epsilon_end / config.epsilon_start) ** done)


class BudgetSpent(Exception):
    """Raised between epochs when another epoch would not end within --minutes: training ends there."""


COUNTERS = ("frames", "episodes", "updates")  # an int32 variable in the checkpoint
TIMES = ("seconds", "best_val_score")  # a float32 one


def train(config, resume_dir=None):
    """Train the agent `config` describes in a new run folder (or continue `resume_dir`); returns the folder."""
    import keras

    from common import backend
    from common.loop import Phase, TrainingLoop
    from projects.flappy_dqn.agent import Agent
    from projects.flappy_dqn.replay import NSteps, ReplayBuffer

    started = time.time()
    shape = data.observation_shape(config.env, config.observation)
    run_dir = cli.open_run(PROJECT, config, resume_dir, resolved={"observation_shape": list(shape)})
    agent = Agent(config, shape, data.ACTIONS)
    counters = keras.Variable(np.zeros(len(COUNTERS), np.int32), dtype="int32", trainable=False, name="counters")
    times = keras.Variable(np.array([0.0, -np.inf], np.float32), trainable=False, name="times")
    replay = ReplayBuffer(config.replay_size, shape, np.uint8 if config.observation == "pixels" and config.env == "flappy" else np.float32)
    keep_replay = replay.nbytes <= config.replay_checkpoint_mb * 2**20
    state = {"frames": 0, "episodes": 0, "updates": 0, "seconds": 0.0, "best_val_score": -math.inf}
    clock = {"since": time.monotonic()}

    def elapsed():
        return state["seconds"] + time.monotonic() - clock["since"]

    def before_checkpoint(step):
        state.update(updates=agent.updates, episodes=games.next_episode)
        counters.assign(np.array([state[name] for name in COUNTERS], np.int32))
        times.assign(np.array([elapsed(), state["best_val_score"]], np.float32))
        if keep_replay:
            with runs.atomic_path(run_dir / REPLAY) as temporary:
                np.savez(temporary, step=np.array(step), **replay.state())

    loop = TrainingLoop(run_dir, {**agent.variables(), "counters": [counters, times]}, config.seed,
                        resume=resume_dir is not None, unit="frames", shown=("loss", "score", "epsilon"),
                        checkpoint_steps=config.checkpoint_every, before_checkpoint=before_checkpoint)
    if loop.step:  # resumed from a checkpoint
        saved = keras.ops.convert_to_numpy(counters.value), keras.ops.convert_to_numpy(times.value)
        state.update(zip(COUNTERS, map(int, saved[0])), seconds=float(saved[1][0]), best_val_score=float(saved[1][1]))
        agent.updates = state["updates"]
        print(f"replay buffer: {restore_replay(replay, run_dir / REPLAY, loop.step)}")
    games = data.Games(config.envs, "training", first_episode=state["episodes"], run_seed=config.seed, **config.game())
    clock["since"] = time.monotonic()
    nsteps = NSteps(config.envs, config.n_step, config.gamma)
    recent = deque(maxlen=20)  # the last episodes' scores, for the progress bar
    epoch_scores, losses = [], {"loss": 0.0, "q": 0.0}
    frames_per_step = config.envs * config.frame_skip
    print(f"{data.describe(config.env, config.observation)}, observations {shape}; {config.envs} games, "
          f"network {agent.online.count_params():,} weights; replay {replay.nbytes / 2**20:.0f} MB "
          f"({'saved with checkpoints' if keep_replay else 'refilled on resume'}); backend {backend.name()}, "
          f"{backend.describe_device()}")

    def step(at):
        exploration = epsilon(config, state["frames"])
        observations = games.observations.copy()
        actions = agent.act(observations, exploration, at.rng)
        _, rewards, terminated, truncated, last, finished = games.step(actions)
        completed = nsteps.add(observations, actions, rewards, terminated, truncated, last)
        if completed is not None:
            replay.add(*completed)
        state["frames"] += frames_per_step
        recent.extend(finished)
        epoch_scores.extend(finished)
        if replay.size >= max(config.learning_starts, config.batch_size) and at.step % config.train_every == 0:
            losses["loss"], losses["q"] = agent.update(replay.sample(at.rng, config.batch_size))
        return {**losses, "score": float(np.mean(recent)) if recent else 0.0, "epsilon": exploration}

    def begin_epoch(rng, epoch):
        # Stop where one more epoch, as long as the last one took, would end past the budget.
        now, last = elapsed(), clock.get("epoch_began")
        if config.minutes and now + (now - last if last is not None else 0.0) > config.minutes * 60:
            raise BudgetSpent()
        clock["epoch_began"] = now
        epoch_scores.clear()

    def end_epoch(epoch, logs):
        scores = validation_scores(agent.online, config)
        logs.update(val_score=float(np.mean(scores)), val_median=float(np.median(scores)),
                    train_score=float(np.mean(epoch_scores)) if epoch_scores else float("nan"),
                    train_episodes=len(epoch_scores), frames=state["frames"], updates=agent.updates,
                    minutes=elapsed() / 60)
        if logs["val_score"] > state["best_val_score"]:
            state["best_val_score"] = logs["val_score"]
            runs.save_model(agent.online, run_dir / "best.keras", PROJECT)
        print(f"validation: mean score {logs['val_score']:.1f} over {len(scores)} episodes (best {state['best_val_score']:.1f}); "
              f"{state['frames']:,} frames, {elapsed() / 60:.1f} min")

    phase = Phase("train", step, config.steps_per_epoch, config.epochs, samples_per_step=frames_per_step,
                  begin_epoch=begin_epoch, end_epoch=end_epoch)
    stopped = ""
    try:
        loop.run([phase])
    except BudgetSpent:
        stopped = f"stopped within the {config.minutes:g}-minute budget"
        print(f"{stopped} ({state['frames']:,} frames)")
    games.close()
    if not (run_dir / "best.keras").exists():
        runs.save_model(agent.online, run_dir / "best.keras", PROJECT)
    shutil.copyfile(run_dir / "best.keras", run_dir / "model.keras")
    rows = loop.metrics.rows
    if rows:
        learning_curve(rows, run_dir / "learning_curve.png", data.describe(config.env, config.observation))
    best = max(rows, key=lambda row: row["val_score"]) if rows else {}
    cli.finish_run(run_dir, config, started, loop,
                   {"best_val_score": best.get("val_score", float("nan")), "last_val_score": rows[-1]["val_score"] if rows else float("nan")},
                   steps=loop.step, frames=state["frames"], updates=agent.updates, episodes=games.next_episode,
                   training_minutes=round(elapsed() / 60, 2), best_epoch=best.get("epoch"), best_frames=best.get("frames"),
                   stopped=stopped or "epochs done", resumed=resume_dir is not None, parameters=agent.online.count_params(),
                   replay_saved=keep_replay)
    loop.discard_checkpoint()
    (run_dir / REPLAY).unlink(missing_ok=True)
    print(f"run saved in {run_dir}; model.keras: the best validation epoch ({best.get('val_score', float('nan')):.1f})")
    return run_dir


def validation_scores(network, config):
    """The greedy agent's score on each validation seed."""
    from projects.flappy_dqn.agent import greedy_actions

    seeds = [data.episode_seed("validation", i) for i in range(config.val_episodes)]
    return data.play_episodes(lambda observations: greedy_actions(network, observations), seeds,
                              batch=config.val_episodes, **config.game())


def restore_replay(replay, path, step):
    """Refill `replay` from the checkpoint's replay.npz when it belongs to the same step; says what happened."""
    if not path.is_file():
        return "not saved with the checkpoint: refilled before learning resumes"
    try:
        with np.load(path, allow_pickle=False) as saved:
            if int(saved["step"]) != step:
                return "saved at another step than the checkpoint: refilled before learning resumes"
            replay.load({name: saved[name] for name in saved.files if name != "step"})
    except (OSError, ValueError, KeyError) as error:
        return f"unreadable ({error}): refilled before learning resumes"
    return f"{replay.size:,} transitions restored"


def learning_curve(rows, path, title):
    """Validation and training scores against frames."""
    from common import charts

    frames = [row["frames"] for row in rows]
    series = {"validation (greedy)": (frames, [row["val_score"] for row in rows]),
              "training episodes (ε-greedy)": (frames, [row["train_score"] for row in rows])}
    return charts.curves(series, path, title=f"{title}: learning curve", xlabel="frames", ylabel="score (mean per episode)")
