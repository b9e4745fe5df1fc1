"""Tang poetry writer: a character-level LSTM that writes regulated verse (jueju and lüshi) in the Tang style."""

from pathlib import Path

PROJECT = "tang_poetry"
FOLDER = Path(__file__).resolve().parent
