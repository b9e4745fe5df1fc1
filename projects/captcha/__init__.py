"""Reading text captchas: a convnet, bidirectional GRUs and CTC, on generated or your own captchas."""

from pathlib import Path

PROJECT = "captcha"
FOLDER = Path(__file__).resolve().parent
