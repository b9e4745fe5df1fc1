"""Photos to anime: the AnimeGANv2 generator, trained adversarially with VGG content, style and colour losses."""

from pathlib import Path

PROJECT = "animegan"
FOLDER = Path(__file__).resolve().parent
STRIDE = 4  # the generator halves the size twice: its inputs' sides are a multiple of this
