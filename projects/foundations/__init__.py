"""The course's foundations as experiments: regression and overfitting, kNN and cross-validation, linear classifiers, classical methods."""

from pathlib import Path

PROJECT = "foundations"
FOLDER = Path(__file__).resolve().parent
