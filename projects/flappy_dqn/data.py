"""The games as the agent sees them: observations, frame skip and stacking, seeds, many games at once.

`Game` wraps one environment: Flappy Bird (flappy-bird-gymnasium, headless) with one of
three observations, its 12 `features` (pipe positions, the bird's height, speed and
rotation), its 180 `lidar` distances, or the `pixels` the course's DQN saw (the
screen above the ground, grey, 80x80, the last 4 frames stacked); or CartPole-v1.
`--frame-skip k` repeats each action for k frames and adds up their rewards.

Seeds: every episode starts from its own seed, and the three uses never share one:
evaluation episode i plays seed 3i, validation episode i seed 3i + 1, and training
episode j of a run with seed s seed 3 (s 10^7 + j) + 2. `Games` steps many games in
lockstep (the agent acts on them as one batch) and starts a new episode, on the next
seed of its kind, wherever one ends.
"""

import numpy as np

ENVIRONMENTS = ("flappy", "cartpole")
OBSERVATIONS = ("features", "lidar", "pixels")
SCORE_LIMIT = 500  # pipes: an episode that reaches it is cut there (the environment's score_limit)
PIXELS = (80, 80)
STACK = 4  # pixel frames stacked into one observation
GROUND = 404  # rows of the 512-pixel screen above the ground (flappy-bird-gymnasium puts it at 0.79 of the height)
SEED_KINDS = ("evaluation", "validation", "training")
ACTIONS = 2  # both games: do nothing, or flap (push the cart left or right)


def episode_seed(kind, index, run_seed=0):
    """The seed of episode `index` of a kind; the kinds never share a seed (their remainders mod 3 differ)."""
    if kind == "evaluation":
        return 3 * index
    if kind == "validation":
        return 3 * index + 1
    if kind == "training":
        return 3 * (run_seed * 10**7 + index) + 2
    raise ValueError(f"unknown seed kind {kind!r}")


def seed_kind(seed):
    return SEED_KINDS[seed % 3]


def observation_shape(env, observation):
    if env == "cartpole":
        return (4,)
    return {"features": (12,), "lidar": (180,), "pixels": (*PIXELS, STACK)}[observation]


def describe(env, observation):
    return "CartPole-v1" if env == "cartpole" else f"Flappy Bird ({observation})"


class Game:
    """One environment as the agent sees it. `score`: pipes passed (Flappy Bird) or the return (CartPole)."""

    def __init__(self, env="flappy", observation="features", frame_skip=1, score_limit=SCORE_LIMIT, render=False):
        self.env_name, self.observation, self.frame_skip = env, observation, frame_skip
        self.rendered = render or observation == "pixels"
        if env == "cartpole":
            import gymnasium

            self.env = gymnasium.make("CartPole-v1", render_mode="rgb_array" if render else None)
        else:
            from flappy_bird_gymnasium import FlappyBirdEnv

            self.env = FlappyBirdEnv(use_lidar=observation == "lidar", audio_on=False, score_limit=score_limit,
                                     render_mode="rgb_array" if self.rendered else None)
        self.actions = int(self.env.action_space.n)
        self.frames, self.score = [], 0.0

    def reset(self, seed):
        observation, _ = self.env.reset(seed=int(seed))
        self.score = 0.0
        if self.observation == "pixels" and self.env_name == "flappy":
            self.frames = [grey_screen(self.env.render())] * STACK
        return self._observe(observation)

    def step(self, action):
        """Repeat `action` for `frame_skip` frames: (observation, summed reward, terminated, truncated)."""
        total, terminated, truncated = 0.0, False, False
        for _ in range(self.frame_skip):
            observation, reward, terminated, truncated, info = self.env.step(int(action))
            total += reward
            self.score = float(info["score"]) if "score" in info else self.score + reward
            if terminated or truncated:
                break
        if self.observation == "pixels" and self.env_name == "flappy":
            self.frames = self.frames[1:] + [grey_screen(self.env.render())]
        return self._observe(observation), total, terminated, truncated

    def screen(self):
        """The current picture of the game (RGB), for videos."""
        return self.env.render()

    def _observe(self, observation):
        if self.observation == "pixels" and self.env_name == "flappy":
            return np.stack(self.frames, axis=-1)
        return np.asarray(observation, np.float32)

    def close(self):
        self.env.close()


def grey_screen(rgb):
    """The screen above the ground, grey, 80x80, uint8."""
    from PIL import Image

    grey = Image.fromarray(np.ascontiguousarray(rgb[:GROUND])).convert("L")
    return np.asarray(grey.resize(PIXELS[::-1], Image.BILINEAR), np.uint8)


class Games:
    """`count` games stepped together; each starts a new episode on the next seed of `kind` when one ends.

    `step(actions)` returns (observations, rewards, terminated, truncated, last observations,
    finished scores): where an episode ended, `observations` holds the new episode's first
    one and `last observations` the ended episode's last one (what a truncated episode's
    value is estimated from).
    """

    def __init__(self, count, kind, first_episode=0, run_seed=0, **game):
        self.games = [Game(**game) for _ in range(count)]
        self.kind, self.run_seed, self.next_episode = kind, run_seed, first_episode
        self.actions = self.games[0].actions
        self.observations = np.stack([self._start(game) for game in self.games])

    def _start(self, game):
        seed = episode_seed(self.kind, self.next_episode, self.run_seed)
        self.next_episode += 1
        return game.reset(seed)

    def step(self, actions):
        rewards = np.zeros(len(self.games), np.float32)
        terminated, truncated = np.zeros(len(self.games), bool), np.zeros(len(self.games), bool)
        last = self.observations.copy()
        finished = []
        for i, (game, action) in enumerate(zip(self.games, actions)):
            observation, rewards[i], terminated[i], truncated[i] = game.step(action)
            last[i] = observation
            if terminated[i] or truncated[i]:
                finished.append(game.score)
                observation = self._start(game)
            self.observations[i] = observation
        return self.observations.copy(), rewards, terminated, truncated, last, finished

    def close(self):
        for game in self.games:
            game.close()


def play_episodes(policy, seeds, env="flappy", observation="features", frame_skip=1, score_limit=SCORE_LIMIT,
                  batch=100, max_steps=None):
    """The score of one episode per seed, the games played side by side, `policy(observations)` acting for all
    games still running at once. `max_steps` (decisions) cuts an episode (CartPole's 500 steps are its own)."""
    seeds = list(seeds)
    scores = np.zeros(len(seeds))
    for start in range(0, len(seeds), batch):
        chunk = seeds[start:start + batch]
        games = [Game(env, observation, frame_skip, score_limit) for _ in chunk]
        observations = [game.reset(seed) for game, seed in zip(games, chunk)]
        running = list(range(len(chunk)))
        steps = 0
        while running and (max_steps is None or steps < max_steps):
            actions = policy(np.stack([observations[i] for i in running]))
            still = []
            for i, action in zip(running, actions):
                observations[i], _, terminated, truncated = games[i].step(action)
                if not (terminated or truncated):
                    still.append(i)
            running, steps = still, steps + 1
        scores[start:start + len(chunk)] = [game.score for game in games]
        for game in games:
            game.close()
    return scores


# --- reference policies ---------------------------------------------------------------------


def random_policy(rng, flap_probability=0.1):
    """Flap now and then at random (a bird flapping half the time only climbs into the top pipe)."""
    return lambda observations: (rng.random(len(observations)) < flap_probability).astype(np.int64)


RULE_MARGIN = 0.03  # flap when the bird's bottom is this close (screen heights) above the next gap's bottom


def rule_policy(observations):
    """The hand-written rule on the 12 features: flap when the bird's bottom nears the next gap's bottom."""
    bird_x, pipe_width, bird_height = 0.2, 52 / 288, 24 / 512
    passed = observations[:, 0] + pipe_width < bird_x  # the nearest pipe is behind the bird already
    gap_bottom = np.where(passed, observations[:, 5], observations[:, 2])
    bird_bottom = observations[:, 9] + bird_height
    return (gap_bottom - bird_bottom < RULE_MARGIN).astype(np.int64)
