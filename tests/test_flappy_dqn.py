"""The game-playing agent: DQN's pieces checked by hand (targets, loss, replay, n-step returns, target
schedule), the games' observations and seeds, and CartPole learnt end to end through the command line,
evaluated, played into a GIF, killed and resumed."""

import json
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import runs
from common.loop import CHECKPOINT
from helpers import assert_one_line_error, run_command, run_killed_at, run_subprocess
from projects.flappy_dqn import PROJECT, data, model
from projects.flappy_dqn import train as train_module
from projects.flappy_dqn.replay import NSteps, ReplayBuffer
from projects.flappy_dqn.train import REPLAY, Config

TENSORFLOW = keras.backend.backend() == "tensorflow"
# CartPole's recipe (train.CARTPOLE) for 3 epochs of 250 moves of 8 games: 6,000 frames.
CARTPOLE = ["train", "--env", "cartpole", "--epochs", "3"]
# The same networks and batches for 2 epochs of 30 moves, a checkpoint every 20 moves and at each epoch's end
# (steps 20, 30, 40, 60); under JAX it finds them compiled in the cache, and saves no model before its kill.
SHORT = ["train", "--env", "cartpole", "--epochs", "2", "--steps-per-epoch", "30", "--checkpoint-every", "20",
         "--learning-starts", "40", "--val-episodes", "1"]


def flappy(*args):
    return run_command("projects.flappy_dqn", *args)


def kill_in_the_first_epoch(run_dir):
    """SIGKILL after move 25 of epoch 0 (the run's 26th step): the checkpoint of step 20 is the last one; the
    kill lands after the callbacks saw the step and before the loop's own checkpoint of it."""
    return run_killed_at("projects.flappy_dqn", *SHORT, "--out", run_dir, epoch=0, batch=25)


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    """CartPole learnt through the `train` command in this process (the seeds each game started from recorded);
    the short run killed in its first epoch alongside (under JAX once this run is done)."""
    folder = tmp_path_factory.mktemp("flappy")
    seeds = []
    reset = data.Game.reset

    def recorded(game, seed):
        seeds.append(seed)
        return reset(game, seed)

    with ThreadPoolExecutor(1) as background:
        kill = lambda: background.submit(kill_in_the_first_epoch, folder / "killed")
        killed = kill() if TENSORFLOW else None
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(data.Game, "reset", recorded)
            result = flappy(*CARTPOLE, "--out", folder / "run")
        assert result.returncode == 0, result.stderr[-3000:]
        yield {"run_dir": folder / "run", "training_seeds": seeds, "killed_dir": folder / "killed",
               "killed": killed or kill()}


# --- the math of DQN ------------------------------------------------------------------------------


def numbers(tensor):
    return keras.ops.convert_to_numpy(tensor)


def test_double_dqn_target_on_a_hand_made_batch_equals_the_value_worked_out_by_hand():
    returns = np.array([1.0, 0.5, -1.0], np.float32)
    discounts = np.array([0.9, 0.81, 0.0], np.float32)  # the third transition ended its episode
    next_online = np.array([[1.0, 2.0], [3.0, 0.0], [5.0, 9.0]], np.float32)  # picks actions 1, 0, 1
    next_target = np.array([[10.0, 20.0], [30.0, 40.0], [7.0, 8.0]], np.float32)
    double = numbers(model.dqn_targets(returns, discounts, next_online, next_target, double=True))
    np.testing.assert_allclose(double, [1.0 + 0.9 * 20.0, 0.5 + 0.81 * 30.0, -1.0], rtol=1e-6)
    # Plain DQN lets the target network both pick and value: the second transition takes its 40 instead.
    plain = numbers(model.dqn_targets(returns, discounts, next_online, next_target, double=False))
    np.testing.assert_allclose(plain, [1.0 + 0.9 * 20.0, 0.5 + 0.81 * 40.0, -1.0], rtol=1e-6)


def test_td_loss_is_the_huber_loss_of_the_taken_actions_q_values():
    q = np.array([[1.0, 4.0], [2.0, -1.0]], np.float32)
    actions = np.array([1, 0], np.int32)
    targets = np.array([4.5, 5.0], np.float32)  # errors 0.5 (quadratic part) and 3 (linear part)
    loss = float(numbers(model.td_loss(q, actions, targets)))
    assert loss == pytest.approx((0.5 * 0.5**2 + (3.0 - 0.5)) / 2, rel=1e-6)


def test_dueling_head_adds_the_value_to_the_advantages_less_their_mean():
    head = model.DuelingHead()
    out = numbers(head(np.array([[2.0, 1.0, 3.0]], np.float32)))  # V = 2, A = (1, 3), mean 2
    np.testing.assert_allclose(out, [[1.0, 3.0]])


def test_the_target_network_changes_only_on_its_schedule_and_the_update_always_reads_its_current_weights():
    from projects.flappy_dqn.agent import Agent

    agent = Agent(Config(env="cartpole", hidden=8, layers=1, target_every=2, lr=0.05), (4,), 2)
    rng = np.random.default_rng(0)
    batch = (rng.normal(size=(16, 4)).astype(np.float32), rng.integers(0, 2, 16).astype(np.int32),
             rng.normal(size=16).astype(np.float32), np.full(16, 0.9, np.float32), rng.normal(size=(16, 4)).astype(np.float32))
    weights = lambda net: [numbers(v.value).copy() for v in net.variables]
    first = weights(agent.target)

    def expected_loss():  # the loss of the networks as they are now, computed outside the compiled step
        return float(numbers(agent.loss(*batch)[0]))

    for update in range(1, 5):
        before = expected_loss() if update in (1, 3) else None  # before the first update, and after a copy
        loss, _ = agent.update(batch)
        if before is not None:
            assert loss == pytest.approx(before, rel=1e-4), f"update {update} used stale target weights"
        target, online = weights(agent.target), weights(agent.online)
        if update % 2:
            reference = first if update < 2 else synced
            assert all(np.array_equal(a, b) for a, b in zip(target, reference)), f"target moved at update {update}"
            assert not all(np.array_equal(a, b) for a, b in zip(online, target))
        else:
            assert all(np.array_equal(a, b) for a, b in zip(target, online)), f"no copy at update {update}"
            synced = target


# --- replay and n-step returns (NumPy) ------------------------------------------------------------


@pytest.mark.backend_independent
def test_replay_buffer_returns_transitions_intact_and_samples_uniformly():
    buffer = ReplayBuffer(10, (3,))
    ids = np.arange(13, dtype=np.float32)  # 13 transitions into 10 places: the first 3 are overwritten
    buffer.add(np.stack([ids, ids + 0.1, ids + 0.2], 1), ids.astype(np.int32), ids * 10, ids / 100,
               np.stack([ids + 1, ids + 1.1, ids + 1.2], 1))
    assert buffer.size == 10
    observations, actions, returns, discounts, following = buffer.sample(np.random.default_rng(1), 20000)
    np.testing.assert_allclose(observations[:, 1], actions + 0.1, rtol=1e-6)
    np.testing.assert_allclose(returns, actions * 10.0, rtol=1e-6)
    np.testing.assert_allclose(discounts, actions / 100.0, rtol=1e-6)
    np.testing.assert_allclose(following, observations + 1.0, rtol=1e-6)
    counts = np.bincount(actions, minlength=13)
    assert counts[:3].sum() == 0  # overwritten, never drawn
    assert counts[3:].min() > 1800 and counts[3:].max() < 2200  # 2,000 each expected; sd about 42


@pytest.mark.backend_independent
def test_replay_buffer_survives_its_checkpoint_round_trip():
    buffer, again = ReplayBuffer(4, (2,)), ReplayBuffer(4, (2,))
    for i in range(6):
        buffer.add(np.full((1, 2), i, np.float32), [i], [i], [0.5], np.full((1, 2), i + 1, np.float32))
    again.load(buffer.state())
    rng = lambda: np.random.default_rng(7)
    for a, b in zip(buffer.sample(rng(), 50), again.sample(rng(), 50)):
        np.testing.assert_array_equal(a, b)
    buffer.add(np.zeros((1, 2), np.float32), [9], [9], [0.5], np.zeros((1, 2), np.float32))
    again.add(np.zeros((1, 2), np.float32), [9], [9], [0.5], np.zeros((1, 2), np.float32))
    np.testing.assert_array_equal(buffer.actions, again.actions)  # the ring goes on at the same place


@pytest.mark.backend_independent
def test_n_step_returns_sum_discounted_rewards_and_stop_at_a_crash_but_not_at_a_cut():
    steps = NSteps(games=2, n=3, gamma=0.5)
    obs = lambda a, b: np.array([[a], [b]], np.float32)
    no = np.zeros(2, bool)
    assert steps.add(obs(0, 100), [0, 0], [1.0, 1.0], no, no, obs(1, 101)) is None
    assert steps.add(obs(1, 101), [1, 1], [2.0, 2.0], no, no, obs(2, 102)) is None
    # Third step: game 0 crashes (terminated), game 1 is cut at the score limit (truncated).
    done = steps.add(obs(2, 102), [0, 1], [4.0, 8.0], np.array([True, False]), np.array([False, True]), obs(3, 103))
    observations, actions, returns, discounts, following = done
    np.testing.assert_array_equal(observations[:, 0], [0, 1, 2, 100, 101, 102])
    np.testing.assert_allclose(returns, [1 + 0.5 * 2 + 0.25 * 4, 2 + 0.5 * 4, 4, 1 + 0.5 * 2 + 0.25 * 8, 2 + 0.5 * 8, 8])
    np.testing.assert_allclose(discounts, [0, 0, 0, 0.125, 0.25, 0.5])  # nothing follows a crash
    np.testing.assert_array_equal(following[:, 0], [3, 3, 3, 103, 103, 103])
    # A new episode starts clean: the next step alone completes nothing.
    assert steps.add(obs(10, 110), [0, 0], [1.0, 1.0], no, no, obs(11, 111)) is None


# --- the games ---------------------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_pixel_observations_stack_four_grey_80x80_frames_that_shift_by_one_each_move():
    game = data.Game("flappy", "pixels")
    first = game.reset(data.episode_seed("evaluation", 0))
    assert first.shape == (80, 80, 4) and first.dtype == np.uint8
    assert all(np.array_equal(first[..., 0], first[..., k]) for k in range(4))  # the start frame, four times
    second, _, _, _ = game.step(0)
    third, _, _, _ = game.step(0)
    np.testing.assert_array_equal(third[..., :3], second[..., 1:])
    assert not np.array_equal(third[..., 3], third[..., 2])  # the pipes moved
    game.close()


@pytest.mark.backend_independent
@pytest.mark.parametrize("observation, size", [("features", 12), ("lidar", 180)])
def test_frame_skip_repeats_the_action_for_k_frames_and_adds_their_rewards(observation, size):
    moved = {}
    for skip in (1, 3):
        game = data.Game("flappy", "features", frame_skip=skip)
        start = game.reset(data.episode_seed("validation", 5))
        after, reward, terminated, _ = game.step(0)
        moved[skip] = (start[0] - after[0]) * 288  # the nearest pipe's x, in pixels: 4 per frame
        assert reward == pytest.approx(0.1 * skip) and not terminated
    assert moved == {1: pytest.approx(4.0), 3: pytest.approx(12.0)}
    assert data.Game("flappy", observation).reset(1).shape == (size,)


@pytest.mark.backend_independent
def test_seed_kinds_never_overlap():
    evaluation = {data.episode_seed("evaluation", i) for i in range(1000)}
    validation = {data.episode_seed("validation", i) for i in range(1000)}
    training = {data.episode_seed("training", i, run_seed) for run_seed in range(5) for i in range(100000)}
    assert len(evaluation) == len(validation) == 1000 and len(training) == 500000
    assert not evaluation & validation and not evaluation & training and not validation & training


@pytest.mark.backend_independent
def test_the_rule_flaps_only_when_the_bird_sinks_to_the_next_gaps_bottom():
    observation = np.zeros((3, 12), np.float32)
    observation[:, 0], observation[:, 2] = 0.5, 0.6  # the nearest pipe ahead, its gap's bottom at 0.6
    observation[:, 5] = 0.3  # the pipe after it
    observation[:, 9] = [0.3, 0.6 - 24 / 512 - 0.01, 0.6 - 24 / 512 - 0.1]  # high above, just above, well above
    np.testing.assert_array_equal(data.rule_policy(observation), [0, 1, 0])
    observation[:, 0] = -0.1  # that pipe is behind the bird: the next gap (bottom 0.3) counts
    np.testing.assert_array_equal(data.rule_policy(observation), [1, 1, 1])  # all three sank below it
    observation[:, 9] -= 0.3
    np.testing.assert_array_equal(data.rule_policy(observation), [0, 1, 0])


@pytest.mark.backend_independent  # a reference player: the network's layers are checked on both backends elsewhere
def test_the_pretrained_agent_of_flappy_bird_gymnasium_loads_and_plays():
    from projects.flappy_dqn.agent import greedy_actions

    network = model.pretrained_network()
    seeds = [data.episode_seed("evaluation", i) for i in range(3)]
    scores = data.play_episodes(lambda o: greedy_actions(network, o), seeds, score_limit=15)
    np.testing.assert_array_equal(scores, [15, 15, 15])


# --- CartPole end to end ------------------------------------------------------------------------------


def test_a_short_cartpole_run_reaches_a_mean_return_of_100_over_10_evaluation_episodes(cartpole, monkeypatch):
    played = []
    reset = data.Game.reset
    monkeypatch.setattr(data.Game, "reset", lambda game, seed: played.append(seed) or reset(game, seed))
    result = flappy("evaluate", "--model", cartpole["run_dir"], "--episodes", "10")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((cartpole["run_dir"] / "evaluation.json").read_text())["results"]["agent"]
    assert evaluation["mean"] >= 100, evaluation
    assert evaluation["mean"] == pytest.approx(np.mean(evaluation["scores"]))
    assert evaluation["capped_share"] == pytest.approx(np.mean(np.array(evaluation["scores"]) >= 500))
    # Evaluation plays the evaluation seeds, which training (its own games and validation rounds) never played.
    assert played == [data.episode_seed("evaluation", i) for i in range(10)]
    assert {data.seed_kind(seed) for seed in cartpole["training_seeds"]} == {"training", "validation"}
    assert not set(played) & set(cartpole["training_seeds"])
    random = data.play_episodes(data.random_policy(np.random.default_rng(0), 0.5), range(0, 30, 3), env="cartpole")
    assert random.mean() < 40  # the bar is far above chance (about 22)


def test_the_saved_model_is_the_best_validation_epoch_and_training_is_recorded(cartpole):
    run_dir = cartpole["run_dir"]
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1, 2] and list(metrics["frames"]) == [2000, 4000, 6000]
    assert metrics["train_episodes"].sum() > 0 and (metrics["loss"] > 0).all()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["best_val_score"] == metrics["val_score"].max()
    assert (run_dir / "model.keras").read_bytes() == (run_dir / "best.keras").read_bytes()
    assert (run_dir / "learning_curve.png").is_file() and any((run_dir / "tensorboard").iterdir())
    assert not (run_dir / CHECKPOINT).exists() and not (run_dir / REPLAY).exists()
    # model.keras is the network that scored best on the validation seeds: it scores that again.
    from projects.flappy_dqn.train import validation_scores

    network = runs.load_model(run_dir / "model.keras", PROJECT)
    config = Config(**json.loads((run_dir / "config.json").read_text())["config"])
    assert validation_scores(network, config).mean() == pytest.approx(metrics["val_score"].max())


def test_play_writes_a_gif_of_one_game(cartpole, tmp_path):
    out = tmp_path / "game.gif"
    result = flappy("play", "--model", cartpole["run_dir"], "--out", out, "--seconds", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(out) as gif:
        assert gif.n_frames > 5 and gif.size == (300, 200)  # CartPole's 600x400 screen at half size
    assert_one_line_error(flappy("play", "--model", cartpole["run_dir"], "--out", out), "exists")


def test_a_killed_run_resumes_and_continues_the_step_count_and_keeps_its_best_validation_epoch(cartpole, monkeypatch):
    run_dir = cartpole["killed_dir"]
    cartpole["killed"].result()
    with np.load(run_dir / CHECKPOINT) as checkpoint:
        assert json.loads(str(checkpoint["loop_state"]))["step"] == 20
    with np.load(run_dir / REPLAY) as replay:
        assert int(replay["step"]) == 20
        saved = len(replay["actions"])
    assert saved > 0
    assert not (run_dir / "metrics.csv").exists()
    seen = []  # the network's weights at each validation round; the first round scores best

    def scripted_validation(network, config):
        seen.append(network.get_weights())
        return np.array([7.0 if len(seen) == 1 else 3.0])

    monkeypatch.setattr(train_module, "validation_scores", scripted_validation)
    result = flappy("train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing after step 20" in result.stdout and f"{saved} transitions restored" in result.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 60 and summary["frames"] == 60 * 8 and summary["resumed"] is True
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["step"]) == [30, 60] and list(metrics["val_score"]) == [7.0, 3.0]
    kept = runs.load_model(run_dir / "model.keras", PROJECT).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(kept, seen[0]))
    assert not all(np.array_equal(a, b) for a, b in zip(kept, seen[1]))


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_an_unknown_environment_is_one_error_line_listing_the_known_ones():
    result = run_subprocess("-m", "projects.flappy_dqn", "train", "--env", "pong")
    assert_one_line_error(result, "pong", "flappy", "cartpole")


@pytest.mark.backend_independent
def test_a_model_played_with_other_observations_or_a_file_that_is_no_model_is_one_error_line(cartpole, tmp_path):
    run_dir = cartpole["run_dir"]
    assert_one_line_error(flappy("evaluate", "--model", run_dir, "--env", "flappy"), "(4,)", "(12,)")
    assert_one_line_error(flappy("play", "--model", run_dir, "--env", "flappy", "--observation", "pixels",
                                 "--out", tmp_path / "x.gif"), "(80, 80, 4)")
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    assert_one_line_error(flappy("evaluate", "--model", text), "not a Keras model")
    other = tmp_path / "other.keras"
    runs.save_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), other, "mnist_cnn")
    assert_one_line_error(flappy("evaluate", "--model", other), "mnist_cnn")


def test_pixels_train_end_to_end_with_the_nature_network(tmp_path):
    result = flappy("train", "--tiny", "--observation", "pixels", "--epochs", "1", "--steps-per-epoch", "6",
                    "--learning-starts", "4", "--batch-size", "4", "--val-episodes", "1", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    network = runs.load_model(tmp_path / "run" / "model.keras", PROJECT)
    assert model.network_input(network) == (80, 80, 4)
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in network.layers)
