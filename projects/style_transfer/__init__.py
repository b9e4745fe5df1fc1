"""Neural style transfer: Gatys' optimisation and Johnson's fast network, both on a frozen VGG."""

from pathlib import Path

PROJECT = "style_transfer"
FOLDER = Path(__file__).resolve().parent
MIN_SIDE = 16  # the transform network halves an image twice and pads by reflection: smaller makes no sense
