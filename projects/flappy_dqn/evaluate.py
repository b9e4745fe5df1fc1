"""`evaluate`: the greedy agent on 100 evaluation seeds, beside the reference players.

Evaluation plays one episode per evaluation seed (never played in training or
validation), all side by side with one batched network call per move, each cut at
the score limit (500 pipes), and reports the mean, median and maximum score and the
share of episodes that reached the limit. `--references` adds, on the same seeds:
a random player (flaps with probability 0.1), the hand-written rule (flap when the
bird's bottom nears the next gap's bottom) and the agent that ships with
flappy-bird-gymnasium (model.py reads its weights).
"""

import time

import numpy as np

from common import runs
from common.errors import UserError
from projects.flappy_dqn import PROJECT, data

REFERENCES = ("random", "rule", "pretrained")


def load_agent(model_path):
    """(network, game settings) of a trained model: the settings of its run unless the model stands alone."""
    from projects.flappy_dqn import model as networks  # registers the dueling head before loading

    path = runs.model_path(PROJECT, model_path)
    network = runs.load_model(path, PROJECT)
    if not isinstance(getattr(network, "inputs", None), list) or len(network.outputs) != 1:
        raise UserError(f"{path} is not a Q-network of this project")
    saved = runs.run_config(path)
    return path, network, networks, saved


def game_settings(args, saved, network, networks):
    """The game the model plays: its run's (env, observation, frame skip) unless flags say otherwise; checked
    against the network's input."""
    env = args.env or saved.get("env", "flappy")
    observation = args.observation or saved.get("observation", "features")
    if args.observation and env == "cartpole":
        raise UserError("--observation applies to Flappy Bird only")
    networks.check_fits(network, data.observation_shape(env, observation), f"{data.describe(env, observation)}")
    frame_skip = args.frame_skip or saved.get("frame_skip", 1)
    return {"env": env, "observation": observation, "frame_skip": frame_skip, "score_limit": args.score_limit}


def summarise(scores, score_limit, seconds):
    scores = np.asarray(scores, float)
    return {"episodes": len(scores), "mean": float(scores.mean()), "median": float(np.median(scores)),
            "max": float(scores.max()), "min": float(scores.min()), "capped_share": float(np.mean(scores >= score_limit)),
            "seconds": round(seconds, 1)}


def evaluation_seeds(count):
    return [data.episode_seed("evaluation", i) for i in range(count)]


def score_policy(policy, game, episodes, batch=100):
    started = time.perf_counter()
    scores = data.play_episodes(policy, evaluation_seeds(episodes), batch=batch, **game)
    return summarise(scores, game["score_limit"], time.perf_counter() - started), scores


def reference_policy(name, seed=0):
    """A reference player and the observation it needs: random, the rule, or flappy-bird-gymnasium's agent."""
    from projects.flappy_dqn.agent import greedy_actions

    if name == "random":
        return data.random_policy(np.random.default_rng(seed)), "features"
    if name == "rule":
        return data.rule_policy, "features"
    from projects.flappy_dqn import model

    network = model.pretrained_network()
    return (lambda observations: greedy_actions(network, observations)), "features"


def evaluate(args):
    """Score a trained model (and with --references the reference players) on the evaluation seeds."""
    from projects.flappy_dqn.agent import greedy_actions

    path, network, networks, saved = load_agent(args.model)
    game = game_settings(args, saved, network, networks)
    results = {}
    summary, scores = score_policy(lambda observations: greedy_actions(network, observations), game, args.episodes)
    results["agent"] = {**summary, "scores": scores.tolist()}
    print(line("agent", summary, game))
    if args.references:
        if game["env"] != "flappy":
            raise UserError("--references are Flappy Bird players; CartPole has none")
        for name in REFERENCES:
            policy, observation = reference_policy(name)
            reference_game = {**game, "observation": observation, "frame_skip": 1}
            summary, scores = score_policy(policy, reference_game, args.episodes)
            results[name] = {**summary, "scores": scores.tolist()}
            print(line(name, summary, reference_game))
    out = runs.write_json(path.parent / "evaluation.json", {"model": str(path), "game": game, "results": results})
    print(f"saved {out}")
    return results


def line(name, summary, game):
    unit = "pipes" if game["env"] == "flappy" else "return"
    return (f"{name:>10s}: mean {summary['mean']:.1f} {unit}, median {summary['median']:.1f}, max {summary['max']:.0f}, "
            f"{summary['capped_share']:.0%} reached {game['score_limit']} "
            f"({summary['episodes']} episodes, {summary['seconds']:.1f} s)")
