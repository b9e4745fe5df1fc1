"""Movie-review sentiment: word2vec vectors, a bidirectional LSTM and pooling over time, on IMDB or your own reviews."""

from pathlib import Path

PROJECT = "imdb_lstm"
FOLDER = Path(__file__).resolve().parent
