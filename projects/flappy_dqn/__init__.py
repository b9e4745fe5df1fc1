"""A game-playing agent: deep Q-learning (Double DQN) that learns Flappy Bird, and CartPole as a quick check."""

import os
from pathlib import Path

PROJECT = "flappy_dqn"
FOLDER = Path(__file__).resolve().parent

# pygame draws off-screen and stays silent: the game runs on machines without a display or sound card.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "hide")
