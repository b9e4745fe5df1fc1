"""Word vectors with CBOW and negative sampling, in Keras and in gensim, on IMDB or your own corpus."""

from pathlib import Path

PROJECT = "word2vec"
FOLDER = Path(__file__).resolve().parent
